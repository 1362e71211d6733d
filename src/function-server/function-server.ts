import { EventEmitter } from 'node:events';
import type { AddressInfo, Server, Socket } from 'node:net';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import { advertisedHost, isWildcardHost } from '../common/addresses.js';
import { listenOn } from '../common/listen.js';
import { silentLogger, type Logger } from '../common/logger.js';
import { RateLimitedLog } from '../common/rate-limited-log.js';
import { ServiceTable } from '../plugins/index.js';
import { createListener, guardListener, isLoopback, toSecret, type TlsOptions } from '../security/index.js';
import {
  AuthError,
  ChannelClosedError,
  ConfigError,
  DEFAULT_HEARTBEAT_MS,
  EventKind,
  FLAG_REQUEST,
  FrameConnection,
  MAX_WEIGHT,
  OFFSET,
  VERSION,
  VERSION_EXTENDED,
  encodeEventRequest,
  encodeEventResponse,
  eventKindOf,
  describeRequestSchema,
  isRequest,
  isTwoWay,
  requestIdOf,
  Status,
  tryDecodeBody,
  type Hello,
} from '../protocol/index.js';
import { ControlLink } from './control-link.js';
import { AS_POOL, DirectGrant } from './direct-grant.js';
import { PerformanceMonitor, type LoadSampler } from './performance-monitor.js';
import { RequestHandler, defaultMaxOneWayInflight } from './request-handler.js';
import type { FsAnnouncer } from '../discovery/fs-announcer.js';
import type { RegistryOptions } from '../discovery/etcd-registry.js';

/** After the drain times out and the signals are aborted, onStop waits at most this long for those handlers to end. */
export const ABORT_GRACE_MS = 1000;

export interface FunctionServerOptions {
  name: string;
  /** Plugin classes (see loadPluginModules for loading them from module paths). */
  plugins: readonly unknown[];
  /** Address the data listener binds. */
  host?: string;
  /** Data port; 0 picks a free one. */
  port?: number;
  /** Host the AS should dial, when it differs from `host` (e.g. binding 0.0.0.0). */
  advertiseHost?: string;
  poolType?: number;
  /** Serve a key only while no active FS for it is available. */
  standby?: boolean;
  /** Its share against FSs of weight 1 (1 to 1000, default 1): the AS sends it weight times the requests at equal load. */
  weight?: number;
  /** The AS's control endpoint to register with; without it the FS waits to be added by address. */
  applicationServer?: { host: string; port: number };
  /** Several ASs' control endpoints (an AS pair, or several active ASs): the FS registers with each. */
  applicationServers?: readonly { host: string; port: number }[];
  /** LOAD period. */
  refreshMs?: number;
  heartbeatMs?: number;
  maxInflight?: number;
  /** One-way requests running at once before new ones are dropped (default half of maxInflight). */
  maxOneWayInflight?: number;
  defaultTimeoutMs?: number;
  /** Longest a drain waits for in-flight requests before closing anyway. */
  drainTimeoutMs?: number;
  reconnectBaseMs?: number;
  reconnectCapMs?: number;
  maxBodyBytes?: number;
  /**
   * Shared secret of the cluster. With it, the FS proves it to the AS when it registers, and every
   * pool connection must prove it before the FS answers anything. Without it (and without mutual
   * TLS) the data port takes connections from loopback only.
   */
  joinSecret?: string | Buffer;
  /** TLS for the data port and the control link; with `ca`, the AS must present a certificate signed by it. */
  tls?: TlsOptions;
  /** A peer must prove itself within this (default 5000 ms). */
  authTimeoutMs?: number;
  /** Pool connections held at once (default 1024); beyond, new ones are refused. */
  maxConnections?: number;
  /** Longest each plugin's onStop may take when the FS stops (default 5000 ms). */
  pluginStopTimeoutMs?: number;
  /** Check answers against their contract's response schema: SERVER_ERROR when one does not match (default off). */
  validateResponses?: boolean;
  /** Load sampler; the default measures this process. Replace it to simulate load in tests or to add metrics. */
  monitor?: LoadSampler;
  /** Parent for each plugin's child container: put FS-wide providers here. */
  container?: DependencyContainer;
  /**
   * An etcd registry (docs/registry.md): the FS keeps its registration under `<prefix>/fs/<name>`
   * on a lease, and sends LOAD on the pool connections ASs open to it (no control link needed).
   */
  registry?: RegistryOptions;
  logger?: Logger;
}

/**
 * Answers leave in pieces while a long batch is still being served (see FrameConnection): the first
 * piece at this many bytes to a direct client, where nothing sits between the two ends and an early
 * piece lets both work at once...
 */
const EARLY_FLUSH_BYTES = 1024;
/** ...and at this many to an AS, which pays a read and a write for every piece it relays. */
const EARLY_FLUSH_BYTES_TO_AS = 8192;

export interface FunctionServerEvents {
  registered: [];
  draining: [];
  closed: [];
}

/**
 * Hosts plugins: listens for the AS's pool connections, runs requests, answers heartbeats and
 * DESCRIBE, registers over a control link and reports its load there.
 */
export class FunctionServer extends EventEmitter<FunctionServerEvents> {
  readonly name: string;
  #started = false;
  readonly #o: Required<Omit<FunctionServerOptions, 'applicationServer' | 'applicationServers' | 'advertiseHost' | 'container' | 'plugins' | 'monitor' | 'joinSecret' | 'tls' | 'registry'>> &
    Pick<FunctionServerOptions, 'advertiseHost' | 'tls'> & { applicationServers: readonly { host: string; port: number }[] };
  readonly #secret: Buffer | undefined;
  readonly #log: RateLimitedLog;
  readonly #server: Server;
  readonly #conns = new Set<FrameConnection>();
  readonly #handler: RequestHandler;
  readonly #monitor: LoadSampler;
  readonly #links: ControlLink[] = [];
  readonly #container: DependencyContainer;
  #draining = false;
  /** Requests received on direct-client connections (director mode), reported in LOAD. */
  #directRequests = 0;
  #stopping: Promise<void> | undefined;
  readonly #registryOptions: RegistryOptions | undefined;
  #registry: FsAnnouncer | undefined;
  /** Registry mode: LOAD on every pool connection, every refresh period. */
  #poolLoadTimer: NodeJS.Timeout | undefined;
  /** The host the AS is told to dial (see address()). */
  #advertised: string | undefined;

  constructor(opts: FunctionServerOptions) {
    super();
    if (!opts.name) throw new ConfigError('a function server needs a name (--name); the AS uses it as the FS id');
    const poolType = opts.poolType ?? 0;
    if (!Number.isInteger(poolType) || poolType < 0 || poolType > 0xffff) {
      throw new ConfigError(`pool type ${poolType} must be an integer from 0 to 65535`);
    }
    const weight = opts.weight ?? 1;
    if (!Number.isInteger(weight) || weight < 1 || weight > MAX_WEIGHT) {
      throw new ConfigError(`weight ${weight} must be an integer from 1 to ${MAX_WEIGHT}`);
    }
    this.name = opts.name;
    this.#o = {
      name: opts.name,
      host: opts.host ?? '127.0.0.1',
      port: opts.port ?? 0,
      advertiseHost: opts.advertiseHost,
      poolType,
      standby: opts.standby ?? false,
      weight,
      applicationServers: [...(opts.applicationServer ? [opts.applicationServer] : []), ...(opts.applicationServers ?? [])],
      refreshMs: opts.refreshMs ?? 1000,
      heartbeatMs: opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
      maxInflight: opts.maxInflight ?? 10_000,
      maxOneWayInflight: opts.maxOneWayInflight ?? defaultMaxOneWayInflight(opts.maxInflight ?? 10_000),
      defaultTimeoutMs: opts.defaultTimeoutMs ?? 30_000,
      drainTimeoutMs: opts.drainTimeoutMs ?? 30_000,
      reconnectBaseMs: opts.reconnectBaseMs ?? 200,
      reconnectCapMs: opts.reconnectCapMs ?? 10_000,
      maxBodyBytes: opts.maxBodyBytes ?? 8 * 1024 * 1024,
      authTimeoutMs: opts.authTimeoutMs ?? 5000,
      maxConnections: opts.maxConnections ?? 1024,
      pluginStopTimeoutMs: opts.pluginStopTimeoutMs ?? 5000,
      validateResponses: opts.validateResponses ?? false,
      tls: opts.tls,
      logger: opts.logger ?? silentLogger,
    };
    this.#secret = toSecret(opts.joinSecret, 'joinSecret');
    this.#registryOptions = opts.registry;
    this.#log = new RateLimitedLog(this.#o.logger);
    this.#monitor = opts.monitor ?? new PerformanceMonitor();
    const parent = (opts.container ?? rootContainer).createChildContainer();
    this.#container = parent;
    this.#handler = new RequestHandler({
      table: new ServiceTable(opts.plugins, parent),
      logger: this.#o.logger,
      maxInflight: this.#o.maxInflight,
      maxOneWayInflight: this.#o.maxOneWayInflight,
      defaultTimeoutMs: this.#o.defaultTimeoutMs,
      maxBodyBytes: this.#o.maxBodyBytes,
      validateResponses: this.#o.validateResponses,
    });
    this.#server = createListener(this.#o.tls, { mutual: true, handshakeTimeoutMs: this.#o.authTimeoutMs }, (socket) => this.#accept(socket));
  }

  /** Whether a pool connection must prove itself: a join secret, or mutual TLS, or neither (loopback only). */
  get #mutualTls(): boolean {
    return this.#o.tls?.cert !== undefined && this.#o.tls.ca !== undefined;
  }

  /** One-way requests dropped because maxOneWayInflight of them were running. */
  get oneWayDropped(): number {
    return this.#handler.oneWayDropped;
  }

  get inflight(): number {
    return this.#handler.inflight;
  }

  /** The services this FS serves now (replaced whole by a reload). */
  get table(): ServiceTable {
    return this.#handler.table;
  }

  get #table(): ServiceTable {
    return this.#handler.table;
  }

  /** Handlers still running after their deadline was answered (they ignore their signal). */
  get overdue(): number {
    return this.#handler.overdue;
  }

  get draining(): boolean {
    return this.#draining;
  }

  get connectionCount(): number {
    return this.#conns.size;
  }

  address(): { host: string; port: number } {
    const a = this.#server.address() as AddressInfo | null;
    if (!a) throw new ConfigError('function server is not listening; call start() first');
    // Bound to every address with no advertise host: the machine's first non-loopback address (picked once).
    this.#advertised ??= advertisedHost(a.address, this.#o.advertiseHost);
    return { host: this.#advertised, port: a.port };
  }

  /** Listens, then registers with the AS when one is configured (without waiting for it to answer). */
  async start(): Promise<{ host: string; port: number }> {
    // Plugins open what they need first: nothing is served, and no AS hears of us, before that.
    // A hung onStart holds everything back in silence: say so once, after 10 s.
    await this.#table.start((plugin, afterMs) => this.#o.logger.warn({ plugin, afterMs }, 'plugin onStart has not finished: this FS serves nothing and has not registered until it does'));
    this.#started = true;
    await listenOn(this.#server, this.#o.port, this.#o.host);
    const addr = this.address();
    if (isWildcardHost(this.#o.host) && this.#o.advertiseHost === undefined) {
      this.#o.logger.info({ bind: this.#o.host, advertised: addr.host }, 'bound to every address with no advertise host: ASs are told to dial the first non-loopback address (set advertiseHost / --advertise-host to choose)');
    }
    const auth = this.#secret ? 'join secret' : this.#mutualTls ? 'mutual TLS' : 'none: pool connections from loopback only';
    this.#o.logger.info({ fs: this.name, ...addr, services: this.table.keys(), poolType: this.#o.poolType, standby: this.#o.standby, auth, tls: this.#o.tls?.cert !== undefined }, 'function server listening');
    for (const as of this.#o.applicationServers) {
      const link = new ControlLink({
        host: as.host,
        port: as.port,
        hello: () => this.hello(),
        load: () => ({ ...this.#monitor.sample(this.#handler.inflight), overdue: this.#handler.overdue, directRequests: this.#directRequests }),
        joinSecret: this.#secret,
        tls: this.#o.tls,
        authTimeoutMs: this.#o.authTimeoutMs,
        refreshMs: this.#o.refreshMs,
        heartbeatMs: this.#o.heartbeatMs,
        reconnectBaseMs: this.#o.reconnectBaseMs,
        reconnectCapMs: this.#o.reconnectCapMs,
        logger: this.#o.logger,
      });
      this.#links.push(link);
      link.start();
    }
    if (this.#links.length > 0) void this.whenRegistered().then(() => this.emit('registered'));
    if (this.#registryOptions) await this.#startRegistry(this.#registryOptions);
    return addr;
  }

  async #startRegistry(opts: RegistryOptions): Promise<void> {
    // Loaded only when used: the etcd client brings gRPC with it.
    const { FsAnnouncer } = await import('../discovery/fs-announcer.js');
    const value = () => ({ name: this.name, ...this.address(), poolType: this.#o.poolType, standby: this.#o.standby, services: this.table.keys(), weight: this.#o.weight });
    this.#registry = new FsAnnouncer(opts, this.name, value, this.#o.logger, this.#log);
    this.#registry.start();
    this.#poolLoadTimer = setInterval(() => this.#sendPoolLoad(), this.#o.refreshMs);
    this.#poolLoadTimer.unref();
  }

  /** Registry mode: the LOAD event (section 6.3 of docs/protocol.md) on each pool connection an AS opened, or on `only`. */
  #sendPoolLoad(only?: FrameConnection): void {
    const report = { ...this.#monitor.sample(this.#handler.inflight), overdue: this.#handler.overdue, directRequests: this.#directRequests };
    const frame = encodeEventRequest(EventKind.LOAD, 0, report, false);
    for (const c of only ? [only] : this.#conns) if (c.owner === AS_POOL && !c.closed) c.send(frame);
  }

  /** Whether its registry key is in etcd as far as it knows (registry mode). */
  get registeredInRegistry(): boolean {
    return this.#registry?.registered ?? false;
  }

  /** How many of its ASs have acknowledged its HELLO now. */
  get registeredWith(): number {
    return this.#links.filter((l) => l.registered).length;
  }

  /** Resolves once every AS it registers with has acknowledged HELLO. */
  whenRegistered(): Promise<void> {
    if (this.#links.length === 0) return Promise.reject(new ConfigError('this function server has no applicationServer to register with'));
    return Promise.all(this.#links.map((l) => l.whenRegistered())).then(() => undefined);
  }

  hello(): Hello {
    return {
      name: this.name,
      poolType: this.#o.poolType,
      standby: this.#o.standby,
      endpoint: this.address(),
      services: this.table.descriptors(),
      pid: process.pid,
      version: '1',
    };
  }

  /**
   * Serves new requests with these plugins from now on, without dropping any: the new plugins are
   * built and started (onStart) first, then take new requests; requests already running finish on
   * the old ones, which are stopped (onStop) once they have. Every AS is told the table changed
   * (CHANGED on each pool connection) and asks for it again. If the new plugins cannot be built or
   * started, nothing changes and the error is thrown.
   */
  async replacePlugins(plugins: readonly unknown[]): Promise<void> {
    const next = new ServiceTable(plugins, this.#container);
    await next.start();
    const old = this.#handler.table;
    this.#handler.table = next;
    this.#o.logger.info({ fs: this.name, services: next.keys(), plugins: next.pluginNames() }, 'plugins reloaded');
    for (const c of this.#conns) c.send(encodeEventRequest(EventKind.CHANGED, 0, {}, false));
    // The old plugins stop once what they were running has ended (at most drainTimeoutMs).
    const until = Date.now() + this.#o.drainTimeoutMs;
    while (old.running > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    const failures = await old.stop(this.#o.pluginStopTimeoutMs);
    for (const f of failures) this.#o.logger.warn(f, 'plugin onStop failed (old code, after a reload)');
  }

  /**
   * Graceful stop: tell the AS (control link and every pool connection) to choose us no more,
   * let in-flight requests finish (at most drainTimeoutMs), then close.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#draining = true;
    this.emit('draining');
    this.#o.logger.info({ fs: this.name, inflight: this.#handler.inflight }, 'draining');
    for (const c of this.#conns) c.send(encodeEventRequest(EventKind.DRAIN, 0, {}, false));
    // Registry mode: the key goes at drain start, so ASs drop it (once its requests are answered).
    clearInterval(this.#poolLoadTimer);
    const unregistered = this.#registry?.stop(Math.min(2000, this.#o.drainTimeoutMs));
    await Promise.all([...this.#links.map((l) => l.drain(Math.min(2000, this.#o.drainTimeoutMs))), unregistered]);
    // The AS has stopped choosing us; a ping answered on each pool connection proves that every
    // request it sent before has been read here, so "idle" below really means nothing is coming.
    await Promise.all([...this.#conns].map((c) => c.barrier(Math.min(2000, this.#o.drainTimeoutMs))));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.#handler.idle().then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), this.#o.drainTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.#o.logger.warn({ inflight: this.#handler.inflight }, 'drain timed out; closing with requests in flight');
      this.#handler.abortAll(new ChannelClosedError('the function server stopped before this request finished'));
      // Handlers that honour their signal end within moments: let them, so onStop does not close
      // what they are still using (a database handle, say). One that ignores it is not waited for.
      await Promise.race([this.#handler.idle(), new Promise<void>((r) => (timer = setTimeout(r, ABORT_GRACE_MS)))]);
      clearTimeout(timer);
    }
    for (const l of this.#links) l.stop();
    this.#server.close();
    for (const c of this.#conns) c.close('local');
    this.#conns.clear();
    if (this.#started) {
      const failures = await this.#table.stop(this.#o.pluginStopTimeoutMs);
      for (const f of failures) this.#o.logger.warn(f, 'plugin onStop failed');
    }
    this.#o.logger.info({ fs: this.name }, 'function server stopped');
    this.emit('closed');
  }

  #accept(socket: Socket): void {
    if (this.#conns.size >= this.#o.maxConnections) {
      this.#log.warn('max-connections', { remote: socket.remoteAddress, max: this.#o.maxConnections }, 'pool connection refused: at maxConnections');
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    const handlers = {
      onFrameAt: (buf: Buffer, off: number, len: number, c: FrameConnection): void => {
        if ((buf[off + OFFSET.flags] & FLAG_REQUEST) !== 0) {
          const owner = c.owner;
          if (owner !== AS_POOL) {
            // A direct client (director mode): only the keys its ticket names, only until it expires.
            this.#directRequests++;
            if (owner instanceof DirectGrant && !owner.allows(buf, off, c)) return;
          }
          this.#handler.handle(buf, off, len, c);
        }
        // The AS is not reading our answers: stop reading its requests until it does.
        if (c.blocked) c.pauseReading();
      },
      onEvent: (frame: Buffer, c: FrameConnection): void => this.#onEvent(frame, c),
    };
    const conn = new FrameConnection(socket, {
      heartbeatMs: this.#o.heartbeatMs,
      readTimeoutMs: Math.max(1000, this.#o.heartbeatMs * 3),
      maxBodyBytes: this.#o.maxBodyBytes,
      earlyFlushBytes: EARLY_FLUSH_BYTES,
      ...handlers,
      onDrain: (c) => c.resumeReading(),
      onClose: (reason, err, c) => {
        this.#conns.delete(c);
        const log = reason === 'protocol' || reason === 'heartbeat' || reason === 'auth' ? 'warn' : 'debug';
        if (log === 'warn') this.#log.warn(`closed:${reason}`, { remote: c.remote, reason, err: err?.message }, 'pool connection closed');
        else this.#o.logger.debug({ remote: c.remote, reason, err: err?.message }, 'pool connection closed');
      },
    });
    this.#conns.add(conn);
    if (this.#secret) {
      const secret = this.#secret;
      guardListener(conn, { secret, realm: 'join', timeoutMs: this.#o.authTimeoutMs }, handlers, {
        onAuthenticated: (c) => {
          if (this.#draining) c.send(encodeEventRequest(EventKind.DRAIN, 0, {}, false));
        },
        onTicket: (c, body, nonce) => {
          const grant = new DirectGrant(nonce, this.#o.poolType);
          const reply = grant.accept(secret, body, Date.now());
          c.owner = grant;
          this.#o.logger.debug({ remote: c.remote, client: grant.client, keys: reply.keys }, 'direct client admitted by its ticket');
          return reply;
        },
      });
      return;
    }
    if (!this.#mutualTls && !isLoopback(socket.remoteAddress)) {
      conn.refuse(
        new AuthError('SB_ERR_AUTH_REQUIRED', 'this function server has no join secret and takes pool connections from loopback only; give the AS and the FS the same --join-secret-file'),
        'auth',
      );
      return;
    }
    if (this.#draining) conn.send(encodeEventRequest(EventKind.DRAIN, 0, {}, false));
  }

  #onEvent(frame: Buffer, conn: FrameConnection): void {
    if (!isRequest(frame)) return;
    const kind = eventKindOf(frame);
    if (kind === EventKind.TICKET && conn.owner instanceof DirectGrant && isTwoWay(frame) && this.#secret) {
      // A renewal: the same proof over the connection's nonce; a refusal leaves the old grant as it was.
      try {
        conn.send(encodeEventResponse(EventKind.TICKET, requestIdOf(frame), conn.owner.accept(this.#secret, tryDecodeBody(frame), Date.now())));
      } catch (err) {
        const e = err as AuthError;
        conn.send(encodeEventResponse(EventKind.TICKET, requestIdOf(frame), { code: e.code, message: e.message }, Status.UNAUTHORIZED));
      }
      return;
    }
    // Only the AS describes; a direct client learns its keys from its ticket's answer, and no more.
    if (kind !== EventKind.DESCRIBE || conn.owner instanceof DirectGrant) {
      if (isTwoWay(frame)) conn.rejectEvent(frame);
      return;
    }
    // What asks DESCRIBE is a pool connection.
    conn.owner = AS_POOL;
    conn.setEarlyFlushBytes(EARLY_FLUSH_BYTES_TO_AS);
    const d = describeRequestSchema.safeParse(tryDecodeBody(frame) ?? {});
    if (d.success && d.data.maxBodyBytes !== undefined) conn.peerMaxBodyBytes = d.data.maxBodyBytes;
    conn.send(
      encodeEventResponse(EventKind.DESCRIBE, requestIdOf(frame), {
        name: this.name,
        poolType: this.#o.poolType,
        standby: this.#o.standby,
        services: this.table.descriptors(),
        weight: this.#o.weight,
        versions: [VERSION, VERSION_EXTENDED],
      }),
    );
    if (this.#poolLoadTimer !== undefined) this.#sendPoolLoad(conn);
  }
}
