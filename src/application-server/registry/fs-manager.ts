import { EventEmitter } from 'node:events';
import type { Logger } from '../../common/logger.js';
import type { RateLimitedLog } from '../../common/rate-limited-log.js';
import {
  ConfigError,
  EventKind,
  describeReplySchema,
  VERSION_EXTENDED,
  eventKindOf,
  isRequest,
  loadSchema,
  tryDecodeBody,
  type CloseReason,
  type FrameConnection,
  type Hello,
  type LoadReport,
  type ServiceDescriptor,
} from '../../protocol/index.js';
import { isLoopback, type HostAllowList, type TlsOptions } from '../../security/index.js';
import { DEFAULT_OUTLIER, ejectionMs, mayEject, recordOutcome, successRateOutliers, type OutlierOptions } from '../routing/outlier-detector.js';
import { compatibleTiers } from '../routing/scheduler.js';
import { FunctionServerEntry, loadScoreOf, type FsState, type FunctionServerInfo } from './function-server-entry.js';
import { Pool, type PoolHooks } from './pool.js';
import { RegistryRefusal } from './registry-refusal.js';
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
  /** FSs held at once; HELLOs beyond are refused. */
  maxFunctionServers: number;
  /** Service keys one FS may declare. */
  maxServicesPerFs: number;
  /** A HELLO-registered FS unavailable this long is forgotten (it registers again when it returns); 0 keeps it. */
  forgetUnavailableAfterMs: number;
  /** Hosts a HELLO may ask the AS to dial; empty allows any host (loopback only when peers are not authenticated). */
  allowedHosts: HostAllowList;
  /** FSs prove who they are (join secret or mutual TLS); without it only loopback endpoints are dialled. */
  authenticated: boolean;
  /** The FSs' LOAD period: reports closer together than a quarter of it are dropped. */
  loadRefreshMs: number;
  outlier?: Partial<OutlierOptions>;
  joinSecret?: Buffer;
  tls?: TlsOptions;
  authTimeoutMs: number;
  logger: Logger;
  log: RateLimitedLog;
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
  /** An FS's service table changed (it reloaded its plugins). */
  changed: [FunctionServerInfo];
  /** An FS reported its load (believed). */
  load: [FunctionServerInfo];
  /** An FS's pool connections opened or closed: `open` of `expected`. */
  connections: [FunctionServerInfo];
}

/** A compatible set for one (service key, pool type): the active tier, the standby tier, and whether anyone serves the key at all. */
export interface CandidateSet {
  active: FunctionServerEntry[];
  standby: FunctionServerEntry[];
  known: boolean;
}

/** Counts of what the registry refused or dropped, by reason (for metrics). */
export interface RegistryCounters {
  refusedHellos: Map<string, number>;
  droppedLoads: Map<string, number>;
  ejections: number;
  forgotten: number;
}

export const MAX_CACHED_SETS = 10_000;

/** The AS's registry of FSs: who, where, which keys, which state, what load. */
export class FsManager extends EventEmitter<FsManagerEvents> {
  readonly #o: FsManagerOptions;
  readonly #outlier: OutlierOptions;
  readonly #sink: TrafficSink;
  readonly #entries = new Map<string, FunctionServerEntry>();
  readonly #sets = new Map<number, CandidateSet>();
  /** FSs whose DESCRIBE answer passed vet(): only their names count (a refused FS's HELLO list does not). */
  readonly #vetted = new WeakSet<FunctionServerEntry>();
  /** Service names to descriptors, built when first asked after a change. */
  #names: Map<string, ServiceDescriptor> | undefined;
  readonly #retired = new Set<FunctionServerEntry>();
  readonly #hooks: PoolHooks;
  readonly #sweeper: NodeJS.Timeout;
  /** When success rates were last compared: every intervalMs, however often sweep() runs. */
  #successRateAt = Date.now();
  readonly counters: RegistryCounters = { refusedHellos: new Map(), droppedLoads: new Map(), ejections: 0, forgotten: 0 };

  constructor(opts: FsManagerOptions, sink: TrafficSink) {
    super();
    this.#o = opts;
    this.#outlier = { ...DEFAULT_OUTLIER, ...opts.outlier };
    this.#sink = sink;
    this.#hooks = {
      response: (up, buf, off, len) => this.#sink.response(up, buf, off, len),
      drained: (up) => this.#sink.drained(up),
      event: (pool, up, frame) => {
        // A retired entry's connection speaks for the old process only, not for its successor.
        const e = entryOf(pool);
        if (this.#entries.get(e.id) !== e) return;
        const kind = eventKindOf(frame);
        if (kind === EventKind.DRAIN) this.markDraining(e.id);
        else if (kind === EventKind.CHANGED && isRequest(frame)) pool.describe(up);
        else if (kind === EventKind.DESCRIBE && !isRequest(frame)) this.#redescribed(e, up, tryDecodeBody(frame));
        else if (kind === EventKind.LOAD && isRequest(frame)) this.#poolLoad(pool, up, frame);
      },
      vet: (pool, described) => this.#vet(entryOf(pool), described),
      up: (pool, _up, described) => this.#onUp(entryOf(pool), described),
      down: (pool, _up, reason, err, orphans) => this.#onDown(entryOf(pool), reason, err, orphans),
      connectFailed: (pool, err, failures) => this.#onConnectFailed(entryOf(pool), err, failures),
    };
    const every = Math.max(50, Math.min(this.#outlier.intervalMs, opts.forgetUnavailableAfterMs > 0 ? opts.forgetUnavailableAfterMs / 4 : Infinity));
    this.#sweeper = setInterval(() => this.sweep(Date.now()), every);
    this.#sweeper.unref();
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Candidate sets cached now (at most 10,000: requests for any number of keys cannot grow it further). */
  get cachedCandidateSets(): number {
    return this.#sets.size;
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
    if (this.#entries.size >= this.#o.maxFunctionServers) throw new ConfigError(`the registry holds ${this.#entries.size} function servers, maxFunctionServers; remove one first or raise the limit`);
    const e = this.#create(id, 'manual', o.host, o.port, {
      name: id,
      poolType: o.poolType ?? 0,
      standby: o.standby ?? false,
      services: o.services,
    });
    return e.info();
  }

  /**
   * Registers or refreshes an FS from a HELLO that came on `link`. A name belongs to the live link
   * that holds it, and an endpoint to the entry that holds it: a second HELLO for either is refused
   * while its holder is alive and not draining. Throws RegistryRefusal, which the control port
   * sends back; nothing changes then.
   */
  registerFromHello(h: Hello, link: FrameConnection): FunctionServerEntry {
    this.#checkHello(h);
    // DRAIN and LOAD name no FS: they speak for the link's one registration, so a link holds one.
    const held = link.owner as FunctionServerEntry | undefined;
    if (held !== undefined && held.id !== h.name && held.link === link && this.#entries.get(held.id) === held) {
      throw this.#refuse('SB_ERR_BAD_REQUEST', `this control connection registered function server ${held.id}; a control connection registers one FS: open another one for ${h.name}`);
    }
    const prior = this.#entries.get(h.name);
    const sameEndpoint = prior !== undefined && prior.host === h.endpoint.host && prior.port === h.endpoint.port;
    if (prior !== undefined && prior.link !== link) {
      // An FS added by address is held by the operator: a HELLO cannot adopt it (and then park it,
      // demote it to standby or speak for its load); remove it first if the FS should register itself.
      const stillHeld = prior.source === 'manual' ? true : prior.held && prior.state !== 'draining';
      if (stillHeld) {
        throw this.#refuse('SB_ERR_NAME_TAKEN', `the name ${h.name} belongs to a live function server (${prior.link?.remote ?? `added at ${prior.host}:${prior.port}`}); stop it first or give this one another --name`);
      }
    }
    const holder = this.#endpointHolder(h.endpoint.host, h.endpoint.port, prior);
    if (holder !== undefined) {
      if (holder.held || holder.state === 'available' || holder.state === 'connecting' || holder.state === 'ejected') {
        throw this.#refuse('SB_ERR_ENDPOINT_TAKEN', `${h.endpoint.host}:${h.endpoint.port} is the endpoint of function server ${holder.id}; each FS has its own data port`);
      }
      this.removeFunctionServer(holder.id, `its endpoint was claimed by ${h.name}`);
    }
    if (prior !== undefined && sameEndpoint) {
      this.#bind(prior, link);
      prior.poolType = h.poolType;
      prior.standby = h.standby;
      if (prior.state === 'draining' || prior.state === 'unavailable') {
        this.#setState(prior, prior.pool.readyCount > 0 ? 'available' : 'connecting', 'said HELLO again');
      }
      prior.pool.retryNow();
      this.#invalidate();
      return prior;
    }
    if (prior !== undefined) this.#retire(prior, 'replaced by a HELLO with a new endpoint', 'function server replaced by a new registration; the old one finishes its in-flight requests');
    else if (this.#entries.size >= this.#o.maxFunctionServers) {
      throw this.#refuse('SB_ERR_REGISTRY_FULL', `this application server holds ${this.#entries.size} function servers, its maxFunctionServers; retry later or raise the limit`);
    }
    const e = this.#create(h.name, 'hello', h.endpoint.host, h.endpoint.port, h);
    this.#bind(e, link);
    return e;
  }

  /** The link that registered an FS closed: the FS stays (its pool may still work) but no longer holds its name. */
  linkClosed(link: FrameConnection): void {
    for (const e of this.#entries.values()) if (e.link === link) e.link = undefined;
  }

  #checkHello(h: Hello): void {
    if (h.services.length > this.#o.maxServicesPerFs) {
      throw this.#refuse('SB_ERR_LIMIT', `HELLO declares ${h.services.length} service keys; this application server takes at most ${this.#o.maxServicesPerFs} per function server`);
    }
    const refusal = this.checkEndpointHost(h.endpoint.host);
    if (refusal !== undefined) throw this.#refuse('SB_ERR_HOST_NOT_ALLOWED', refusal);
  }

  /** Why this AS will not dial `host` (allowedFsHosts, or loopback only without a join secret), or undefined. */
  checkEndpointHost(host: string): string | undefined {
    if (this.#o.allowedHosts.size > 0) {
      if (!this.#o.allowedHosts.allows(host)) return `endpoint host ${host} is not on this application server's allowed hosts; add it to allowedFsHosts or advertise another host`;
    } else if (!this.#o.authenticated && !isLoopback(host)) {
      return `endpoint host ${host} is not loopback, and without a join secret this application server dials loopback only; give the AS and the FS the same --join-secret-file`;
    }
    return undefined;
  }

  #refuse(code: string, message: string): RegistryRefusal {
    this.counters.refusedHellos.set(code, (this.counters.refusedHellos.get(code) ?? 0) + 1);
    return new RegistryRefusal(code, message);
  }

  #endpointHolder(host: string, port: number, except: FunctionServerEntry | undefined): FunctionServerEntry | undefined {
    for (const e of this.#entries.values()) if (e !== except && e.host === host && e.port === port) return e;
    return undefined;
  }

  #bind(e: FunctionServerEntry, link: FrameConnection): void {
    if (e.link !== undefined && e.link !== link && !e.link.closed) e.link.close('local');
    e.link = link;
    link.owner = e;
  }

  /**
   * A newer process registered under this name elsewhere (it started before the old one exited,
   * or the old one died). The old one leaves the registry at once but keeps its connections until
   * what it has in flight is answered, so a rolling restart cuts nothing short.
   */
  #retire(e: FunctionServerEntry, reason: string, message: string): void {
    this.#entries.delete(e.id);
    this.#invalidate();
    e.retired = true;
    this.#stopEjection(e);
    this.#o.logger.info({ fs: e.id, inflight: e.inflight, reason }, message);
    this.emit('left', e.info(), reason);
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

  /**
   * Takes `id` out of the registry. With `finishInflight`, as an operator's remove: no new requests,
   * while the connections stay until what is in flight there is answered (or its deadline passes);
   * without, the pool closes at once.
   */
  removeFunctionServer(id: string, reason = 'removed', finishInflight = false): boolean {
    const e = this.#entries.get(id);
    if (!e) return false;
    if (finishInflight) {
      this.#retire(e, reason, 'function server removed; it finishes its in-flight requests');
      return true;
    }
    this.#entries.delete(id);
    this.#invalidate();
    this.#stopEjection(e);
    e.pool.close();
    this.#o.logger.info({ fs: id, reason }, 'function server left');
    this.emit('left', e.info(), reason);
    return true;
  }

  /**
   * A LOAD from `link`. Believed only from the link that holds the entry, only while that entry is
   * still registered, and at most about four times per report period; the AS stamps its own time.
   * Returns false when the report was dropped.
   */
  reportLoad(link: FrameConnection, report: LoadReport, receivedAt: number): boolean {
    const e = link.owner as FunctionServerEntry | undefined;
    if (e === undefined || this.#entries.get(e.id) !== e || e.link !== link) {
      this.dropLoad('not-registered');
      return false;
    }
    return this.#applyLoad(e, report, receivedAt);
  }

  /**
   * A LOAD on a pool connection this AS dialled (registry mode: no control link): believed like a
   * control-port LOAD for that entry, from its first ready connection only (the FS sends one on
   * each; the others are the same report), and under the same rate bound.
   */
  #poolLoad(pool: Pool, up: UpstreamConnection, frame: Buffer): void {
    const e = entryOf(pool);
    if (pool.connections()[0] !== up) return;
    const l = loadSchema.safeParse(tryDecodeBody(frame));
    if (!l.success) {
      this.dropLoad('malformed');
      this.#o.log.warn(`load-malformed:${e.id}`, { fs: e.id }, 'LOAD on a pool connection ignored: malformed');
      return;
    }
    this.#applyLoad(e, l.data, Date.now());
  }

  #applyLoad(e: FunctionServerEntry, report: LoadReport, receivedAt: number): boolean {
    if (e.loadReceivedAt > 0 && receivedAt - e.loadReceivedAt < this.#o.loadRefreshMs / 4) {
      this.dropLoad('too-often');
      return false;
    }
    e.load = report;
    e.loadScore = loadScoreOf(report);
    e.loadReceivedAt = receivedAt;
    if (report.directRequests !== undefined) e.directRequests = report.directRequests;
    this.emit('load', e.info(receivedAt));
    return true;
  }

  /** The registry changed: cached candidate sets and names are stale. */
  #invalidate(): void {
    this.#sets.clear();
    this.#names = undefined;
  }

  /** Counts a LOAD that was not believed (metrics). */
  dropLoad(why: string): void {
    this.counters.droppedLoads.set(why, (this.counters.droppedLoads.get(why) ?? 0) + 1);
  }

  /** Drops an FS's pool connections but keeps it and keeps probing (DisposePoolConnections). False for an unknown id. */
  dispose(id: string): boolean {
    const e = this.#entries.get(id);
    if (!e) return false;
    this.#o.logger.info({ fs: id }, 'pool connections disposed by an operator; probing goes on');
    e.pool.dispose();
    return true;
  }

  /** Dials an FS now, skipping any backoff wait (ReconnectPool). False for an unknown id. */
  reconnect(id: string): boolean {
    const e = this.#entries.get(id);
    if (!e) return false;
    e.pool.retryNow();
    return true;
  }

  /** An operator parks an FS: no new requests, in-flight ones finish. False for an unknown id. */
  drain(id: string): boolean {
    const e = this.#entries.get(id);
    if (!e) return false;
    if (e.state !== 'draining') this.#setState(e, 'draining', 'drained by an operator');
    return true;
  }

  /** Takes a drained FS back (available if a connection is ready). False for an unknown id. */
  undrain(id: string): boolean {
    const e = this.#entries.get(id);
    if (!e) return false;
    if (e.state === 'draining') this.#setState(e, e.pool.readyCount > 0 ? 'available' : 'connecting', 'undrained by an operator');
    return true;
  }

  markDraining(id: string): void {
    const e = this.#entries.get(id);
    if (!e || e.state === 'draining') return;
    this.#setState(e, 'draining', 'the FS asked to drain');
  }

  /** One answer from (or timeout of) an FS, for outlier detection. */
  recordOutcome(e: FunctionServerEntry, failed: boolean): void {
    if (failed) e.failures++;
    if (!recordOutcome(e.outlier, failed, this.#outlier) || e.retired || e.state !== 'available') return;
    this.#eject(e, `${e.outlier.consecutiveFailures} failures in a row`);
  }

  #eject(e: FunctionServerEntry, why: string): boolean {
    const peers = [...this.#entries.values()].filter((p) => p === e || p.sharesKeyWith(e));
    const ejected = peers.filter((p) => p.state === 'ejected').length;
    if (!mayEject(ejected, peers.length, this.#outlier)) {
      this.#o.log.warn(`no-eject:${e.id}`, { fs: e.id, why, ejected, peers: peers.length, maxEjectionPercent: this.#outlier.maxEjectionPercent }, 'function server is an outlier but too many of its peers are ejected already; keeping it');
      return false;
    }
    const ms = ejectionMs(e.outlier, this.#outlier);
    e.outlier.ejections++;
    e.outlier.ejectedUntil = Date.now() + ms;
    e.outlier.consecutiveFailures = 0;
    this.counters.ejections++;
    this.#setState(e, 'ejected', `${why}; back in ${ms} ms`);
    clearTimeout(e.ejectionTimer);
    e.ejectionTimer = setTimeout(() => this.#unEject(e), ms);
    e.ejectionTimer.unref();
    return true;
  }

  #unEject(e: FunctionServerEntry): void {
    e.ejectionTimer = undefined;
    e.outlier.ejectedUntil = 0;
    if (this.#entries.get(e.id) !== e || e.state !== 'ejected') return;
    this.#setState(e, e.pool.readyCount > 0 ? 'available' : 'unavailable', 'ejection time is over');
  }

  #stopEjection(e: FunctionServerEntry): void {
    clearTimeout(e.ejectionTimer);
    e.ejectionTimer = undefined;
  }

  /** The periodic work: success-rate outliers, and forgetting FSs unavailable for too long. */
  sweep(now: number): void {
    const all = [...this.#entries.values()];
    if (now - this.#successRateAt >= this.#outlier.intervalMs) {
      this.#successRateAt = now;
      this.#compareSuccessRates(all);
    }
    this.#forget(all, now);
  }

  #compareSuccessRates(all: FunctionServerEntry[]): void {
    // Success rates are compared among FSs that serve the same keys: different services fail differently.
    const groups = new Map<string, FunctionServerEntry[]>();
    for (const e of all) {
      if (e.state !== 'available') continue;
      const sig = [...e.services.keys()].sort((a, b) => a - b).join(',');
      const g = groups.get(sig);
      if (g) g.push(e);
      else groups.set(sig, [e]);
    }
    for (const g of groups.values()) {
      for (const e of successRateOutliers(g, this.#outlier)) this.#eject(e, `success rate far below its peers'`);
    }
  }

  #forget(all: FunctionServerEntry[], now: number): void {
    const forget = this.#o.forgetUnavailableAfterMs;
    if (forget <= 0) return;
    for (const e of all) {
      if (e.source === 'hello' && e.state === 'unavailable' && e.unavailableSince > 0 && now - e.unavailableSince >= forget) {
        this.counters.forgotten++;
        e.link?.close('local');
        this.removeFunctionServer(e.id, `unavailable for ${now - e.unavailableSince} ms; it registers again when it returns`);
      }
    }
  }

  /** A key served under two names, or a name given to two keys, across FSs: the first one stands. */
  #nameClash(e: FunctionServerEntry, services: readonly ServiceDescriptor[]): string | undefined {
    for (const s of services) {
      for (const other of this.#entries.values()) {
        if (other === e || !this.#vetted.has(other)) continue;
        for (const o of other.services.values()) {
          if (s.name !== undefined && o.name === s.name && o.key !== s.key) return `service name ${s.name} is key ${o.key} on ${other.id}, but key ${s.key} here; a name belongs to one key`;
          if (o.key === s.key && s.name !== undefined && o.name !== undefined && o.name !== s.name) return `service key ${s.key} is named ${o.name} on ${other.id}, but ${s.name} here; one key has one name`;
        }
      }
    }
    return undefined;
  }

  /** The service registered under `name` (a contract's name), from any FS that serves it. */
  resolveName(name: string): ServiceDescriptor | undefined {
    if (this.#names === undefined) {
      this.#names = new Map();
      for (const e of this.#entries.values()) {
        if (!this.#vetted.has(e)) continue;
        for (const d of e.services.values()) if (d.name !== undefined && !this.#names.has(d.name)) this.#names.set(d.name, d);
      }
    }
    return this.#names.get(name);
  }

  /** The compatible FSs for a request, split into tiers; cached until the registry changes. */
  candidates(serviceKey: number, poolType: number): CandidateSet {
    const k = serviceKey * 65536 + poolType;
    let set = this.#sets.get(k);
    if (set === undefined) {
      const tiers = compatibleTiers(this.#entries.values(), serviceKey, poolType);
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
    clearInterval(this.#sweeper);
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
        joinSecret: this.#o.joinSecret,
        tls: this.#o.tls,
        authTimeoutMs: this.#o.authTimeoutMs,
      },
      this.#hooks,
    );
    const e = new FunctionServerEntry(id, source, pool, init);
    pool.owner = e;
    this.#entries.set(id, e);
    this.#invalidate();
    this.#o.logger.info({ fs: id, host, port, poolType: e.poolType, standby: e.standby, source }, 'function server joined');
    this.emit('joined', e.info());
    pool.fill();
    return e;
  }

  /** Whether a pool connection's DESCRIBE answer may make it ready. */
  #vet(e: FunctionServerEntry, described: unknown): string | undefined {
    const d = describeReplySchema.safeParse(described);
    if (!d.success) return 'its DESCRIBE answer is malformed';
    const clash = this.#nameClash(e, d.data.services);
    if (clash !== undefined) {
      this.counters.refusedHellos.set('SB_ERR_NAME_CLASH', (this.counters.refusedHellos.get('SB_ERR_NAME_CLASH') ?? 0) + 1);
      this.#o.log.warn(`name-clash:${e.id}`, { fs: e.id, clash }, 'function server refused: its service names disagree with the registry');
      return clash;
    }
    if (d.data.services.length > this.#o.maxServicesPerFs) return `it declares ${d.data.services.length} service keys, over maxServicesPerFs ${this.#o.maxServicesPerFs}`;
    if (e.source === 'hello' && d.data.name !== e.name) {
      // The endpoint a HELLO named is some other FS: the HELLO lied, or the FS moved. Believe the endpoint.
      this.#o.log.warn(`impostor:${e.id}`, { fs: e.id, answeredAs: d.data.name, endpoint: `${e.host}:${e.port}`, from: e.link?.remote }, 'the endpoint a HELLO named answers as another function server; dropping that registration');
      this.counters.refusedHellos.set('SB_ERR_ENDPOINT_MISMATCH', (this.counters.refusedHellos.get('SB_ERR_ENDPOINT_MISMATCH') ?? 0) + 1);
      e.link?.destroy('protocol', new Error(`the endpoint it named answers as ${d.data.name}`));
      this.removeFunctionServer(e.id, `its endpoint answers as ${d.data.name}`);
      return `it answers as ${d.data.name}, not ${e.name}`;
    }
    return undefined;
  }

  /** The FS's new table, after it said CHANGED: vetted like the first one; a refused one costs the connection. */
  #redescribed(e: FunctionServerEntry, up: UpstreamConnection, described: unknown): void {
    const refusal = this.#vet(e, described);
    if (refusal !== undefined) {
      e.pool.markDamaged(up, refusal);
      return;
    }
    this.#onUp(e, described);
    this.#o.logger.info({ fs: e.id, services: [...e.services.keys()] }, 'function server changed its services');
    this.emit('changed', e.info());
  }

  #onUp(e: FunctionServerEntry, described: unknown): void {
    const d = describeReplySchema.parse(described);
    if (e.source === 'manual') {
      e.name = d.name;
      e.poolType = d.poolType;
      e.standby = d.standby;
    }
    // The FS's own answer on an authenticated pool connection is what the AS routes on.
    e.setServices(d.services);
    e.weight = d.weight;
    e.readsExtension = d.versions.includes(VERSION_EXTENDED);
    this.#vetted.add(e);
    this.#invalidate();
    if (e.state === 'connecting' || e.state === 'unavailable') {
      this.#setState(e, 'available', e.state === 'unavailable' ? 're-admitted: a connection answered again' : 'connected');
    }
    this.emit('connections', e.info());
  }

  #onDown(e: FunctionServerEntry, reason: CloseReason, err: Error | undefined, orphans: PendingRequest[]): void {
    const fields = { fs: e.id, reason, err: err?.message, orphans: orphans.length };
    // A draining FS that closes with nothing owed is a rolling restart going as planned, not a warning.
    if (reason === 'local') this.#o.logger.debug(fields, 'pool connection to function server closed');
    else if (e.state === 'draining' && reason === 'remote' && orphans.length === 0) this.#o.logger.info(fields, 'pool connection to function server closed');
    else this.#o.log.warn(`down:${e.id}`, fields, 'pool connection to function server closed');
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
    if (!e.retired && this.#entries.get(e.id) === e) this.emit('connections', e.info());
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
    e.unavailableSince = to === 'unavailable' ? Date.now() : 0;
    if (from === 'ejected' && to !== 'ejected') this.#stopEjection(e);
    this.#invalidate();
    const level = to === 'unavailable' || to === 'ejected' ? 'warn' : 'info';
    if (level === 'warn') this.#o.log.warn(`state:${e.id}:${to}`, { fs: e.id, from, to, why }, `function server is ${to}`);
    else this.#o.logger.info({ fs: e.id, from, to, why }, `function server is ${to}`);
    this.emit('state', e.info(), from);
  }
}

function entryOf(pool: Pool): FunctionServerEntry {
  return pool.owner as FunctionServerEntry;
}
