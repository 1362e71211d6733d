import { InvalidArgumentError } from 'commander';

/** Parses "host:port" (IPv4, a name, or [IPv6]:port); tells the user the expected form when it is wrong. */
export function parseEndpoint(value: string): { host: string; port: number } {
  const i = value.lastIndexOf(':');
  let host = i > 0 ? value.slice(0, i) : '';
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  else if (host.includes(':')) throw new InvalidArgumentError(`an IPv6 address goes in brackets, such as [::1]:7101, got "${value}"`);
  const port = Number(value.slice(i + 1));
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`expected host:port, such as 127.0.0.1:7101, got "${value}"`);
  }
  return { host, port };
}

/** Parses "host:port,host:port,..." (one or more). */
export function parseEndpoints(value: string): { host: string; port: number }[] {
  return value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v.length > 0)
    .map(parseEndpoint);
}

export function parseIntIn(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got "${value}"`);
    return n;
  };
}

export function parseFraction(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n >= 1) throw new InvalidArgumentError(`expected a fraction from 0 to 0.99, got "${value}"`);
  return n;
}

export const parsePort = parseIntIn(0, 65535);

export function parseNumberIn(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}, got "${value}"`);
    return n;
  };
}

/** For a repeatable host:port flag: each value adds one or more (comma-separated) endpoints. */
export function collectEndpoints(value: string, previous: { host: string; port: number }[] | undefined): { host: string; port: number }[] {
  return [...(previous ?? []), ...parseEndpoints(value)];
}
