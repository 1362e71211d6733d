import type { Etcd3, Lease } from 'etcd3';
import { z } from 'zod';
import { backoffDelay } from '../common/backoff.js';
import { etcd3 } from '../common/etcd3.js';
import type { Logger } from '../common/logger.js';
import type { RateLimitedLog } from '../common/rate-limited-log.js';
import { ConfigError } from '../protocol/index.js';
import { normalizeEndpoint } from './registry-url.js';

export * from './registry-url.js';

/** Where the registry lives and under which prefix (docs/registry.md). */
export interface RegistryOptions {
  /** etcd endpoints: `host:port`, `http://host:port` or `etcd://host:port`. */
  endpoints: readonly string[];
  /** Key prefix, so one etcd can serve several clusters (default `/switchboard`). */
  prefix?: string;
  /** TTL of the lease this process's key lives under, in seconds (default 10; etcd takes at least about 2). */
  ttlSeconds?: number;
}

export const DEFAULT_LEASE_TTL_SECONDS = 10;
/** Unary etcd calls give up after this; the caller retries (a stopped etcd would hold them forever). */
const CALL_DEADLINE_MS = 5000;

/** Names become one key segment: no slash, bounded length. */
const NAME = /^[A-Za-z0-9._:@-]{1,128}$/;

export function checkName(name: string, what: string): string {
  if (!NAME.test(name)) throw new ConfigError(`${what} ${JSON.stringify(name)} cannot be a registry key: use 1 to 128 of A-Z a-z 0-9 . _ : @ -`);
  return name;
}

export const fsDir = (prefix: string): string => `${prefix}/fs/`;
export const asDir = (prefix: string): string => `${prefix}/as/`;
export const fsKey = (prefix: string, name: string): string => `${fsDir(prefix)}${checkName(name, 'function server name')}`;
export const asKey = (prefix: string, name: string): string => `${asDir(prefix)}${checkName(name, 'application server name')}`;

const host = z.string().min(1).max(253);
const port = z.number().int().min(1).max(65535);

/** The value under `<prefix>/fs/<name>`: JSON. Unknown fields are ignored (newer writers may add some). */
export const fsRegistrationSchema = z.object({
  name: z.string().regex(NAME),
  host,
  port,
  poolType: z.number().int().min(0).max(0xffff).default(0),
  standby: z.boolean().default(false),
  /** Informational: the AS routes on the FS's own DESCRIBE answer. */
  services: z.array(z.number().int().min(0).max(0xffffffff)).max(65_536).default([]),
  weight: z.number().int().min(1).max(1000).default(1),
});
export type FsRegistration = z.infer<typeof fsRegistrationSchema>;

/** The value under `<prefix>/as/<name>`: the AS's client endpoint. */
export const asRegistrationSchema = z.object({
  name: z.string().regex(NAME),
  host,
  port,
  httpPort: port.optional(),
});
export type AsRegistration = z.infer<typeof asRegistrationSchema>;

/** Largest value read from the registry; longer ones are refused before JSON.parse. */
export const MAX_VALUE_BYTES = 64 * 1024;

/** Parses a registry value with `schema`; undefined and a reason when it does not parse. */
export function parseValue<T>(schema: z.ZodType<T>, raw: Buffer | string): { value?: T; reason?: string } {
  if (raw.length > MAX_VALUE_BYTES) return { reason: `value of ${raw.length} bytes, over ${MAX_VALUE_BYTES}` };
  let json: unknown;
  try {
    json = JSON.parse(raw.toString());
  } catch {
    return { reason: 'not JSON' };
  }
  const r = schema.safeParse(json);
  if (!r.success) return { reason: r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ') };
  return { value: r.data };
}

/** An etcd client whose unary calls time out (so a stopped etcd fails them) and whose connection is probed. */
export function createEtcdClient(endpoints: readonly string[]): Etcd3 {
  if (endpoints.length === 0) throw new ConfigError('registry.endpoints is empty: give at least one etcd host:port');
  return new (etcd3().Etcd3)({
    hosts: endpoints.map(normalizeEndpoint),
    dialTimeout: 3000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS }),
    // etcd's default keepalive policy allows a ping every 5 s at most.
    grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5000, 'grpc.keepalive_permit_without_calls': 1 },
  });
}

/**
 * One key kept alive under a lease: put at start(), put again under a new lease whenever the lease
 * is lost (etcd was away longer than the TTL), deleted at stop(). etcd being away never throws:
 * it is logged (rate-limited) and retried with backoff.
 */
export class LeasedKey {
  readonly #client: Etcd3;
  readonly #key: string;
  readonly #value: () => string;
  readonly #ttl: number;
  readonly #logger: Logger;
  readonly #log: RateLimitedLog;
  #lease: Lease | undefined;
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Whether the key is in etcd as far as this process knows. */
  registered = false;
  /** Times the key was put (the first time and after each loss). */
  puts = 0;

  constructor(client: Etcd3, key: string, value: () => string, ttlSeconds: number, logger: Logger, log: RateLimitedLog) {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 3600) throw new ConfigError(`registry ttlSeconds ${ttlSeconds} must be from 1 to 3600`);
    this.#client = client;
    this.#key = key;
    this.#value = value;
    this.#ttl = ttlSeconds;
    this.#logger = logger;
    this.#log = log;
  }

  get key(): string {
    return this.#key;
  }

  start(): void {
    void this.#register();
  }

  async #register(): Promise<void> {
    this.#retry = undefined;
    if (this.#stopped) return;
    const lease = this.#client.lease(this.#ttl);
    this.#lease = lease;
    /** Whether our key was put under this lease: only then can losing it be called a loss. */
    let held = false;
    lease.on('lost', (err: Error) => {
      if (this.#lease !== lease || this.#stopped) return;
      this.registered = false;
      // etcd3 reports a grant that failed (etcd down at start) as a lost lease, before the put fails.
      if (held) this.#log.warn(`lease-lost:${this.#key}`, { key: this.#key, err: err.message }, 'registry lease lost; registering again');
      else this.#log.warn(`put-failed:${this.#key}`, { key: this.#key, err: err.message }, 'cannot register in etcd; retrying');
      this.#again(lease);
    });
    try {
      await lease.put(this.#key).value(this.#value()).exec();
      if (this.#lease !== lease || this.#stopped) return;
      held = true;
      this.#attempt = 0;
      this.registered = true;
      this.puts++;
      this.#logger.info({ key: this.#key, ttlSeconds: this.#ttl }, 'registered in etcd');
    } catch (err) {
      if (this.#lease !== lease || this.#stopped) return;
      this.registered = false;
      this.#log.warn(`put-failed:${this.#key}`, { key: this.#key, err: (err as Error).message }, 'cannot register in etcd; retrying');
      this.#again(lease);
    }
  }

  #again(lease: Lease): void {
    lease.release();
    this.#lease = undefined;
    clearTimeout(this.#retry);
    const delay = backoffDelay(this.#attempt++, { baseMs: 200, capMs: 5000 });
    this.#retry = setTimeout(() => void this.#register(), delay);
    this.#retry.unref();
  }

  /** Deletes the key (by revoking its lease); waits at most `timeoutMs` for etcd. Never throws. */
  async stop(timeoutMs = 2000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#retry);
    const lease = this.#lease;
    this.#lease = undefined;
    this.registered = false;
    // Revoking deletes exactly the keys under our lease: never a successor's key of the same name.
    const work = (lease ? lease.revoke() : Promise.resolve()).catch((err: unknown) => this.#log.warn(`delete-failed:${this.#key}`, { key: this.#key, err: (err as Error).message }, 'cannot delete the registry key; it goes when its lease expires'));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([work, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    lease?.release();
  }
}
