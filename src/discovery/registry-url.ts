import { ConfigError } from '../protocol/index.js';

// Kept apart from the etcd client, so that the CLI can check a --registry value without loading gRPC.

export const DEFAULT_REGISTRY_PREFIX = '/switchboard';
/** The schemes an etcd endpoint may have: etcd's own client URLs are http://. */
const REGISTRY_SCHEMES = ['etcd', 'http'];

/** What is wrong with one etcd endpoint (`etcd://host:port`, `http://host:port` or `host:port`), or undefined. */
function endpointProblem(entry: string): string | undefined {
  let rest = entry.trim();
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/.exec(rest);
  if (m) {
    const scheme = m[1].toLowerCase();
    if (scheme === 'https') return 'TLS to etcd is not supported yet; give etcd://host:port (plain gRPC, on a network only cluster members reach)';
    if (!REGISTRY_SCHEMES.includes(scheme)) return `${m[1]}:// is not a scheme for etcd; give etcd://host:2379[,host:2379] (http://host:2379 works too)`;
    rest = m[2].replace(/\/+$/, '');
  }
  const hp = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(rest);
  if (!hp || Number(hp[2]) < 1 || Number(hp[2]) > 65535) return 'expected etcd://host:port[,host:port], such as etcd://127.0.0.1:2379';
  return undefined;
}

/**
 * What is wrong with a registry value, or undefined: one or more comma-separated etcd endpoints,
 * each `etcd://host:port`, `http://host:port` or `host:port` (etcd://h1:2379,h2:2379).
 */
export function registryUrlProblem(value: string): string | undefined {
  const entries = value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
  if (entries.length === 0) return 'names no etcd endpoint; give etcd://host:2379[,host:2379]';
  for (const entry of entries) {
    const problem = endpointProblem(entry);
    // Name the endpoint when there are several; with one, the value as given is the endpoint.
    if (problem !== undefined) return entries.length > 1 ? `${entry}: ${problem}` : problem;
  }
  return undefined;
}

/** `etcd://h1:2379,h2:2379` (or a bare `h1:2379,h2:2379`) as the endpoint list an etcd client takes. */
export function parseRegistryUrl(url: string): string[] {
  const problem = registryUrlProblem(url);
  if (problem !== undefined) throw new ConfigError(`registry ${url}: ${problem}`);
  return url
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h.length > 0);
}

/** `http://host:port` from `host:port`, `etcd://host:port` or `http://host:port`. */
export function normalizeEndpoint(endpoint: string): string {
  const problem = endpointProblem(endpoint);
  if (problem !== undefined) throw new ConfigError(`etcd endpoint ${endpoint}: ${problem}`);
  return `http://${endpoint.trim().replace(/^(etcd|http):\/\//i, '').replace(/\/+$/, '')}`;
}

/** `/switchboard` from `/switchboard/`, `switchboard` or nothing. */
export function normalizePrefix(prefix: string | undefined): string {
  const p = (prefix ?? DEFAULT_REGISTRY_PREFIX).trim().replace(/\/+$/, '');
  if (p.length === 0) return '';
  return p.startsWith('/') ? p : `/${p}`;
}
