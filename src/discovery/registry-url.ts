import { ConfigError } from '../protocol/index.js';

// Kept apart from the etcd client, so that the CLI can check a --registry value without loading gRPC.

export const DEFAULT_REGISTRY_PREFIX = '/switchboard';
/** `etcd://h1:2379,h2:2379` (or a bare `h1:2379,h2:2379`) as the endpoint list an etcd client takes. */
export function parseRegistryUrl(url: string): string[] {
  const rest = url.trim().replace(/^etcd:\/\//i, '');
  const hosts = rest.split(',').map((h) => h.trim()).filter((h) => h.length > 0);
  if (hosts.length === 0) throw new ConfigError(`registry ${url} names no etcd endpoint; give etcd://host:2379[,host:2379]`);
  for (const h of hosts) normalizeEndpoint(h);
  return hosts;
}

/** `http://host:port` from `host:port`, `etcd://host:port` or `http://host:port`; TLS to etcd is not supported yet. */
export function normalizeEndpoint(endpoint: string): string {
  const bare = endpoint.trim().replace(/^(etcd|http):\/\//i, '').replace(/\/+$/, '');
  if (/^https:\/\//i.test(bare)) throw new ConfigError(`etcd endpoint ${endpoint}: TLS to etcd is not supported; use http:// on a trusted network`);
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(bare);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new ConfigError(`etcd endpoint ${endpoint} is not host:port`);
  return `http://${bare}`;
}

/** `/switchboard` from `/switchboard/`, `switchboard` or nothing. */
export function normalizePrefix(prefix: string | undefined): string {
  const p = (prefix ?? DEFAULT_REGISTRY_PREFIX).trim().replace(/\/+$/, '');
  if (p.length === 0) return '';
  return p.startsWith('/') ? p : `/${p}`;
}
