import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../protocol/index.js';

/** 127.0.0.0/8, ::1, and IPv4-mapped loopback. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (a === '::1' || a === 'localhost') return true;
  return isIP(a) === 4 && a.startsWith('127.');
}

/**
 * Which hosts the AS may dial: IPs, CIDR blocks (10.0.0.0/8, fd00::/8) and host names (exact,
 * case-insensitive). An empty list allows every host.
 */
export class HostAllowList {
  readonly #blocks = new BlockList();
  readonly #names = new Set<string>();
  readonly size: number;

  constructor(entries: readonly string[]) {
    for (const raw of entries) {
      const e = raw.trim();
      const slash = e.indexOf('/');
      if (slash > 0) {
        const net = e.slice(0, slash);
        // A missing prefix length ('10.0.0.0/') must not read as /0, which would allow every host.
        const prefix = e.slice(slash + 1);
        const bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
        const family = isIP(net);
        if (family === 0 || !Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) {
          throw new ConfigError(`allowed host "${raw}" is not a valid CIDR block; write it as 10.0.0.0/8 or fd00::/8`);
        }
        this.#blocks.addSubnet(net, bits, family === 4 ? 'ipv4' : 'ipv6');
      } else if (isIP(e) !== 0) {
        this.#blocks.addAddress(e, isIP(e) === 4 ? 'ipv4' : 'ipv6');
      } else if (/^[A-Za-z0-9.-]{1,253}$/.test(e)) {
        this.#names.add(e.toLowerCase());
      } else {
        throw new ConfigError(`allowed host "${raw}" is neither an IP, a CIDR block nor a host name`);
      }
    }
    this.size = entries.length;
  }

  allows(host: string): boolean {
    if (this.size === 0) return true;
    const family = isIP(host);
    if (family !== 0) return this.#blocks.check(host, family === 4 ? 'ipv4' : 'ipv6');
    return this.#names.has(host.toLowerCase());
  }
}
