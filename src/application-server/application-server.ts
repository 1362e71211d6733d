import { EventEmitter } from 'node:events';
import { FD_RESERVE, openFileLimit } from '../common/fd-limit.js';
import { silentLogger, type Logger } from '../common/logger.js';
import { RateLimitedLog } from '../common/rate-limited-log.js';
import { ConfigError, DEFAULT_HEARTBEAT_MS, DEFAULT_MAX_BODY_BYTES } from '../protocol/index.js';
import { HostAllowList, isLoopback, toSecret, type TlsOptions } from '../security/index.js';
import { advertisedHost, isWildcardHost } from '../common/addresses.js';
import { ClientIngress } from './ingress/client-ingress.js';
import { HttpIngress } from './ingress/http-ingress.js';
import { ControlListener } from './registry/control-listener.js';
import type { FsState, FunctionServerInfo } from './registry/function-server-entry.js';
import { FsManager, type AddFunctionServerOptions } from './registry/fs-manager.js';
import { Dispatcher } from './routing/dispatcher.js';
import type { OutlierOptions } from './routing/outlier-detector.js';
import { Director } from './routing/director.js';
import { DEFAULT_LEAST_LOADED, STRATEGY_NAMES, createStrategy, guardedStrategy, type SchedulingStrategy, type StrategyName } from './routing/scheduler.js';
import { PairNode, type PairOptions } from './pair/pair-node.js';
import { EtcdElection, type EtcdPairOptions, type PairParticipant } from './pair/etcd-election.js';
import type { PairRole, SiblingView } from './pair/pair-machine.js';
import type { AsDiscovery, AsRegistryOptions } from '../discovery/as-discovery.js';

export interface ApplicationServerOptions {
  /** Address the client port binds (default 127.0.0.1). `host` is the older name for it. */
  clientHost?: string;
  /** @deprecated use clientHost: it binds the client port only. */
  host?: string;
  /** Address the control port binds (default 127.0.0.1: FSs on this machine only). */
  controlHost?: string;
  /** Client port; 0 picks a free one. */
  port?: number;
  /**
   * HTTP ingress port (`POST /v1/call/:service` with a JSON body, docs/http-ingress.md); 0 picks a
   * free one. Absent: no HTTP ingress. It shares the client port's secret, TLS and limits.
   */
  httpPort?: number;
  /** Address the HTTP ingress binds (default: clientHost). */
  httpHost?: string;
  /** At stop, how long HTTP requests in flight may take to be answered before they get 503 (default 5000). */
  httpDrainTimeoutMs?: number;
  /**
   * An HTTP ingress connection with no request under way is closed after this long (default 72000),
   * whatever it sends meanwhile: empty lines between requests do not keep it open.
   */
  httpKeepAliveTimeoutMs?: number;
  /**
   * At stop, how long requests in flight on the client port may take to be answered before the
   * client connections close (default 5000). Meanwhile new ones are answered UNAVAILABLE.
   */
  clientDrainTimeoutMs?: number;
  /**
   * For this long after start, a request (or LOOKUP) for a key no registered FS serves, or a RESOLVE of a name none gives, is answered UNAVAILABLE
   * (retry, or another AS) rather than SERVICE_NOT_FOUND: a restarted AS has not yet heard from
   * FSs that are on their way back (default 10000; 0 turns it off).
   */
  startupGraceMs?: number;
  /** FS registration port; 0 picks a free one. */
  controlPort?: number;
  /**
   * The cluster's shared secret. FSs prove it when they register, the AS proves it to every FS it
   * dials, and both sides check the other's proof. Without it (and without mutual TLS) the control
   * port takes FSs from loopback only and the AS dials loopback endpoints only.
   */
  joinSecret?: string | Buffer;
  /** Clients must prove this secret before their first request; without it the client port is open. */
  clientSecret?: string | Buffer;
  /** TLS on the client and control ports and on pool connections; with `ca`, FSs need certificates signed by it. */
  tls?: TlsOptions;
  /** A peer must prove itself within this (default 5000 ms). */
  authTimeoutMs?: number;
  /**
   * `least-loaded` (power of two choices on load and in-flight, over weights), `round-robin`
   * (weighted), `consistent-hash` (Maglev on the request's routing key), or your own strategy.
   */
  strategy?: StrategyName | SchedulingStrategy;
  heartbeatMs?: number;
  /** Deadline for requests that carry no budget. */
  defaultTimeoutMs?: number;
  /** Connections kept to each FS. */
  poolSize?: number;
  connectTimeoutMs?: number;
  reconnectBaseMs?: number;
  /** Longest wait between probes of an unavailable FS. */
  reconnectCapMs?: number;
  ejectAfterFailures?: number;
  /** Client connections; lowered at start when the process's file limit cannot hold them. */
  maxConnections?: number;
  maxInflightPerClient?: number;
  maxInflightPerFs?: number;
  /**
   * Request bytes one client may have in flight (default 16 MiB): beyond, the AS reads no more of
   * its requests until half are answered, so one client with big bodies cannot fill the pool
   * connections every other client shares. A single request is always taken.
   */
  maxInflightBytesPerClient?: number;
  /** Bytes of answers the AS holds for one client that does not read them; beyond, that client is closed (default 64 MiB). */
  maxClientBufferedBytes?: number;
  /** A client connection with nothing in flight and no request for this long is closed (default 300000; 0 keeps it). */
  clientIdleTimeoutMs?: number;
  /** Times an idempotent request may be sent in all: re-sends after a lost connection and hedges count. */
  maxAttempts?: number;
  /**
   * An idempotent request with no answer after this share of its budget is also sent to another
   * FS, and the first answer wins (default 0.5; 0 turns it off). A black-hole FS then costs callers
   * latency, not errors, until outlier detection ejects it.
   */
  hedgeAfterRatio?: number;
  /** The FSs' LOAD period; reports older than three periods are ignored. */
  loadRefreshMs?: number;
  /** Weight of reported load against in-flight count in the least-loaded cost. */
  loadWeight?: number;
  /** Director mode: how long a LOOKUP answer stands (default 10000 ms); clients renew at half of it. */
  directLeaseMs?: number;
  /** Director mode: most FS endpoints one LOOKUP answer names (default 8). */
  directMaxEndpoints?: number;
  maxBodyBytes?: number;
  /** FSs held at once (default 1000). */
  maxFunctionServers?: number;
  /** Service keys one FS may declare (default 4096). */
  maxServicesPerFs?: number;
  /** A registered FS unavailable this long is forgotten until it says HELLO again (default 600000; 0 keeps it). */
  forgetUnavailableAfterMs?: number;
  /** Hosts (IPs, CIDR blocks, names) a HELLO may ask the AS to dial; empty allows any. */
  allowedFsHosts?: readonly string[];
  /** Control connections held at once (default 1024). */
  maxControlConnections?: number;
  /** Largest control event body (default 1 MiB): a HELLO with every allowed key fits. */
  maxControlBodyBytes?: number;
  /** Host clients should dial to reach this AS (the standby names it in NOT_ACTIVE); default clientHost, or the machine's first non-loopback address when clientHost is 0.0.0.0 or ::. */
  clientAdvertiseHost?: string;
  /** Run as one of an active/standby pair negotiated over UDP (docs/pair.md). */
  pair?: PairOptions;
  /**
   * How the pair picks its active: `udp` (default; `pair` options) or `etcd` (an etcd election with
   * `pairEtcd` options, strict mutual exclusion; docs/pair.md section 8).
   */
  pairMode?: 'udp' | 'etcd';
  /** The etcd election, with `pairMode: 'etcd'`. */
  pairEtcd?: EtcdPairOptions;
  /** Outlier detection (consecutive failures, success rate); see docs/security.md. */
  outlier?: Partial<OutlierOptions> & { minTimeoutMs?: number };
  /**
   * An etcd registry (docs/registry.md): FSs are found under `<prefix>/fs/` and added or removed as
   * their keys come and go; this AS's client endpoint is kept under `<prefix>/as/<name>`.
   */
  registry?: AsRegistryOptions;
  logger?: Logger;
  random?: () => number;
}

export interface ApplicationServerEvents {
  'fs-joined': [FunctionServerInfo];
  'fs-left': [FunctionServerInfo, string];
  'fs-state': [FunctionServerInfo, FsState];
  /** An FS's service table changed (it reloaded its plugins). */
  'fs-changed': [FunctionServerInfo];
  /** An FS reported its load. */
  'fs-load': [FunctionServerInfo];
  /** An FS's pool connections opened or closed. */
  'fs-connections': [FunctionServerInfo];
  /** The pair gave this AS another role. */
  role: [{ from: PairRole; to: PairRole; reason: string; epoch: number }];
  /** The pair's sibling came online or went offline. */
  sibling: [{ online: boolean; reason: string }];
}

/** The pair as the admin surface and `switchboard status` show it. */
export interface PairStatus {
  role: PairRole;
  epoch: number;
  nodeId: string;
  priority: number;
  siblingOnline: boolean;
  sibling: SiblingView | undefined;
  datagrams: { sent: number; received: number; dropped: Record<string, number> };
  /** `etcd` when an etcd election picks the active (the counts above are then etcd calls and failures). */
  mode?: 'udp' | 'etcd';
  /** With `mode: 'etcd'`: the election key, the lease TTL, how long the active's lease is known to live. */
  etcd?: { key: string; ttlSeconds: number; grantedTtlSeconds: number | undefined; leaseValidForMs: number | undefined; candidates: number };
}

/** Why this AS cannot serve right now, or undefined when it can (for /readyz). */
export type NotReadyReason =
  | 'not listening'
  | 'not the active of its pair'
  | 'no function server available'
  | 'saturated: at maxConnections'
  | 'short of file descriptors';

/** The application server: client ingress, FS registry, pools, scheduler and dispatcher in one process. */
export class ApplicationServer extends EventEmitter<ApplicationServerEvents> {
  readonly manager: FsManager;
  readonly dispatcher: Dispatcher;
  /** Director mode: answers LOOKUP, counts leases. */
  readonly director: Director;
  readonly #ingress: ClientIngress;
  readonly #control: ControlListener;
  readonly #logger: Logger;
  readonly #log: RateLimitedLog;
  readonly #fdLimit: number | undefined;
  readonly #authenticated: boolean;
  readonly #pair: PairParticipant | undefined;
  readonly #clientAdvertiseHost: string;
  readonly #http: HttpIngress | undefined;
  readonly #registryOptions: AsRegistryOptions | undefined;
  #registry: AsDiscovery | undefined;
  readonly #clientDrainTimeoutMs: number;
  readonly #startupGraceMs: number;
  #ports: { port: number; controlPort: number; pairPort?: number; httpPort?: number } | undefined;

  constructor(opts: ApplicationServerOptions = {}) {
    super();
    const logger = opts.logger ?? silentLogger;
    const log = new RateLimitedLog(logger);
    const clientHost = opts.clientHost ?? opts.host ?? '127.0.0.1';
    const controlHost = opts.controlHost ?? '127.0.0.1';
    const heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const refresh = opts.loadRefreshMs ?? 1000;
    this.#clientDrainTimeoutMs = opts.clientDrainTimeoutMs ?? 5000;
    this.#startupGraceMs = opts.startupGraceMs ?? 10_000;
    const authTimeoutMs = opts.authTimeoutMs ?? 5000;
    if (heartbeatMs < 0) throw new ConfigError('heartbeatMs must be 0 (off) or a positive number of ms');
    const hedge = opts.hedgeAfterRatio ?? 0.5;
    if (!(hedge >= 0 && hedge < 1)) throw new ConfigError(`hedgeAfterRatio ${hedge} must be from 0 (off) to below 1`);
    const joinSecret = toSecret(opts.joinSecret, 'joinSecret');
    const clientSecret = toSecret(opts.clientSecret, 'clientSecret');
    const tls = opts.tls;
    if (tls?.cert && !tls.key) throw new ConfigError('tls.cert needs tls.key');
    this.#authenticated = joinSecret !== undefined || (tls?.cert !== undefined && tls.ca !== undefined);
    const leastLoadedOpts = { staleAfterMs: refresh * 3, loadWeight: opts.loadWeight };
    let strategy: SchedulingStrategy;
    if (typeof opts.strategy === 'object') {
      const user = opts.strategy;
      if (typeof user.pick !== 'function') throw new ConfigError('a strategy object needs a pick(candidates, ctx) method');
      // Someone else's code on the request path: its failures cost a fallback pick, never a request.
      strategy = guardedStrategy(user, createStrategy('least-loaded', leastLoadedOpts), (err) =>
        log.warn(`strategy:${user.name}`, { strategy: user.name, err: err.message }, 'the scheduling strategy failed; least-loaded chose instead'),
      );
    } else {
      const name = opts.strategy ?? 'least-loaded';
      if (!STRATEGY_NAMES.includes(name)) throw new ConfigError(`strategy ${String(name)} is not one of ${STRATEGY_NAMES.join(', ')}; or pass your own strategy object`);
      strategy = createStrategy(name, leastLoadedOpts);
    }
    this.#logger = logger;
    this.#log = log;
    this.#registryOptions = opts.registry;
    this.#fdLimit = openFileLimit();
    let maxConnections = opts.maxConnections ?? 10_000;
    if (this.#fdLimit !== undefined && maxConnections > this.#fdLimit - FD_RESERVE * 2) {
      const lowered = Math.max(1, this.#fdLimit - FD_RESERVE * 2);
      logger.warn({ maxConnections, openFileLimit: this.#fdLimit, lowered }, 'maxConnections is above what the open-file limit can hold; lowered (raise ulimit -n to keep it)');
      maxConnections = lowered;
    }
    this.dispatcher = new Dispatcher({
      strategy,
      defaultTimeoutMs: opts.defaultTimeoutMs ?? 30_000,
      maxInflightPerFs: opts.maxInflightPerFs ?? 10_000,
      maxAttempts: opts.maxAttempts ?? 3,
      sweepMs: 20,
      minTimeoutMs: opts.outlier?.minTimeoutMs ?? 1000,
      hedgeAfterRatio: opts.hedgeAfterRatio ?? 0.5,
      logger,
      random: opts.random,
    });
    this.manager = new FsManager(
      {
        poolSize: opts.poolSize ?? 1,
        heartbeatMs,
        connectTimeoutMs: opts.connectTimeoutMs ?? 3000,
        reconnectBaseMs: opts.reconnectBaseMs ?? 100,
        reconnectCapMs: opts.reconnectCapMs ?? 5000,
        ejectAfterFailures: opts.ejectAfterFailures ?? 3,
        maxBodyBytes,
        maxFunctionServers: opts.maxFunctionServers ?? 1000,
        maxServicesPerFs: opts.maxServicesPerFs ?? 4096,
        forgetUnavailableAfterMs: opts.forgetUnavailableAfterMs ?? 600_000,
        allowedHosts: new HostAllowList(opts.allowedFsHosts ?? []),
        authenticated: this.#authenticated,
        loadRefreshMs: refresh,
        outlier: opts.outlier,
        joinSecret,
        tls,
        authTimeoutMs,
        logger,
        log,
      },
      this.dispatcher,
    );
    this.dispatcher.attach(this.manager);
    const leaseMs = opts.directLeaseMs ?? 10_000;
    if (!Number.isInteger(leaseMs) || leaseMs < 100 || leaseMs > 86_400_000) throw new ConfigError(`directLeaseMs ${leaseMs} must be from 100 to 86400000 ms`);
    this.director = new Director(this.manager, {
      ...DEFAULT_LEAST_LOADED,
      ...leastLoadedOpts,
      loadWeight: opts.loadWeight ?? DEFAULT_LEAST_LOADED.loadWeight,
      leaseMs,
      maxEndpoints: opts.directMaxEndpoints ?? 8,
      joinSecret,
      inStartupGrace: (now) => this.dispatcher.inStartupGrace(now),
    });
    this.manager.on('joined', (i) => this.emit('fs-joined', i));
    this.manager.on('left', (i, why) => this.emit('fs-left', i, why));
    this.manager.on('state', (i, from) => this.emit('fs-state', i, from));
    this.manager.on('changed', (i) => this.emit('fs-changed', i));
    // Load reports come every second from every FS: forwarded only while someone listens.
    this.manager.on('load', (i) => this.emit('fs-load', i));
    this.manager.on('connections', (i) => this.emit('fs-connections', i));
    this.#ingress = new ClientIngress(
      {
        host: clientHost,
        port: opts.port ?? 0,
        heartbeatMs,
        readTimeoutMs: Math.max(1000, heartbeatMs * 3),
        maxConnections,
        maxInflightPerClient: opts.maxInflightPerClient ?? 1024,
        maxInflightBytesPerClient: opts.maxInflightBytesPerClient ?? 16 * 1024 * 1024,
        maxBodyBytes,
        maxBufferedBytes: opts.maxClientBufferedBytes ?? 64 * 1024 * 1024,
        idleTimeoutMs: opts.clientIdleTimeoutMs ?? 300_000,
        clientSecret,
        tls,
        authTimeoutMs,
        hasRoom: () => this.#hasRoom(),
        resolveName: (name) => this.manager.resolveName(name),
        lookup: (client, key, poolType) => this.director.lookup(client, key, poolType, Date.now()),
        released: (client) => this.director.release(client),
        logger,
        log,
      },
      this.dispatcher,
    );
    this.#control = new ControlListener(
      {
        host: controlHost,
        port: opts.controlPort ?? 0,
        heartbeatMs,
        maxBodyBytes: opts.maxControlBodyBytes ?? 1024 * 1024,
        maxConnections: opts.maxControlConnections ?? 1024,
        joinSecret,
        tls,
        authTimeoutMs,
        logger,
        log,
      },
      this.manager,
    );
    if (opts.httpPort !== undefined) {
      if (!Number.isInteger(opts.httpPort) || opts.httpPort < 0 || opts.httpPort > 65535) throw new ConfigError(`httpPort ${opts.httpPort} must be a port from 0 (a free one) to 65535`);
      const httpHost = opts.httpHost ?? clientHost;
      const keepAliveMs = opts.httpKeepAliveTimeoutMs ?? 72_000;
      if (!Number.isInteger(keepAliveMs) || keepAliveMs < 1000 || keepAliveMs > 3_600_000) throw new ConfigError(`httpKeepAliveTimeoutMs ${keepAliveMs} must be from 1000 to 3600000 ms`);
      this.#http = new HttpIngress(
        {
          host: httpHost,
          port: opts.httpPort,
          maxConnections,
          maxInflightPerClient: opts.maxInflightPerClient ?? 1024,
          maxInflightBytesPerClient: opts.maxInflightBytesPerClient ?? 16 * 1024 * 1024,
          maxBodyBytes,
          clientSecret,
          tls,
          drainTimeoutMs: opts.httpDrainTimeoutMs ?? 5000,
          keepAliveTimeoutMs: keepAliveMs,
          hasRoom: () => this.#hasRoom(),
          resolveName: (name) => this.manager.resolveName(name),
          logger,
          log,
        },
        this.dispatcher,
      );
      if (!clientSecret && !isLoopback(httpHost)) {
        logger.warn({ httpHost }, 'the HTTP ingress listens beyond loopback without a client secret: anyone who reaches it can call every service; set clientSecret');
      }
    }
    // Bound to every address with no advertise host: name the machine's first non-loopback address.
    this.#clientAdvertiseHost = advertisedHost(clientHost, opts.clientAdvertiseHost);
    if (opts.clientAdvertiseHost === undefined && isWildcardHost(clientHost)) logger.info({ bind: clientHost, advertised: this.#clientAdvertiseHost }, 'client port bound to every address with no advertise host: the first non-loopback address is named to clients');
    if (opts.pairMode !== undefined && opts.pairMode !== 'udp' && opts.pairMode !== 'etcd') throw new ConfigError(`pairMode ${String(opts.pairMode)} must be udp or etcd`);
    if (opts.pairMode === 'etcd' && !opts.pairEtcd) throw new ConfigError("pairMode 'etcd' needs pairEtcd options (the etcd endpoints)");
    if (opts.pairMode === 'etcd' && opts.pair) throw new ConfigError("pairMode 'etcd' takes pairEtcd options, not the UDP pair's pair options");
    // A pair asked for but not described would run alone, silently: the CLI refuses the same (pairProblem).
    if (opts.pairMode === 'udp' && !opts.pair) throw new ConfigError("pairMode 'udp' needs pair options (port and peer: this node's UDP port and the sibling's host and port); without them this AS would run alone. Give pair, or leave pairMode out to run alone");
    if (opts.pairEtcd && opts.pairMode !== 'etcd') throw new ConfigError("pairEtcd options are read only with pairMode 'etcd'; without it this AS would not take part in the election. Set pairMode: 'etcd', or remove pairEtcd");
    const clientEndpoint = (): { host: string; port: number } | undefined => (this.#ports ? { host: this.#clientAdvertiseHost, port: this.#ports.port } : undefined);
    let pair: PairParticipant | undefined;
    if (opts.pairMode === 'etcd' && opts.pairEtcd) {
      pair = new EtcdElection(opts.pairEtcd, clientEndpoint, logger);
    } else if (opts.pair) {
      const canServe = (): boolean => {
        for (const e of this.manager.entries()) if (e.state === 'available') return true;
        return false;
      };
      pair = new PairNode(opts.pair, controlHost, clientEndpoint, logger, log, canServe);
    }
    if (pair) {
      this.#pair = pair;
      // Until the pair says otherwise, this AS is not the active: it serves no request.
      this.dispatcher.notActive = () => pair.sibling?.clientEndpoint;
      pair.on('role', (from, to, reason, epoch) => {
        this.pairRoleChanges++;
        this.dispatcher.notActive = to === 'active' ? null : () => pair.sibling?.clientEndpoint;
        this.emit('role', { from, to, reason, epoch });
      });
      pair.on('sibling', (online, reason) => this.emit('sibling', { online, reason }));
    }
    if (!this.#authenticated && !isLoopback(controlHost)) {
      logger.warn({ controlHost }, 'the control port listens beyond loopback without a join secret; it still takes FSs from loopback only: set joinSecret');
    }
  }

  get ports(): { port: number; controlPort: number; pairPort?: number; httpPort?: number } {
    if (!this.#ports) throw new ConfigError('the application server is not listening; call start() first');
    return this.#ports;
  }

  get clientConnections(): number {
    return this.#ingress.connectionCount;
  }

  get controlConnections(): number {
    return this.#control.connectionCount;
  }

  /** Client connections refused at maxConnections (or for want of file descriptors) since start. */
  get refusedConnections(): number {
    return this.#ingress.refused;
  }

  /** Connections closed since start, by port and reason. */
  closedConnections(): { client: Map<string, number>; control: Map<string, number> } {
    return { client: this.#ingress.closed, control: this.#control.closed };
  }

  /** Log lines held back by rate limits since start. */
  get suppressedLogLines(): number {
    return this.#log.suppressedTotal;
  }

  dispose(id: string): boolean {
    return this.manager.dispose(id);
  }

  reconnect(id: string): boolean {
    return this.manager.reconnect(id);
  }

  drain(id: string): boolean {
    return this.manager.drain(id);
  }

  undrain(id: string): boolean {
    return this.manager.undrain(id);
  }

  /** Totals for the admin surface: requests answered by status, connections, hedges, re-sends. */
  totals(): { clientConnections: number; controlConnections: number; relayed: number; answeredLocally: number; resent: number; hedged: number } {
    let relayed = 0;
    for (const n of this.dispatcher.relayedAnswers) relayed += n;
    let local = 0;
    for (const n of this.dispatcher.localAnswers.values()) local += n;
    return {
      clientConnections: this.clientConnections,
      controlConnections: this.controlConnections,
      relayed,
      answeredLocally: local,
      resent: this.dispatcher.resent,
      hedged: this.dispatcher.hedged,
    };
  }

  /** Undefined when this AS can take a request now; otherwise why not. */
  notReadyReason(): NotReadyReason | undefined {
    if (!this.#ports) return 'not listening';
    if (this.#pair && this.#pair.role !== 'active') return 'not the active of its pair';
    if (this.#ingress.saturated) return 'saturated: at maxConnections';
    if (!this.#hasRoom()) return 'short of file descriptors';
    for (const e of this.manager.entries()) if (e.state === 'available') return undefined;
    return 'no function server available';
  }

  /** Times this AS's pair role changed (its first role included); 0 when it runs alone. */
  pairRoleChanges = 0;

  /** 'active' when this AS runs alone; its pair role otherwise. */
  get role(): PairRole {
    return this.#pair?.role ?? 'active';
  }

  /** Undefined when this AS runs alone. */
  pairStatus(): PairStatus | undefined {
    const p = this.#pair;
    if (!p) return undefined;
    const c = p.counters;
    return {
      role: p.role,
      epoch: p.epoch,
      nodeId: p.nodeId,
      priority: p.priority,
      siblingOnline: p.siblingOnline,
      sibling: p.sibling,
      datagrams: { sent: c.sent, received: c.received, dropped: Object.fromEntries(c.dropped) },
      ...(p instanceof EtcdElection ? { mode: 'etcd' as const, etcd: p.details } : {}),
    };
  }

  /** An operator fixes the pair's roles: this AS takes `role`, its sibling the other. */
  designate(role: 'active' | 'standby'): void {
    if (!this.#pair) throw new ConfigError('this application server runs alone (no pair): it is always active');
    this.#pair.designate(role);
  }

  async start(): Promise<{ port: number; controlPort: number; pairPort?: number; httpPort?: number }> {
    this.dispatcher.unknownKeysUnavailableUntil = Date.now() + this.#startupGraceMs;
    const port = await this.#ingress.listen();
    const controlPort = await this.#control.listen();
    const httpPort = await this.#http?.listen();
    this.#ports = httpPort === undefined ? { port, controlPort } : { port, controlPort, httpPort };
    if (this.#pair) {
      const pairPort = await this.#pair.start();
      if (pairPort !== undefined) this.#ports.pairPort = pairPort;
    }
    if (this.#registryOptions) {
      // Loaded only when used: the etcd client brings gRPC with it.
      const { AsDiscovery } = await import('../discovery/as-discovery.js');
      this.#registry = new AsDiscovery(this.#registryOptions, this, this.#pair?.nodeId, this.#logger, this.#log);
      this.#registry.start({ host: this.#clientAdvertiseHost, port, ...(httpPort === undefined ? {} : { httpPort }) });
    }
    const auth = this.manager ? (this.#authenticated ? 'join secret or mutual TLS' : 'none: FSs from loopback only') : '';
    this.#logger.info({ port, controlPort, httpPort, fsAuth: auth, maxConnections: this.#ingress.maxConnections, openFileLimit: this.#fdLimit }, 'application server listening');
    return this.#ports;
  }

  addFunctionServer(o: AddFunctionServerOptions): FunctionServerInfo {
    return this.manager.addFunctionServer(o);
  }

  /** Takes an FS out: no new requests; those in flight on it finish, then its pool closes. */
  removeFunctionServer(id: string): boolean {
    return this.manager.removeFunctionServer(id, 'removed', true);
  }

  listFunctionServers(): FunctionServerInfo[] {
    return this.manager.list();
  }

  /** The etcd registry (its watcher's counters), when one is configured and the AS has started. */
  get registry(): AsDiscovery | undefined {
    return this.#registry;
  }

  async stop(): Promise<void> {
    // First: clients stop finding this AS, and the watcher adds no FS while the pools close.
    await this.#registry?.stop();
    // First: an active hands over at once, so the standby does not wait out the down interval.
    const pair = this.#pair;
    const siblingUp = pair?.siblingOnline === true;
    await pair?.stop(true);
    // Its sibling takes over: new requests are sent there (NOT_ACTIVE naming it), not refused.
    if (pair && siblingUp) this.dispatcher.notActive = () => pair.sibling?.clientEndpoint;
    // Before the pools close: requests in flight still get their answers (HTTP ones, or 503), while
    // new ones are refused UNAVAILABLE (did not run: a client may send them elsewhere).
    this.#ingress.stopAccepting();
    this.dispatcher.stopping = 'this application server is stopping; send the request to another one';
    await Promise.all([this.#http?.close(), this.#drainClients()]);
    this.#control.close();
    this.#ingress.close();
    this.manager.close();
    this.dispatcher.close();
    this.#logger.info('application server stopped');
  }

  /** Resolves once no client request is in flight, or at clientDrainTimeoutMs. */
  async #drainClients(): Promise<void> {
    const until = Date.now() + this.#clientDrainTimeoutMs;
    while (this.dispatcher.inflight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    if (this.dispatcher.inflight > 0) this.#logger.warn({ inflight: this.dispatcher.inflight, clientDrainTimeoutMs: this.#clientDrainTimeoutMs }, 'stopping with client requests still in flight');
  }

  /** Sockets to peers stay FD_RESERVE short of the open-file limit, so the admin port and logs still work. */
  #hasRoom(): boolean {
    if (this.#fdLimit === undefined) return true;
    let pools = 0;
    for (const e of this.manager.withConnections()) pools += e.pool.readyCount;
    const http = this.#http?.connectionCount ?? 0;
    return this.#ingress.connectionCount + this.#control.connectionCount + http + pools < this.#fdLimit - FD_RESERVE;
  }
}
