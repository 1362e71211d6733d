import { isIP } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';

/**
 * Bind and advertise addresses (docs/addresses.md): a server binds `host` and tells others to dial
 * its advertise host. When it binds every address (0.0.0.0 or ::) and is given no advertise host,
 * it advertises the first non-loopback address of the machine instead of one nobody else can dial.
 */

/** The interfaces as os.networkInterfaces() returns them (injectable for tests). */
export type Interfaces = NodeJS.Dict<readonly Pick<NetworkInterfaceInfo, 'address' | 'family' | 'internal'>[]>;

/** Binding this host listens on every address of the machine. */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '' || host === '[::]';
}

const familyOf = (family: string | number): 4 | 6 => (family === 'IPv6' || family === 6 ? 6 : 4);
const isLoopbackAddress = (a: string): boolean => a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.');
/** Link-local IPv6 (fe80::/10) needs a zone to be dialed: never advertised. */
const isLinkLocal6 = (a: string): boolean => /^fe[89ab][0-9a-f]:/i.test(a);

/**
 * The first non-loopback address of the machine, in interface order: IPv4 first, unless `bindHost`
 * is `::` (then IPv6 first). Falls back to the other family, then to loopback when the machine has
 * nothing else.
 */
export function pickAdvertiseHost(bindHost: string, interfaces: Interfaces = networkInterfaces()): string {
  const prefer: 4 | 6 = bindHost === '::' || bindHost === '[::]' ? 6 : 4;
  const found: Record<4 | 6, string | undefined> = { 4: undefined, 6: undefined };
  for (const list of Object.values(interfaces)) {
    for (const i of list ?? []) {
      if (i.internal || isLoopbackAddress(i.address)) continue;
      const fam = familyOf(i.family);
      if (fam === 6 && isLinkLocal6(i.address)) continue;
      found[fam] ??= i.address;
    }
  }
  const other: 4 | 6 = prefer === 4 ? 6 : 4;
  return found[prefer] ?? found[other] ?? (prefer === 6 ? '::1' : '127.0.0.1');
}

/**
 * The host others should dial: the advertise host when given; else the bound address, unless that
 * is a wildcard (then the picked one).
 */
export function advertisedHost(bindHost: string, advertiseHost?: string, interfaces?: Interfaces): string {
  if (advertiseHost !== undefined && advertiseHost !== '') return stripBrackets(advertiseHost);
  const bound = stripBrackets(bindHost);
  return isWildcardHost(bound) ? pickAdvertiseHost(bound, interfaces) : bound;
}

/** `[::1]` → `::1`; anything else unchanged. */
export function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** `host:port`, with an IPv6 literal in brackets: `[::1]:7101`. */
export function formatEndpoint(e: { host: string; port: number }): string {
  return isIP(e.host) === 6 ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
