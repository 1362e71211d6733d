import { EventEmitter } from 'node:events';
import type { Logger } from '../../common/logger.js';
import {
  ConfigError,
  EventKind,
  describeReplySchema,
  eventKindOf,
  type CloseReason,
  type Hello,
  type LoadReport,
  type ServiceDescriptor,
} from '../../protocol/index.js';
import { FunctionServerEntry, loadScoreOf, type FsState, type FunctionServerInfo } from './function-server-entry.js';
import { Pool, type PoolHooks } from './pool.js';
import { compatibleTiers } from '../routing/scheduler.js';
import type { PendingRequest, UpstreamConnection } from './upstream-connection.js';

export interface FsManagerOptions {
  poolSize: number;
  heartbeatMs: number;
  connectTimeoutMs: number;
  reconnectBaseMs: number;
  /** Longest wait between probes of an unavailable FS: the reconnect span. */
  reconnectCapMs: number;
  /** Consecutive failed dials after which a new FS is marked unavailable. */
  ejectAfterFailures: number;
  maxBodyBytes: number;
  logger: Logger;
}

/** Where responses and orphaned requests go: the dispatcher. */
export interface TrafficSink {
  response(up: UpstreamConnection, buf: Buffer, off: number, len: number): void;
  orphaned(fs: FunctionServerEntry, orphans: PendingRequest[]): void;
  drained(up: UpstreamConnection): void;
}

export interface AddFunctionServerOptions {
  host: string;
  port: number;
  /** Defaults to `host:port` until the FS's DESCRIBE answer names it. */
  name?: string;
  poolType?: number;
  standby?: boolean;
  /** Known up front, or learnt from the FS's DESCRIBE answer when it first connects. */
  services?: readonly ServiceDescriptor[];
}

export interface FsManagerEvents {
  joined: [FunctionServerInfo];
  left: [FunctionServerInfo, string];
  state: [FunctionServerInfo, FsState];
}

/** A compatible set for one (service key, pool type): the active tier, the standby tier, and whether anyone serves the key at all. */
export interface CandidateSet {
  active: FunctionServerEntry[];
  standby: FunctionServerEntry[];
  known: boolean;
}

const MAX_CACHED_SETS = 10_000;

/** The AS's registry of FSs: who, where, which keys, which state, what load. */
export class FsManager extends EventEmitter<FsManagerEvents> {
  readonly #o: FsManagerOptions;
  readonly #sink: TrafficSink;
  readonly #entries = new Map<string, FunctionServerEntry>();
  readonly #sets = new Map<number, CandidateSet>();
  readonly #retired = new Set<FunctionServerEntry>();
  readonly #hooks: PoolHooks;

  constructor(opts: FsManagerOptions, sink: TrafficSink) {
    super();
    this.#o = opts;
    this.#sink = sink;
    this.#hooks = {
      response: (up, buf, off, len) => this.#sink.response(up, buf, off, len),
      drained: (up) => this.#sink.drained(up),
      event: (pool, _up, frame) => {
        if (eventKindOf(frame) === EventKind.DRAIN) this.markDraining(entryOf(pool).id);
      },
      up: (pool, _up, described) => this.#onUp(entryOf(pool), described),
      down: (pool, _up, reason, err, orphans) => this.#onDown(entryOf(pool), reason, err, orphans),
      connectFailed: (pool, err, failures) => this.#onConnectFailed(entryOf(pool), err, failures),
    };
  }

  get size(): number {
    return this.#entries.size;
  }

  get(id: string): FunctionServerEntry | undefined {
    return this.#entries.get(id);
  }

  list(): FunctionServerInfo[] {
    const now = Date.now();
    return [...this.#entries.values()].map((e) => e.info(now));
  }

  entries(): IterableIterator<FunctionServerEntry> {
    return this.#entries.values();
  }

  /** Adds an FS by address. Its services come with the options or from its DESCRIBE answer. */
  addFunctionServer(o: AddFunctionServerOptions): FunctionServerInfo {
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new ConfigError(`port ${o.port} must be from 1 to 65535`);
    const id = o.name ?? `${o.host}:${o.port}`;
    if (this.#entries.has(id)) throw new ConfigError(`a function server with id ${id} is already registered; remove it first or use another name`);
    const e = this.#create(id, 'manual', o.host, o.port, {
      name: id,
      poolType: o.poolType ?? 0,
      standby: o.standby ?? false,
      services: o.services,
    });
    return e.info();
  }

  /** Registers or refreshes an FS from its HELLO. A restarted FS (same name) is re-admitted at once. */
  upsertFromHello(h: Hello): FunctionServerEntry {
    const prior = this.#entries.get(h.name);
    if (prior && (prior.host !== h.endpoint.host || prior.port !== h.endpoint.port)) {
      this.#retire(prior);
    } else if (prior) {
      prior.poolType = h.poolType;
      prior.standby = h.standby;
      prior.setServices(h.services);
      if (prior.state === 'draining' || prior.state === 'unavailable') {
        this.#setState(prior, prior.pool.readyCount > 0 ? 'available' : 'connecting', 'said HELLO again');
      }
      prior.pool.retryNow();
      this.#sets.clear();
      return prior;
    }
    return this.#create(h.name, 'hello', h.endpoint.host, h.endpoint.port, h);
  }

  /**
   * A newer process registered under this name elsewhere (it started before the old one exited).
   * The old one leaves the registry at once but keeps its connections until what it has in flight
   * is answered, so a rolling restart cuts nothing short.
   */
  #retire(e: FunctionServerEntry): void {
    this.#entries.delete(e.id);
    this.#sets.clear();
    e.retired = true;
    this.#o.logger.info({ fs: e.id, inflight: e.inflight }, 'function server replaced by a new registration; the old one finishes its in-flight requests');
    this.emit('left', e.info(), 'replaced by a HELLO with a new endpoint');
    this.#retired.add(e);
    this.closeIfRetiredAndIdle(e);
  }

  /** Closes a retired FS's pool once nothing is pending on it. */
  closeIfRetiredAndIdle(e: FunctionServerEntry): void {
    if (!e.retired || e.inflight > 0) return;
    this.#retired.delete(e);
    e.pool.close();
  }

  /** Every FS with connections: the registry plus retired ones still finishing. */
  *withConnections(): IterableIterator<FunctionServerEntry> {
    yield* this.#entries.values();
    yield* this.#retired;
  }

  removeFunctionServer(id: string, reason = 'removed'): boolean {
    const e = this.#entries.get(id);
    if (!e) return false;
    this.#entries.delete(id);
    this.#sets.clear();
    e.pool.close();
    this.#o.logger.info({ fs: id, reason }, 'function server left');
    this.emit('left', e.info(), reason);
    return true;
  }

  reportLoad(id: string, report: LoadReport, receivedAt: number): void {
    const e = this.#entries.get(id);
    if (!e) return;
    e.load = report;
    e.loadScore = loadScoreOf(report);
    e.loadReceivedAt = receivedAt;
  }

  markDraining(id: string): void {
    const e = this.#entries.get(id);
    if (!e || e.state === 'draining') return;
    this.#setState(e, 'draining', 'the FS asked to drain');
  }

  /** The compatible FSs for a request, split into tiers; cached until the registry changes. */
  candidates(serviceKey: number, poolType: number): CandidateSet {
    const k = serviceKey * 65536 + poolType;
    let set = this.#sets.get(k);
    if (set === undefined) {
      const all = [...this.#entries.values()];
      const tiers = compatibleTiers(all, serviceKey, poolType);
      set = {
        active: tiers.active.filter((e) => e.state === 'available'),
        standby: tiers.standby.filter((e) => e.state === 'available'),
        known: tiers.active.length + tiers.standby.length > 0,
      };
      if (this.#sets.size >= MAX_CACHED_SETS) this.#sets.clear();
      this.#sets.set(k, set);
    }
    return set;
  }

  /** Closes every pool and forgets every FS. */
  close(): void {
    for (const id of [...this.#entries.keys()]) this.removeFunctionServer(id, 'application server stopping');
    for (const e of this.#retired) e.pool.close();
    this.#retired.clear();
  }

  #create(id: string, source: 'hello' | 'manual', host: string, port: number, init: ConstructorParameters<typeof FunctionServerEntry>[3]): FunctionServerEntry {
    const pool = new Pool(
      {
        host,
        port,
        size: this.#o.poolSize,
        heartbeatMs: this.#o.heartbeatMs,
        connectTimeoutMs: this.#o.connectTimeoutMs,
        backoff: { baseMs: this.#o.reconnectBaseMs, capMs: this.#o.reconnectCapMs },
        maxBodyBytes: this.#o.maxBodyBytes,
      },
      this.#hooks,
    );
    const e = new FunctionServerEntry(id, source, pool, init);
    pool.owner = e;
    this.#entries.set(id, e);
    this.#sets.clear();
    this.#o.logger.info({ fs: id, host, port, poolType: e.poolType, standby: e.standby, source }, 'function server joined');
    this.emit('joined', e.info());
    pool.fill();
    return e;
  }

  #onUp(e: FunctionServerEntry, described: unknown): void {
    const d = describeReplySchema.safeParse(described);
    if (d.success) {
      if (e.source === 'manual') {
        e.name = d.data.name;
        e.poolType = d.data.poolType;
        e.standby = d.data.standby;
      }
      e.setServices(d.data.services);
      this.#sets.clear();
    }
    if (e.state === 'connecting' || e.state === 'unavailable') {
      this.#setState(e, 'available', e.state === 'unavailable' ? 're-admitted: a connection answered again' : 'connected');
    }
  }

  #onDown(e: FunctionServerEntry, reason: CloseReason, err: Error | undefined, orphans: PendingRequest[]): void {
    const log = reason === 'local' ? 'debug' : 'warn';
    this.#o.logger[log]({ fs: e.id, reason, err: err?.message, orphans: orphans.length }, 'pool connection to function server closed');
    if (e.retired && e.pool.readyCount === 0) {
      this.#retired.delete(e);
      e.pool.close();
    } else if (e.pool.readyCount === 0 && this.#entries.get(e.id) === e) {
      if (e.state === 'draining' && e.source === 'hello') {
        // It will say HELLO again if it comes back; a manual FS is probed instead.
        this.removeFunctionServer(e.id, 'drained');
      } else if (e.state !== 'unavailable' && e.state !== 'connecting') {
        this.#setState(e, 'unavailable', `connection lost (${reason})`);
      }
    }
    if (orphans.length > 0) this.#sink.orphaned(e, orphans);
  }

  #onConnectFailed(e: FunctionServerEntry, err: Error, failures: number): void {
    this.#o.logger.debug({ fs: e.id, err: err.message, failures }, 'dial to function server failed');
    if (e.state === 'connecting' && failures >= this.#o.ejectAfterFailures) {
      this.#setState(e, 'unavailable', `${failures} dials failed: ${err.message}`);
    }
  }

  #setState(e: FunctionServerEntry, to: FsState, why: string): void {
    const from = e.state;
    if (from === to) return;
    e.state = to;
    this.#sets.clear();
    const level = to === 'unavailable' ? 'warn' : 'info';
    this.#o.logger[level]({ fs: e.id, from, to, why }, `function server is ${to}`);
    this.emit('state', e.info(), from);
  }
}

function entryOf(pool: Pool): FunctionServerEntry {
  return pool.owner as FunctionServerEntry;
}
