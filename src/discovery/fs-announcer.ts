import type { Logger } from '../common/logger.js';
import type { RateLimitedLog } from '../common/rate-limited-log.js';
import { createEtcdClient, DEFAULT_LEASE_TTL_SECONDS, fsKey, LeasedKey, normalizePrefix, type FsRegistration, type RegistryOptions } from './etcd-registry.js';

/**
 * The FS's part of the registry: its registration under `<prefix>/fs/<name>`, on a lease it keeps
 * alive. The key goes when the FS drains (stop()) or dies (the lease expires).
 */
export class FsAnnouncer {
  readonly prefix: string;
  readonly #client: ReturnType<typeof createEtcdClient>;
  readonly #key: LeasedKey;

  constructor(opts: RegistryOptions, name: string, value: () => FsRegistration, logger: Logger, log: RateLimitedLog) {
    this.prefix = normalizePrefix(opts.prefix);
    const key = fsKey(this.prefix, name);
    this.#client = createEtcdClient(opts.endpoints);
    this.#key = new LeasedKey(this.#client, key, () => JSON.stringify(value()), opts.ttlSeconds ?? DEFAULT_LEASE_TTL_SECONDS, logger, log);
  }

  get registered(): boolean {
    return this.#key.registered;
  }

  start(): void {
    this.#key.start();
  }

  /** Deletes the key (at most `timeoutMs` waiting for etcd) and closes the etcd client. */
  async stop(timeoutMs = 2000): Promise<void> {
    await this.#key.stop(timeoutMs);
    this.#client.close();
  }
}
