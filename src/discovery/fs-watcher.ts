import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { backoffDelay } from '../common/backoff.js';
import type { Logger } from '../common/logger.js';
import type { RateLimitedLog } from '../common/rate-limited-log.js';
import type { FunctionServerInfo } from '../application-server/registry/function-server-entry.js';
import type { AddFunctionServerOptions, FsManager } from '../application-server/registry/fs-manager.js';
import { fsDir, fsRegistrationSchema, parseValue, type FsRegistration } from './etcd-registry.js';

/** What the watcher drives: the AS's own add/remove paths (ApplicationServer fits). */
export interface RegistryTarget {
  readonly manager: FsManager;
  addFunctionServer(o: AddFunctionServerOptions): FunctionServerInfo;
  removeFunctionServer(id: string): boolean;
}

export interface FsWatcherOptions {
  prefix: string;
  /**
   * A key that vanished while its FS still has ready pool connections and is not draining is
   * removed after this (default 5000 ms) unless it comes back: a lease that lapsed while etcd was
   * away is put again by its FS within moments, and the FS keeps serving meanwhile.
   */
  removeGraceMs?: number;
  /** Full re-read of `<prefix>/fs/` on this period, besides every watch (re)connection (default 15000 ms). */
  resyncMs?: number;
  logger: Logger;
  log: RateLimitedLog;
}

/** Why a registry value is refused (docs/registry.md section 2); /metrics shows each from 0. */
export const REFUSAL_REASONS = ['malformed', 'name-mismatch', 'host-not-allowed', 'name-taken', 'registry-full'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

interface Known {
  reg: FsRegistration;
  /** When its key vanished; 0 while it is present. */
  goneAt: number;
}

/**
 * The AS side of the etcd registry: watches `<prefix>/fs/`, adds an FS when its key appears
 * (through addFunctionServer: DESCRIBE before any traffic) and removes it when its key goes.
 * A value that does not parse is refused and counted. etcd being away changes nothing here:
 * the FSs already known keep being served, and the watch and a full re-read resume when it returns.
 */
export class FsWatcher {
  readonly #client: Etcd3;
  readonly #target: RegistryTarget;
  readonly #o: Required<Omit<FsWatcherOptions, 'logger' | 'log'>> & Pick<FsWatcherOptions, 'logger' | 'log'>;
  readonly #dir: string;
  /** FSs this watcher added, by name (the FS id). */
  readonly #known = new Map<string, Known>();
  /** Last etcd revision applied per key (puts and deletes), so an older full read cannot undo a newer event. */
  readonly #revs = new Map<string, number>();
  #watcher: Watcher | undefined;
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  #tick: NodeJS.Timeout | undefined;
  #resyncAt = 0;
  #resyncing: Promise<void> | undefined;
  #stopped = false;
  /** Values refused, by reason (not JSON, bad fields, name taken, host not allowed, registry full). */
  readonly refused = new Map<string, number>();
  /** Full re-reads that succeeded. */
  resyncs = 0;

  constructor(client: Etcd3, target: RegistryTarget, opts: FsWatcherOptions) {
    this.#client = client;
    this.#target = target;
    this.#o = { removeGraceMs: 5000, resyncMs: 15_000, ...opts };
    this.#dir = fsDir(opts.prefix);
  }

  get refusedTotal(): number {
    let n = 0;
    for (const v of this.refused.values()) n += v;
    return n;
  }

  /** Names of the FSs this watcher added and still holds. */
  names(): string[] {
    return [...this.#known.keys()];
  }

  start(): void {
    this.#tick = setInterval(() => this.#onTick(), 250);
    this.#tick.unref();
    this.#watch();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#tick);
    clearTimeout(this.#retry);
    const w = this.#watcher;
    this.#watcher = undefined;
    await w?.cancel().catch(() => undefined);
  }

  #watch(): void {
    this.#retry = undefined;
    if (this.#stopped) return;
    const builder = this.#client.watch().prefix(this.#dir);
    builder
      .create()
      .then((w) => {
        if (this.#stopped) {
          void w.cancel().catch(() => undefined);
          return;
        }
        this.#watcher = w;
        this.#attempt = 0;
        w.on('put', (kv) => this.#put(kv));
        w.on('delete', (kv) => this.#delete(kv));
        // Every reconnection: read everything again, in case events were missed (compaction, a long outage).
        w.on('connected', () => void this.resync());
        w.on('disconnected', (err) => this.#o.log.warn('watch-disconnected', { err: err.message }, 'etcd watch disconnected; the function servers known stay; retrying'));
        w.on('error', (err) => {
          this.#o.log.warn('watch-error', { err: err.message }, 'etcd watch failed; watching again');
          if (this.#watcher !== w) return;
          this.#watcher = undefined;
          void w.cancel().catch(() => undefined);
          this.#again();
        });
        void this.resync();
      })
      .catch((err: unknown) => {
        this.#o.log.warn('watch-create', { err: (err as Error).message }, 'cannot watch etcd; the function servers known stay; retrying');
        this.#again();
      });
  }

  #again(): void {
    if (this.#stopped) return;
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => this.#watch(), backoffDelay(this.#attempt++, { baseMs: 200, capMs: 5000 }));
    this.#retry.unref();
  }

  /** Reads every key under the prefix and applies what the watch may have missed (also on a timer and at each watch connection). */
  resync(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#resyncing ??= this.#readAll().finally(() => (this.#resyncing = undefined));
    return this.#resyncing;
  }

  async #readAll(): Promise<void> {
    this.#resyncAt = Date.now();
    try {
      const res = await this.#client.getAll().prefix(this.#dir).exec();
      if (this.#stopped) return;
      const rev = Number(res.header.revision);
      const present = new Set<string>();
      for (const kv of res.kvs) {
        present.add(kv.key.toString());
        this.#put(kv);
      }
      for (const [name, k] of this.#known) {
        const key = this.#dir + name;
        if (!present.has(key) && (this.#revs.get(key) ?? 0) < rev && k.goneAt === 0) this.#gone(name, key, rev);
      }
      // Tombstones older than this read are settled.
      for (const [key, r] of this.#revs) if (r <= rev && !present.has(key) && !this.#known.has(key.slice(this.#dir.length))) this.#revs.delete(key);
      this.resyncs++;
    } catch (err) {
      this.#o.log.warn('resync-failed', { err: (err as Error).message }, 'cannot read the registry from etcd; the function servers known stay; retrying');
    }
  }

  #refuse(reason: RefusalReason, key: string, detail: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
    this.#o.log.warn(`refused:${reason}`, { key, reason, detail }, 'registry entry refused');
  }

  #put(kv: IKeyValue): void {
    if (this.#stopped) return;
    const key = kv.key.toString();
    const rev = Number(kv.mod_revision);
    if ((this.#revs.get(key) ?? 0) >= rev) return;
    const name = key.slice(this.#dir.length);
    // Refusals that depend on the value alone are counted once per revision, not at every re-read.
    this.#revs.set(key, rev);
    const parsed = parseValue(fsRegistrationSchema, kv.value);
    if (parsed.value === undefined) return this.#refuse('malformed', key, parsed.reason ?? 'malformed');
    const reg = parsed.value;
    if (reg.name !== name) return this.#refuse('name-mismatch', key, `the value names ${reg.name}, the key ${name}`);
    const hostRefusal = this.#target.manager.checkEndpointHost(reg.host);
    if (hostRefusal !== undefined) return this.#refuse('host-not-allowed', key, hostRefusal);
    const known = this.#known.get(name);
    const entry = this.#target.manager.get(name);
    if (known !== undefined && entry !== undefined) {
      known.goneAt = 0;
      const r = known.reg;
      if (r.host === reg.host && r.port === reg.port && r.poolType === reg.poolType && r.standby === reg.standby) {
        known.reg = reg;
        return;
      }
      // Moved or changed role: the new registration replaces the old entry.
      this.#target.removeFunctionServer(name);
      this.#known.delete(name);
    } else if (entry !== undefined) {
      this.#revs.delete(key); // tried again at the next re-read: the holder may leave
      return this.#refuse('name-taken', key, `${name} is already registered (by HELLO or by address)`);
    } else if (known !== undefined) {
      // Removed meanwhile (by an operator, or forgotten): the key says it is back.
      this.#known.delete(name);
    }
    try {
      this.#target.addFunctionServer({ host: reg.host, port: reg.port, name, poolType: reg.poolType, standby: reg.standby });
    } catch (err) {
      this.#revs.delete(key); // tried again at the next re-read: room may have come
      return this.#refuse('registry-full', key, (err as Error).message);
    }
    this.#known.set(name, { reg, goneAt: 0 });
    this.#o.logger.info({ fs: name, host: reg.host, port: reg.port }, 'function server found in the registry');
  }

  #delete(kv: IKeyValue): void {
    if (this.#stopped) return;
    const key = kv.key.toString();
    const rev = Number(kv.mod_revision);
    if ((this.#revs.get(key) ?? 0) >= rev && rev !== 0) return;
    this.#revs.set(key, rev);
    this.#gone(key.slice(this.#dir.length), key, rev);
  }

  #gone(name: string, key: string, rev: number): void {
    const k = this.#known.get(name);
    if (k === undefined) return;
    this.#revs.set(key, Math.max(rev, this.#revs.get(key) ?? 0));
    if (k.goneAt === 0) k.goneAt = Date.now();
    this.#settle(name, k, Date.now());
  }

  /** Removes a vanished FS once it cannot be serving anything we would cut short, or after the grace. */
  #settle(name: string, k: Known, now: number): void {
    const e = this.#target.manager.get(name);
    if (e === undefined) {
      this.#known.delete(name);
      return;
    }
    const idle = e.pool.readyCount === 0 || (e.state === 'draining' && e.inflight === 0);
    if (!idle && now - k.goneAt < this.#o.removeGraceMs) return;
    this.#known.delete(name);
    this.#target.removeFunctionServer(name);
    this.#o.logger.info({ fs: name }, 'function server left the registry');
  }

  #onTick(): void {
    const now = Date.now();
    for (const [name, k] of this.#known) if (k.goneAt > 0) this.#settle(name, k, now);
    if (this.#watcher !== undefined && now - this.#resyncAt >= this.#o.resyncMs) void this.resync();
  }
}
