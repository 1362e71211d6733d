import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../common/logger.js';
import type { RateLimitedLog } from '../common/rate-limited-log.js';
import { asKey, checkName, createEtcdClient, DEFAULT_LEASE_TTL_SECONDS, LeasedKey, normalizePrefix, type AsRegistration, type RegistryOptions } from './etcd-registry.js';
import { FsWatcher, type RegistryTarget } from './fs-watcher.js';

export interface AsRegistryOptions extends RegistryOptions {
  /** This AS's key under `<prefix>/as/` (default: its pair node id, else `as-<hostname>-<pid>-<random>`). */
  name?: string;
  /** See FsWatcherOptions.removeGraceMs. */
  removeGraceMs?: number;
}

/** A default AS name that is a valid key segment and unique across containers. */
export function defaultAsName(): string {
  const host = hostname().replace(/[^A-Za-z0-9.-]/g, '').slice(0, 40) || 'host';
  return `as-${host}-${process.pid}-${randomBytes(2).toString('hex')}`;
}

/**
 * The AS's part of the registry: watches `<prefix>/fs/` (FsWatcher) and keeps its own client
 * endpoint under `<prefix>/as/<name>` with a lease, for clients that find ASs in etcd.
 */
export class AsDiscovery {
  readonly prefix: string;
  readonly name: string;
  readonly watcher: FsWatcher;
  readonly #client: ReturnType<typeof createEtcdClient>;
  readonly #o: AsRegistryOptions;
  readonly #logger: Logger;
  readonly #log: RateLimitedLog;
  #key: LeasedKey | undefined;

  constructor(opts: AsRegistryOptions, target: RegistryTarget, fallbackName: string | undefined, logger: Logger, log: RateLimitedLog) {
    this.#o = opts;
    this.prefix = normalizePrefix(opts.prefix);
    this.name = checkName(opts.name ?? fallbackName ?? defaultAsName(), 'application server name');
    this.#client = createEtcdClient(opts.endpoints);
    this.#logger = logger;
    this.#log = log;
    this.watcher = new FsWatcher(this.#client, target, { prefix: this.prefix, removeGraceMs: opts.removeGraceMs, logger, log });
  }

  /** Starts watching and registers `endpoint` (the client port clients should dial). Does not wait for etcd. */
  start(endpoint: { host: string; port: number; httpPort?: number }): void {
    const value: AsRegistration = { name: this.name, ...endpoint };
    this.#key = new LeasedKey(this.#client, asKey(this.prefix, this.name), () => JSON.stringify(value), this.#o.ttlSeconds ?? DEFAULT_LEASE_TTL_SECONDS, this.#logger, this.#log);
    this.#key.start();
    this.watcher.start();
    this.#logger.info({ registry: this.#o.endpoints, prefix: this.prefix, name: this.name }, 'using the etcd registry');
  }

  /** Whether this AS's key is in etcd as far as it knows. */
  get registered(): boolean {
    return this.#key?.registered ?? false;
  }

  async stop(): Promise<void> {
    await Promise.all([this.#key?.stop(), this.watcher.stop()]);
    this.#client.close();
  }
}
