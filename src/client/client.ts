import { EventEmitter } from 'node:events';
import { backoffDelay } from '../common/backoff.js';
import {
  AuthError,
  BadRequestError,
  ChannelClosedError,
  ConnectError,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_BODY_BYTES,
  DeadlineExceededError,
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  FrameConnection,
  FrameTooLargeError,
  HEADER_SIZE,
  MAX_UINT32,
  NotActiveError,
  OFFSET,
  OverloadedError,
  Serialization,
  Status,
  decodeBodyAt,
  encodeBody,
  encodeExtension,
  encodeRequest,
  validTraceparent,
  errorFromStatus,
  refusalAt,
  tryDecodeBody,
  EventKind,
  encodeEventRequest,
  eventKindOf,
  isRequest,
  requestIdOf,
  lookupReplySchema,
  serviceDescriptorSchema,
  statusOf,
  type LookupReply,
  type ServiceDescriptor,
  type SwitchboardError,
} from '../protocol/index.js';
import { authenticateDialer, dial, toSecret, type TlsOptions } from '../security/index.js';
import { isServiceContract, type ContractCallArgs, type ResponseOf, type ServiceContract } from '../contracts/index.js';
import { CallTable, type CallSpec } from './call-table.js';
import { DirectRouter } from './direct.js';
import { SpreadRouter, type SpreadMember } from './spread.js';
import { callTraceContext, endWithCall, startCallSpan } from '../tracing/index.js';

export interface Endpoint {
  host: string;
  port: number;
}

export interface ClientOptions {
  /** One AS (the older form; `endpoints` takes several). */
  host?: string;
  port?: number;
  /** ASs to use, in order of preference: an AS pair, or several ASs. */
  endpoints?: readonly Endpoint[];
  /** Deadline for calls that name none. */
  defaultTimeoutMs?: number;
  heartbeatMs?: number;
  /** The first connection must be up within this, or connect() fails. */
  connectTimeoutMs?: number;
  /** The AS's body cap (default 8 MiB): a call whose body is larger fails alone, before it is sent. */
  maxBodyBytes?: number;
  /** The AS's client secret, when its client port asks for proof. */
  secret?: string | Buffer;
  /** Dial the AS over TLS: `ca` to trust it, `cert` and `key` when it asks for client certificates. */
  tls?: TlsOptions;
  /** Backoff between reconnection attempts after a loss (default 100 ms doubling to 5000 ms, with jitter); false: no reconnection. */
  reconnect?: { baseMs?: number; capMs?: number } | false;
  /**
   * On NOT_ACTIVE, go to the endpoint the standby names even when it is not in `endpoints` (default
   * true). With false, a call answered NOT_ACTIVE naming an active outside `endpoints` by every
   * endpoint in a row fails at once with NotActiveError, whose `active` says where the active is.
   */
  followRedirects?: boolean;
  /** Calls that may wait for a connection at once; beyond, a call fails at once with OVERLOADED (default 10000). */
  maxQueued?: number;
  /**
   * `via-as` (the default): every call goes through the AS. `direct` (director mode): the client asks
   * the AS where each key is served (LOOKUP) and calls those FSs itself; the AS stays the fallback.
   * `spread`: calls are spread over every AS in `endpoints` (the one with the fewest of this client's
   * calls in flight); a lost AS's idempotent calls go to another AS, and it is reconnected in the background.
   */
  mode?: 'via-as' | 'direct' | 'spread';
  /**
   * `etcd://host:2379[,host:2379]`: connect() reads the ASs' client endpoints under
   * `<registryPrefix>/as/` once and uses them (when `endpoints` is not given). docs/registry.md.
   */
  registry?: string;
  /** The registry's key prefix (default `/switchboard`). */
  registryPrefix?: string;
}

export interface CallOptions {
  /** 0 (the default) means any pool. */
  poolType?: number;
  /** Sent as the request's deadline budget; the call fails with TIMEOUT once it passes. */
  timeoutMs?: number;
  /**
   * Safe to run twice: if the connection is lost before the answer, the call is sent again on the
   * next connection (within its deadline) instead of failing with CHANNEL_CLOSED.
   */
  idempotent?: boolean;
  /**
   * Keeps calls with the same key on the same FS while it is available, when the AS routes by
   * consistent hashing (`strategy: 'consistent-hash'`). 1 to 255 bytes (a string is sent as UTF-8).
   * Travels in the header's extension block (docs/protocol.md, section 2.4), never in the body.
   */
  routingKey?: string | Uint8Array;
  /** W3C trace context to carry to the AS and the FS; set by the tracing integration, or by hand. */
  traceparent?: string;
  tracestate?: string;
}

export interface ClientEvents {
  /**
   * A new connection to `endpoint` is up: after a loss, a redirect, or an idle close. (The first
   * one is up when `Client.connect` resolves, before a listener can be added.)
   */
  connected: [{ endpoint: Endpoint }];
  /**
   * A connection reported `connected` has closed: lost (the client reconnects unless closed), or
   * left for another AS after NOT_ACTIVE (`reason` says which), once its calls were answered.
   */
  disconnected: [{ endpoint: Endpoint; reason: string }];
  /** The client moved from one AS to another (a NOT_ACTIVE redirect, or a loss). */
  failover: [{ from: Endpoint; to: Endpoint; reason: string }];
}

const REQUEST_FLAGS = FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK;
const SWEEP_MS = 50;
/** Grace on top of the deadline: the AS answers TIMEOUT itself, this only guards against a silent AS. */
const LOCAL_GRACE_MS = 1000;
/**
 * The longest wait between moves while every AS answers NOT_ACTIVE: a pair takes over in about
 * 0.7 s, so a client polls a few times a second, not once per round trip, and not after a 5 s backoff.
 */
const NOT_ACTIVE_POLL_MS = 250;

/** One connection to one AS. Calls carry the generation they were sent on. */
interface Link {
  conn: FrameConnection;
  endpoint: Endpoint;
  gen: number;
  /** Connection-level error the AS sent (request id 0) before closing. */
  closeError?: SwitchboardError;
  /** Why the socket closed, once it has (a TLS alert, a reset...). */
  closedBy?: string;
  /** No new calls: the client moved on and waits for this link's calls to be answered. */
  retiring: boolean;
  /** Why it was left for another AS (it closes once its calls are answered). */
  retiredFor?: string;
  /** When it came up, and whether it answered a call: a link closed young and silent did not prove the AS. */
  openedAt: number;
  answered: boolean;
}

const same = (a: Endpoint, b: Endpoint): boolean => a.host === b.host && a.port === b.port;
const show = (e: Endpoint): string => `${e.host}:${e.port}`;

/**
 * A pipelined client that follows its ASs: many calls in flight on one connection, each answered by
 * request id; after a loss it reconnects with backoff and jitter, to the next endpoint; on NOT_ACTIVE
 * it moves to the active the standby names. Calls wait for a connection up to their deadline, never
 * longer: idempotent ones are sent again after a loss, the others fail with CHANNEL_CLOSED.
 */
export class Client extends EventEmitter<ClientEvents> {
  readonly #o: ClientOptions;
  readonly #endpoints: Endpoint[];
  readonly #calls = new CallTable();
  readonly #defaultTimeoutMs: number;
  readonly #maxBodyBytes: number;
  readonly #maxQueued: number;
  readonly #secret: Buffer | undefined;
  readonly #sweeper: NodeJS.Timeout;
  #link: Link | undefined;
  readonly #retiring = new Set<Link>();
  #gen = 0;
  #next = 0;
  #attempt = 0;
  #dialing = false;
  /** connect() is trying its endpoints itself: a link lost meanwhile starts no background redial. */
  #connecting = false;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  /** Endpoints that refused us (OVERLOADED) in a row: a full round fails what waits. */
  #refusals = 0;
  /** NOT_ACTIVE answers in a row naming an active that followRedirects: false keeps us from. */
  #unfollowable = 0;
  /**
   * Moves for NOT_ACTIVE since a call was last answered: past one round of the endpoints they wait
   * their backoff, so a pair with no active (negotiating, or its etcd away) is not dialled in a loop.
   */
  #bounces = 0;
  /** The last NOT_ACTIVE seen, for the message of a call that found no active before its deadline. */
  #lastNotActive: string | undefined;
  /** Events (RESOLVE, LOOKUP) waiting for a connection: sent when one comes up. */
  readonly #waitingForLink = new Set<(link: Link | undefined) => void>();
  #fatal: SwitchboardError | undefined;
  /** The AS last connected to, and why the client is leaving it (for the failover event). */
  #lastEndpoint: Endpoint | undefined;
  #moveReason = 'connection lost';
  readonly #resolves = new Map<number, (frame: Buffer) => void>();
  /** Director mode's router; undefined in via-as mode. */
  #direct: DirectRouter | undefined;
  /** Spread mode's router (one single-endpoint client per AS); undefined in the other modes. */
  #spread: SpreadRouter | undefined;
  #resolveId = 0;
  /** Coarse clock (the sweeper's), enough for a deadline that has a second of grace. */
  #now = Date.now();
  // One executor for every call, so a call allocates no closure of its own.
  #lastResolve: (v: unknown) => void = () => undefined;
  #lastReject: (e: SwitchboardError) => void = () => undefined;
  readonly #executor = (resolve: (v: unknown) => void, reject: (e: SwitchboardError) => void): void => {
    this.#lastResolve = resolve;
    this.#lastReject = reject;
  };

  private constructor(opts: ClientOptions, endpoints: Endpoint[]) {
    super();
    this.#o = opts;
    this.#endpoints = endpoints;
    this.#defaultTimeoutMs = opts.defaultTimeoutMs ?? 30_000;
    this.#maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.#maxQueued = opts.maxQueued ?? 10_000;
    this.#secret = toSecret(opts.secret, 'the client secret');
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#sweeper.unref();
  }

  /**
   * Connects to the first endpoint that answers (in order) and resolves; rejects with ConnectError
   * when none does within connectTimeoutMs each, or with AuthError when an AS refuses our proof, or
   * asks for one and this client has no secret.
   */
  static async connect(opts: ClientOptions): Promise<Client> {
    if (opts.registry !== undefined && !opts.endpoints?.length) {
      // Loaded only when used: the etcd client brings gRPC with it.
      const { readApplicationServers } = await import('../discovery/as-lookup.js');
      opts = { ...opts, endpoints: await readApplicationServers(opts.registry, opts.registryPrefix) };
    }
    const endpoints = opts.endpoints?.length ? [...opts.endpoints] : [{ host: opts.host ?? '127.0.0.1', port: opts.port ?? 7100 }];
    const client = new Client(opts, endpoints);
    if (opts.mode === 'spread') client.#spread = await SpreadRouter.connect(endpoints, (e) => Client.#spreadMember({ ...opts, endpoints: [e], mode: 'via-as' }, client), opts).catch(async (err: unknown) => { await client.close(); throw err; });
    let last: Error | undefined;
    client.#connecting = true;
    for (let i = 0; i < endpoints.length; i++) {
      try {
        await client.#open(endpoints[i]);
        // Without a secret, one heartbeat round trip: a port that asks for proof has sent its
        // CHALLENGE before the pong, so connect() rejects here rather than the first call.
        const link = client.#link;
        const answered = client.#secret ? true : await link?.conn.barrier(opts.connectTimeoutMs ?? 5000);
        if (client.#fatal) throw client.#fatal;
        if (answered !== true) {
          if (client.#link === link) client.#link = undefined;
          const closed = link?.conn.closed === true;
          link?.conn.destroy('heartbeat');
          // Refused at the door (OVERLOADED at maxConnections, ...): that is the answer.
          if (link?.closeError) throw link.closeError;
          throw new ConnectError(
            closed
              ? `the application server at ${show(endpoints[i])} closed the connection before answering a heartbeat (${link?.closedBy ?? 'no reason given'})`
              : `the application server at ${show(endpoints[i])} took the connection but did not answer a heartbeat within ${opts.connectTimeoutMs ?? 5000} ms; is it stopped or overloaded?`,
          );
        }
        client.#next = i;
        client.#connecting = false;
        if (opts.mode === 'direct') {
          client.#direct = new DirectRouter(
            { lookup: (key, poolType) => client.lookup(key, poolType), viaAs: (spec, timeoutMs) => client.#viaAs(spec, timeoutMs) },
            { tls: opts.tls, heartbeatMs: opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, connectTimeoutMs: opts.connectTimeoutMs ?? 5000, maxBodyBytes: opts.maxBodyBytes },
          );
        }
        return client;
      } catch (err) {
        last = err as Error;
        if (err instanceof AuthError) break;
      }
    }
    await client.close();
    if (last instanceof AuthError || (endpoints.length === 1 && (last instanceof ConnectError || last instanceof OverloadedError))) throw last;
    throw new ConnectError(`cannot connect to any application server (${endpoints.map(show).join(', ')}): ${last?.message}${last instanceof ConnectError ? '' : '; is one running?'}`, { cause: last });
  }

  /** Calls still waiting for an answer (sent or queued; to the AS or, in director mode, to FSs). */
  get inflight(): number {
    return this.#calls.size + (this.#direct?.inflight ?? 0) + (this.#spread?.inflight ?? 0);
  }

  /** Director mode's router (its counters and FS connections); undefined in via-as mode. */
  get direct(): DirectRouter | undefined {
    return this.#direct;
  }

  /** Spread mode's router (its ASs and per-AS counters); undefined in the other modes. */
  get spread(): SpreadRouter | undefined {
    return this.#spread;
  }

  /** One AS of a spread client: a single-endpoint via-as client, seen through its private send. */
  static async #spreadMember(opts: ClientOptions, outer: Client): Promise<SpreadMember> {
    const c = await Client.connect(opts);
    // The spread client reports each AS's connections as its own (its first was up before this).
    c.on('connected', (e) => outer.emit('connected', e));
    c.on('disconnected', (e) => outer.emit('disconnected', e));
    outer.emit('connected', { endpoint: c.endpoint as Endpoint });
    return { get connected() { return c.connected; }, get closed() { return c.closed; }, send: (spec, t) => c.#viaAs(spec, t), on: (ev, l) => c.on(ev, l), close: () => c.close() };
  }

  /** Closed by close(), or for good after a fatal error. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Up on an AS now. */
  get connected(): boolean {
    return this.#link !== undefined && !this.#link.retiring && !this.#link.conn.closed;
  }

  /** The AS this client talks to now, if any. */
  get endpoint(): Endpoint | undefined {
    return this.#link?.endpoint;
  }

  /** Calls a contract's service (its key, and idempotent unless told otherwise); typed from its schemas. */
  call<C extends ServiceContract<unknown, unknown, unknown>>(contract: C, ...args: ContractCallArgs<C, CallOptions>): Promise<ResponseOf<C>>;
  /** Calls one service by key and resolves with its decoded answer, or rejects with the status's error class. */
  call<T = unknown>(serviceKey: number, body?: unknown, opts?: CallOptions): Promise<T>;
  call<T>(target: number | ServiceContract, body?: unknown, opts?: CallOptions): Promise<T> {
    let serviceKey: number;
    let name: string | undefined;
    if (typeof target === 'number') serviceKey = target;
    else if (isServiceContract(target)) {
      serviceKey = target.key;
      name = target.name;
      if (opts?.idempotent === undefined && target.idempotent) opts = { ...opts, idempotent: true };
    } else return Promise.reject(new BadRequestError('call() takes a service key or a contract made with defineService'));
    // Tracing (docs/tracing.md): a CLIENT span when a registered SDK records one, its context sent in
    // the header extension, unless the caller gave a valid trace context of its own. With no SDK this
    // is one cheap check, and the call goes as a version-1 request.
    const span = opts?.traceparent !== undefined && validTraceparent(opts.traceparent) ? undefined : startCallSpan(serviceKey, opts?.poolType ?? 0, name, this.#direct !== undefined);
    if (span !== undefined) {
      const tc = callTraceContext(span);
      opts = { ...opts, traceparent: tc.traceparent, tracestate: tc.tracestate };
    }
    if (this.#closed) return endWithCall(span, Promise.reject(this.#fatal ?? new ChannelClosedError('the client is closed')));
    // The budget field is 32 bits: a longer timeout is sent as the longest budget there is.
    const timeoutMs = Math.min(opts?.timeoutMs ?? this.#defaultTimeoutMs, MAX_UINT32);
    let encoded: Buffer;
    try {
      encoded = encodeBody(body);
    } catch (err) {
      return endWithCall(span, Promise.reject(new BadRequestError(`the call's body cannot be encoded as msgpack: ${(err as Error).message}`)));
    }
    // An oversize body would make the AS close the connection under every other call on it: fail this one alone.
    if (encoded.length > this.#maxBodyBytes) return endWithCall(span, Promise.reject(new FrameTooLargeError(encoded.length, this.#maxBodyBytes)));
    let extension: Buffer | undefined;
    if (opts?.routingKey !== undefined || opts?.traceparent !== undefined) {
      try {
        extension = callExtension(opts);
      } catch (err) {
        return endWithCall(span, Promise.reject(err));
      }
    }
    const spec: CallSpec = { serviceKey, poolType: opts?.poolType ?? 0, body: encoded, idempotent: opts?.idempotent === true, extension };
    if (this.#direct !== undefined) return endWithCall(span, this.#direct.call(spec, timeoutMs)) as Promise<T>;
    if (this.#spread !== undefined) return endWithCall(span, this.#spread.call(spec, timeoutMs)) as Promise<T>;
    return endWithCall(span, this.#viaAs(spec, timeoutMs)) as Promise<T>;
  }

  /** Sends a call through the AS (queued while no connection is up). */
  #viaAs(spec: CallSpec, timeoutMs: number): Promise<unknown> {
    if (this.#closed) return Promise.reject(this.#fatal ?? new ChannelClosedError('the client is closed'));
    const link = this.#link;
    const up = link !== undefined && !link.retiring && !link.conn.closed;
    if (!up && this.#calls.queued >= this.#maxQueued) {
      return Promise.reject(new OverloadedError(`${this.#calls.queued} calls already wait for a connection to an application server; retry later`));
    }
    const promise = new Promise<unknown>(this.#executor);
    const deadlineAt = this.#now + timeoutMs + SWEEP_MS;
    const id = this.#calls.add(this.#lastResolve, this.#lastReject, deadlineAt + LOCAL_GRACE_MS, spec, up ? link.gen : undefined);
    if (up) link.conn.sendFrame(REQUEST_FLAGS, 0, id, spec.serviceKey, spec.poolType, timeoutMs, spec.body, spec.extension);
    else this.#reconnectSoon();
    return promise;
  }

  /**
   * Director mode's question (LOOKUP): which FSs serve `serviceKey` in `poolType`, with their
   * weights, the lease and a ticket. `mode: 'direct'` asks it for you; this is for tools.
   */
  lookup(serviceKey: number, poolType = 0, timeoutMs = 5000): Promise<LookupReply> {
    return this.#event(EventKind.LOOKUP, { key: serviceKey, poolType }, timeoutMs, `LOOKUP ${serviceKey}`).then((body) => {
      const d = lookupReplySchema.safeParse(body);
      if (!d.success) throw new BadRequestError(`the AS answered LOOKUP ${serviceKey} with something unreadable`);
      return d.data;
    });
  }

  /** A two-way event to the current AS; resolves with the answer's body, or rejects with its error. */
  #event(kind: number, body: unknown, timeoutMs: number, what: string): Promise<unknown> {
    const link = this.#link;
    if (link && !link.retiring && !link.conn.closed) return this.#eventOn(link, kind, body, timeoutMs, what);
    if (this.#closed) return Promise.reject(this.#fatal ?? new ChannelClosedError('the client is closed'));
    if (this.#o.reconnect === false && this.#gen > 0) return Promise.reject(new ChannelClosedError('the connection to the application server is lost and reconnection is off'));
    // As a call does: wait for the connection (dialled now, after an idle close nothing else would), within the time given.
    const startedAt = Date.now();
    return new Promise<Link | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.#waitingForLink.delete(resolve);
        resolve(undefined);
      }, timeoutMs);
      timer.unref();
      this.#waitingForLink.add((l) => {
        clearTimeout(timer);
        resolve(l);
      });
      this.#reconnectSoon();
    }).then((l) => {
      if (l === undefined) throw new DeadlineExceededError(`no application server could be reached within ${timeoutMs} ms for ${what} (${this.#endpoints.map(show).join(', ')})`);
      return this.#eventOn(l, kind, body, Math.max(1, timeoutMs - (Date.now() - startedAt)), what);
    });
  }

  #eventOn(link: Link, kind: number, body: unknown, timeoutMs: number, what: string): Promise<unknown> {
    const id = (this.#resolveId = (this.#resolveId % 0x7fffffff) + 1);
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#resolves.delete(id);
        reject(new DeadlineExceededError(`no answer to ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.#resolves.set(id, (frame) => {
        clearTimeout(timer);
        const answer = tryDecodeBody(frame);
        if (statusOf(frame) !== Status.OK) return reject(errorFromStatus(statusOf(frame), answer as { code?: string; message?: string }));
        resolve(answer);
      });
      link.conn.send(encodeEventRequest(kind, id, body, true));
    });
  }

  /**
   * Asks the AS for the service registered under a contract's name (`greeter.greet`): its key and
   * options. Rejects with ServiceNotFoundError when no FS serves it.
   */
  resolve(name: string, timeoutMs = 5000): Promise<ServiceDescriptor> {
    return this.#event(EventKind.RESOLVE, { name }, timeoutMs, `RESOLVE ${name}`).then((body) => {
      const d = serviceDescriptorSchema.safeParse(body);
      if (!d.success) throw new BadRequestError(`the AS answered RESOLVE ${name} with something unreadable`);
      return d.data;
    });
  }

  #onEvent(frame: Buffer, link: Link | undefined): void {
    const kind = eventKindOf(frame);
    if (isRequest(frame)) {
      // Only a client without a secret sees CHALLENGE here (with one, the handshake took it): every
      // call would be refused AUTH_REQUIRED, so this is fatal, as a refused proof is.
      if (kind === EventKind.CHALLENGE && link !== undefined && !link.conn.closed) {
        const err = new AuthError('SB_ERR_AUTH_REQUIRED', `the application server at ${show(link.endpoint)} asks for proof of the client secret (it sent CHALLENGE); give this client the same secret (the secret option, read with readSecretFile; --secret-file for switchboard call)`);
        this.#fatal = err;
        link.closeError = err;
        link.conn.destroy('auth', err);
      }
      return;
    }
    if (kind !== EventKind.RESOLVE && kind !== EventKind.LOOKUP) return;
    const done = this.#resolves.get(requestIdOf(frame));
    if (!done) return;
    this.#resolves.delete(requestIdOf(frame));
    done(frame);
  }

  /** Sends a one-way request: no answer, no error if it fails; dropped when no connection is up. */
  send(serviceKey: number, body?: unknown, opts: CallOptions = {}): void {
    const frame = encodeRequest(0, serviceKey, body, { poolType: opts.poolType ?? 0, budgetMs: Math.min(opts.timeoutMs ?? 0, MAX_UINT32), twoWay: false });
    // Thrown, not sent: an oversize frame would make the AS close the connection under every call on it.
    if (frame.length - HEADER_SIZE > this.#maxBodyBytes) throw new FrameTooLargeError(frame.length - HEADER_SIZE, this.#maxBodyBytes);
    // One-way requests need no slot: id 0 is never answered.
    if (this.connected) this.#link?.conn.send(frame);
  }

  /** Fails what waits with CHANNEL_CLOSED (or the fatal error that closed it), closes every connection, and reconnects no more. */
  close(): Promise<void> {
    this.#closed = true;
    this.#direct?.close();
    const spreadClosed = this.#spread?.close();
    clearInterval(this.#sweeper);
    clearTimeout(this.#retry);
    this.#calls.rejectAll(this.#fatal ?? new ChannelClosedError('the client was closed before the answer came'));
    for (const w of this.#waitingForLink) w(undefined);
    this.#waitingForLink.clear();
    const links = [...this.#retiring, ...(this.#link ? [this.#link] : [])];
    this.#link = undefined;
    this.#retiring.clear();
    return Promise.all(
      links.map(
        (l) =>
          new Promise<void>((resolve) => {
            if (l.conn.socket.destroyed) return resolve();
            l.conn.socket.once('close', () => resolve());
            l.conn.close('local');
          }),
      ),
    ).then(() => spreadClosed);
  }

  /** Opens a connection to `endpoint` and makes it the current one; rejects if it cannot. */
  #open(endpoint: Endpoint): Promise<void> {
    const connectTimeoutMs = this.#o.connectTimeoutMs ?? 5000;
    return new Promise<void>((resolve, reject) => {
      const gen = ++this.#gen;
      let link: Link | undefined;
      const handlers = {
        onFrameAt: (buf: Buffer, off: number, len: number) => {
          if (link) this.#onFrameAt(link, buf, off, len);
        },
        onEvent: (frame: Buffer) => this.#onEvent(frame, link),
      };
      const ready = (): void => {
        clearTimeout(timer);
        link = { conn, endpoint, gen, retiring: false, openedAt: Date.now(), answered: false };
        this.#adopt(link);
        resolve();
      };
      const socket = dial({ host: endpoint.host, port: endpoint.port, tls: this.#o.tls }, () => {
        if (!this.#secret) return ready();
        // Connected: from here the proof's own timer speaks, so an AS without a secret is reported as such.
        clearTimeout(timer);
        authenticateDialer(conn, { secret: this.#secret, realm: 'client', timeoutMs: connectTimeoutMs }, handlers).then(ready, reject);
      });
      const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), connectTimeoutMs);
      const conn = new FrameConnection(socket, {
        heartbeatMs: this.#o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
        maxBodyBytes: this.#o.maxBodyBytes,
        // Many calls made in one tick leave in pieces, so the AS starts on the first while we encode the rest.
        earlyFlushBytes: 8192,
        ...handlers,
        onClose: (reason, err) => {
          clearTimeout(timer);
          if (link) this.#onLinkClosed(link, reason, err);
          // A refused proof is its own answer: "is it running?" would send the user the wrong way.
          else reject(err instanceof AuthError ? err : new ConnectError(`cannot connect to the application server at ${show(endpoint)}: ${err?.message ?? reason}; is it running?`, { cause: err }));
        },
      });
    });
  }

  /** A new connection is up: it takes the queued calls. */
  #adopt(link: Link): void {
    const previous = this.#lastEndpoint;
    this.#link = link;
    this.#lastEndpoint = link.endpoint;
    this.emit('connected', { endpoint: link.endpoint });
    if (previous && !same(previous, link.endpoint)) this.emit('failover', { from: previous, to: link.endpoint, reason: this.#moveReason });
    this.#moveReason = 'connection lost';
    this.#flushQueue();
    for (const w of this.#waitingForLink) w(link);
    this.#waitingForLink.clear();
  }

  #flushQueue(): void {
    const link = this.#link;
    if (!link || link.retiring || link.conn.closed) return;
    const now = Date.now();
    for (const id of this.#calls.queuedIds()) {
      const spec = this.#calls.spec(id);
      if (!spec) continue;
      const budget = Math.max(1, Math.min(MAX_UINT32, Math.floor(this.#calls.deadline(id) - LOCAL_GRACE_MS - now)));
      this.#calls.markSent(id, link.gen);
      link.conn.sendFrame(REQUEST_FLAGS, 0, id, spec.serviceKey, spec.poolType, budget, spec.body, spec.extension);
    }
  }

  #onFrameAt(link: Link, buf: Buffer, off: number, len: number): void {
    const id = buf.readUInt32BE(off + OFFSET.requestId);
    const status = buf[off + OFFSET.status];
    if (id === 0 && status !== Status.OK) {
      // A connection-level refusal: it applies to every call on this connection, which closes next.
      link.closeError = refusalAt(buf, off, len);
      return;
    }
    if (!this.#calls.isLiveOn(id, link.gen)) return; // late, or the call moved to another connection
    link.answered = true;
    this.#attempt = 0;
    if (status === Status.NOT_ACTIVE) {
      // The request did not run: send it to the active one, and move there.
      const e = errorFromStatus(status, tryDecodeBody(buf.subarray(off, off + len)) as { active?: unknown }) as NotActiveError;
      const unfollowable = e.active !== undefined && !this.#mayGoTo(e.active);
      if (unfollowable && ++this.#unfollowable >= this.#endpoints.length) {
        // Every endpoint we may use is a standby naming an active we may not go to: tell the
        // caller where the active is rather than go round the list until the deadline.
        this.#calls.reject(id, e);
        this.#failQueued(e);
      } else this.#calls.requeue(id);
      this.#lastNotActive = `${show(link.endpoint)} answered NOT_ACTIVE ${e.active === undefined ? 'and named no active (its pair has none now: negotiating, or its etcd is away)' : `naming ${show(e.active)}`}`;
      this.#bounces++;
      this.#moveAway(link, e.active, 'the AS answered NOT_ACTIVE');
      this.#maybeRetired(link);
      return;
    }
    let body: unknown;
    try {
      body = decodeBodyAt(buf, off, len);
    } catch (err) {
      this.#calls.reject(id, err as SwitchboardError);
      this.#maybeRetired(link);
      return;
    }
    if (status === Status.OK) this.#calls.resolve(id, body);
    else this.#calls.reject(id, errorFromStatus(status, body as { code?: string; message?: string }));
    this.#refusals = 0;
    this.#unfollowable = 0;
    this.#bounces = 0;
    this.#lastNotActive = undefined;
    this.#maybeRetired(link);
  }

  /**
   * Leaves `link` for `target` (or the next endpoint): no new calls go on it; the calls already on
   * it are answered there (a standby answers them all NOT_ACTIVE, so they come back to the queue).
   */
  #moveAway(link: Link, target: Endpoint | undefined, reason: string): void {
    if (link.retiring || this.#closed) return;
    link.retiring = true;
    link.retiredFor = reason;
    this.#retiring.add(link);
    if (this.#link === link) this.#link = undefined;
    let to = target && this.#mayGoTo(target) ? target : undefined;
    if (to && !this.#endpoints.some((e) => same(e, to as Endpoint))) this.#endpoints.push(to);
    to ??= this.#endpoints[(this.#endpoints.findIndex((e) => same(e, link.endpoint)) + 1) % this.#endpoints.length];
    this.#next = this.#endpoints.findIndex((e) => same(e, to as Endpoint));
    this.#moveReason = reason;
    // The first round of moves goes at once (a standby names the active); after it, back off, but
    // never past NOT_ACTIVE_POLL_MS: these ASs answer, and a new active is due within a takeover.
    const extra = this.#bounces - this.#endpoints.length;
    this.#dial(extra <= 0 ? 0 : Math.min(this.#backoff(extra - 1), NOT_ACTIVE_POLL_MS));
  }

  /** The `reconnect` backoff before dial number n + 1 of a run (capped, with jitter). */
  #backoff(n: number): number {
    const r = this.#o.reconnect || {};
    return backoffDelay(n, { baseMs: r.baseMs ?? 100, capMs: r.capMs ?? 5000 });
  }

  /** Whether a standby's redirect to `target` may be followed: it is listed, or followRedirects allows any. */
  #mayGoTo(target: Endpoint): boolean {
    return this.#o.followRedirects !== false || this.#endpoints.some((e) => same(e, target));
  }

  /** A retiring connection whose calls are all answered is closed. */
  #maybeRetired(link: Link): void {
    if (link.retiring && this.#calls.liveOn(link.gen).length === 0) link.conn.close('local');
  }

  #onLinkClosed(link: Link, reason: string, err: Error | undefined): void {
    link.closedBy = err ? `${reason}: ${err.message}` : reason;
    this.#retiring.delete(link);
    const current = this.#link === link;
    if (current) this.#link = undefined;
    this.#calls.forgetOwedOn(link.gen);
    // Accepted and closed at once (a full AS answering OVERLOADED, a dying one): dial it with backoff, not in a loop.
    if (link.answered || Date.now() - link.openedAt >= 1000) this.#attempt = 0;
    else this.#attempt++;
    const refusal = link.closeError;
    const overloaded = refusal instanceof OverloadedError;
    if (overloaded) this.#refusals++;
    for (const id of this.#calls.liveOn(link.gen)) {
      const spec = this.#calls.spec(id);
      // Refused at the door (OVERLOADED before anything ran), or safe twice: go again.
      if (overloaded || spec?.idempotent) this.#calls.requeue(id);
      else this.#calls.reject(id, refusal ?? new ChannelClosedError(`the connection to the application server at ${show(link.endpoint)} closed (${reason}${err ? `: ${err.message}` : ''}) before the answer came; the request may or may not have run`));
    }
    if (refusal instanceof AuthError) {
      // A proof refused does not get better by retrying: the client is closed, and says why.
      this.#fatal = refusal;
      void this.close();
      return;
    } else if (overloaded && this.#refusals >= this.#endpoints.length) {
      // Every AS turned us away in a row: tell the callers rather than make them wait.
      this.#refusals = 0;
      this.#failQueued(refusal);
    }
    if (this.#closed) return;
    // Every connection that was reported connected is reported gone, the ones left for another AS too.
    this.emit('disconnected', { endpoint: link.endpoint, reason: link.retiredFor ?? refusal?.code ?? reason });
    if (current || this.#calls.queued > 0) {
      if (current) this.#next = (this.#endpoints.findIndex((e) => same(e, link.endpoint)) + 1) % this.#endpoints.length;
      // Closed for sending nothing: dial again when there is something to send (the next call
      // does), or an idle client would hold a connection after all, re-opened every idle period.
      if (refusal?.code !== 'SB_ERR_IDLE' || this.#calls.size > 0) this.#reconnectSoon();
    }
  }

  #failQueued(err: SwitchboardError): void {
    for (const id of this.#calls.queuedIds()) this.#calls.reject(id, err);
  }

  /** Dials in the background unless a connection is up or a dial is under way. */
  #reconnectSoon(): void {
    if (this.#closed || this.#connecting || this.#dialing || this.#retry !== undefined || this.connected) return;
    if (this.#o.reconnect === false && this.#gen > 0) {
      this.#failQueued(new ChannelClosedError('the connection to the application server is lost and reconnection is off'));
      return;
    }
    this.#dial(this.#attempt === 0 ? 0 : this.#backoff(this.#attempt - 1));
  }

  #dial(delayMs: number): void {
    if (this.#closed || this.#dialing) return;
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (this.#closed || this.connected) return;
      this.#dialing = true;
      const endpoint = this.#endpoints[this.#next % this.#endpoints.length];
      this.#open(endpoint).then(
        () => {
          this.#dialing = false;
        },
        (err: Error) => {
          this.#dialing = false;
          this.#attempt++;
          this.#next = (this.#next + 1) % this.#endpoints.length;
          if (err instanceof AuthError) this.#failQueued(err);
          this.#reconnectSoon();
        },
      );
    }, delayMs);
    // Calls waiting for this connection keep the process alive (until their deadlines); else it may exit.
    if (this.#calls.size === 0) this.#retry.unref();
  }

  #sweep(): void {
    this.#now = Date.now();
    if (this.#calls.size > 0) {
      this.#calls.expire(
        this.#now,
        (queued) =>
        queued
          ? new DeadlineExceededError(
              this.#lastNotActive === undefined
                ? `no application server could be reached before the deadline (${this.#endpoints.map(show).join(', ')})`
                : `no active application server took the call before the deadline: ${this.#lastNotActive}`,
            )
          : new DeadlineExceededError('no answer from the application server within the deadline and its grace; is it overloaded?'),
        LOCAL_GRACE_MS,
      );
    }
    for (const l of this.#retiring) this.#maybeRetired(l);
  }
}

/** With the u flag a whole surrogate pair is one code point, so only a lone half matches. */
const LONE_SURROGATE = /\p{Cs}/u;

/** The extension block for a call's routing key and trace context. */
function callExtension(opts: CallOptions): Buffer {
  const key = opts.routingKey;
  // A lone surrogate would be sent as U+FFFD: two different keys would then land on one FS.
  if (typeof key === 'string' && LONE_SURROGATE.test(key)) {
    throw new BadRequestError('a routing key string holds a lone surrogate (half a UTF-16 pair), which UTF-8 cannot carry; give well-formed text or the bytes (a Uint8Array)', 'SB_ERR_BAD_EXTENSION');
  }
  const routingKey = key === undefined ? undefined : typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key);
  if (routingKey !== undefined && (routingKey.length === 0 || routingKey.length > 255)) {
    throw new BadRequestError(`a routing key must be 1 to 255 bytes, got ${routingKey.length}; hash a longer one first`, 'SB_ERR_BAD_EXTENSION');
  }
  const traceparent = opts.traceparent !== undefined && validTraceparent(opts.traceparent) ? opts.traceparent : undefined;
  return encodeExtension({ routingKey, traceparent, tracestate: traceparent === undefined ? undefined : opts.tracestate });
}
