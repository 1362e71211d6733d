import { InvalidArgumentError } from 'commander';
import { registryUrlProblem } from '../discovery/registry-url.js';

export { registryUrlProblem };

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

/** A service name, as defineService takes it: dot-separated words of letters, digits, _ and -. */
const SERVICE_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const MAX_SERVICE_NAME = 128;
const MAX_SERVICE_KEY = 0xffffffff;

/** `--service`: a key (digits only, 0 to 4294967295) or a contract name such as greeter.greet. */
export function parseServiceSpec(value: string): number | string {
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    if (n > MAX_SERVICE_KEY) throw new InvalidArgumentError(`a service key is an integer from 0 to ${MAX_SERVICE_KEY}, got "${value}"`);
    return n;
  }
  if (value.length > MAX_SERVICE_NAME || !SERVICE_NAME.test(value)) {
    throw new InvalidArgumentError(
      `expected a service key (an integer from 0 to ${MAX_SERVICE_KEY}) or a service name: dot-separated words of letters, digits, _ and -, such as greeter.greet, at most ${MAX_SERVICE_NAME} characters; got "${value}"`,
    );
  }
  return value;
}

/** `--routing-key`: 1 to 255 bytes of UTF-8, what the header extension carries. */
export function parseRoutingKey(value: string): string {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes === 0 || bytes > 255) throw new InvalidArgumentError(`a routing key is 1 to 255 bytes (UTF-8), got ${bytes}`);
  return value;
}

/** `--registry` as a commander parser: refuses what registryUrlProblem finds. */
export function parseRegistry(value: string): string {
  const problem = registryUrlProblem(value);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
  return value;
}
