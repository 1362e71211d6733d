import type { Server, Socket } from 'node:net';
import { listenOn } from '../../common/listen.js';
import type { Logger } from '../../common/logger.js';
import type { RateLimitedLog } from '../../common/rate-limited-log.js';
import {
  CLOSE_REASONS,
  EventKind,
  FrameConnection,
  Status,
  SwitchboardError,
  encodeErrorResponse,
  encodeEventResponse,
  eventKindOf,
  isRequest,
  isTwoWay,
  requestIdOf,
  lookupRequestSchema,
  resolveRequestSchema,
  tryDecodeBody,
  type CloseReason,
  type FrameHandlers,
  type ServiceDescriptor,
} from '../../protocol/index.js';
import { createListener, guardListener, type TlsOptions } from '../../security/index.js';
import type { Dispatcher } from '../routing/dispatcher.js';
import { ClientSession } from './client-session.js';

export interface ClientIngressOptions {
  host: string;
  port: number;
  heartbeatMs: number;
  /** A frame begun and not finished within this closes the connection. */
  readTimeoutMs: number;
  maxConnections: number;
  maxInflightPerClient: number;
  /** Request bytes one client may have in flight before its reading pauses. */
  maxInflightBytesPerClient: number;
  maxBodyBytes: number;
  /** Bytes of answers held for one client that does not read them; beyond, it is closed. */
  maxBufferedBytes: number;
  /** A connection with nothing in flight and no request for this long is closed; 0 keeps it. */
  idleTimeoutMs: number;
  /** Clients must prove this secret first (CHALLENGE/AUTH); none means the port is open. */
  clientSecret?: Buffer;
  tls?: TlsOptions;
  authTimeoutMs: number;
  /** Asked before each accept: false when the process is short of file descriptors. */
  hasRoom: () => boolean;
  /** A service name to its descriptor (RESOLVE), from the registry. */
  resolveName: (name: string) => ServiceDescriptor | undefined;
  /** Director mode: which FSs serve a key, for this client (LOOKUP). */
  lookup: (client: string, key: number, poolType: number) => { status: number; body: unknown };
  /** A client connection closed: the leases its LOOKUPs took are given back. */
  released?: (client: string) => void;
  logger: Logger;
  log: RateLimitedLog;
}

/** The client port: one ClientSession per connection, every request handed to the dispatcher. */
export class ClientIngress {
  readonly #o: ClientIngressOptions;
  readonly #dispatcher: Dispatcher;
  readonly #server: Server;
  readonly #sessions = new Set<ClientSession>();
  readonly #idleSweeper: NodeJS.Timeout | undefined;
  refused = 0;
  /** Connections closed since start, by reason (for metrics). */
  readonly closed = new Map<CloseReason, number>(CLOSE_REASONS.map((r) => [r, 0]));

  constructor(opts: ClientIngressOptions, dispatcher: Dispatcher) {
    this.#o = opts;
    this.#dispatcher = dispatcher;
    this.#server = createListener(opts.tls, { mutual: opts.tls?.requireClientCert === true, handshakeTimeoutMs: opts.authTimeoutMs }, (s) => this.#accept(s));
    this.#server.on('error', (err) => this.#o.log.error('accept', { err: err.message }, 'client port accept failed'));
    if (opts.idleTimeoutMs > 0) {
      this.#idleSweeper = setInterval(() => this.#closeIdle(Date.now()), Math.max(50, Math.min(10_000, opts.idleTimeoutMs / 4)));
      this.#idleSweeper.unref();
    }
  }

  get connectionCount(): number {
    return this.#sessions.size;
  }

  get maxConnections(): number {
    return this.#o.maxConnections;
  }

  /** At maxConnections: new clients are turned away. */
  get saturated(): boolean {
    return this.#sessions.size >= this.#o.maxConnections;
  }

  listen(): Promise<number> {
    return listenOn(this.#server, this.#o.port, this.#o.host);
  }

  /** No new client connections (the port closes); those open go on. */
  stopAccepting(): void {
    this.#server.close();
  }

  close(): void {
    clearInterval(this.#idleSweeper);
    this.#server.close();
    for (const s of this.#sessions) s.conn.close('local');
    this.#sessions.clear();
  }

  #accept(socket: Socket): void {
    if (this.#sessions.size >= this.#o.maxConnections || !this.#o.hasRoom()) {
      this.refused++;
      const why = this.#sessions.size >= this.#o.maxConnections ? `holds ${this.#o.maxConnections} client connections, its maxConnections` : 'is short of file descriptors';
      this.#o.log.warn('client-refused', { remote: socket.remoteAddress, connections: this.#sessions.size, why }, 'client connection refused');
      socket.on('error', () => undefined);
      socket.end(encodeErrorResponse(0, Status.OVERLOADED, 'SB_ERR_OVERLOADED', `the application server ${why}; retry later or use another application server`));
      socket.setTimeout(1000, () => socket.destroy());
      return;
    }
    const dispatcher = this.#dispatcher;
    let session: ClientSession | undefined = undefined;
    const handlers: FrameHandlers = {
      onFrameAt: (buf, off, len) => dispatcher.dispatch(session as ClientSession, buf, off, len),
      onEvent: (frame, c) => this.#onEvent(frame, c),
    };
    const conn = new FrameConnection(socket, {
      heartbeatMs: this.#o.heartbeatMs,
      readTimeoutMs: this.#o.readTimeoutMs,
      maxBodyBytes: this.#o.maxBodyBytes,
      maxBufferedBytes: this.#o.maxBufferedBytes,
      // Answers from every FS read of a loop turn leave in one write.
      perTurn: true,
      ...handlers,
      onDrain: () => session?.resume(session),
      onClose: (reason, err, c) => {
        if (session) {
          this.#sessions.delete(session);
          this.#o.released?.(session.id);
        }
        this.closed.set(reason, (this.closed.get(reason) ?? 0) + 1);
        if (reason === 'protocol' || reason === 'read-timeout' || reason === 'auth' || reason === 'output-limit' || reason === 'write-stall') {
          this.#o.log.warn(`client-close:${reason}`, { remote: c.remote, reason, err: err?.message }, 'client connection closed');
        } else {
          this.#o.logger.debug({ remote: c.remote, reason, err: err?.message }, 'client connection closed');
        }
      },
    });
    session = new ClientSession(conn, this.#o.maxInflightPerClient, this.#o.maxInflightBytesPerClient, Date.now());
    conn.owner = session;
    this.#sessions.add(session);
    if (this.#o.clientSecret) guardListener(conn, { secret: this.#o.clientSecret, realm: 'client', timeoutMs: this.#o.authTimeoutMs }, handlers);
  }

  /** Client events: RESOLVE (a service name to its key), LOOKUP (director mode); any other two-way event is refused. */
  #onEvent(frame: Buffer, c: FrameConnection): void {
    if (!isRequest(frame) || !isTwoWay(frame)) return;
    const kind = eventKindOf(frame);
    if (kind === EventKind.LOOKUP) {
      this.#lookup(frame, c);
      return;
    }
    if (kind !== EventKind.RESOLVE) {
      c.rejectEvent(frame);
      return;
    }
    const req = resolveRequestSchema.safeParse(tryDecodeBody(frame));
    const id = requestIdOf(frame);
    if (!req.success) {
      c.send(encodeEventResponse(EventKind.RESOLVE, id, { code: 'SB_ERR_BAD_REQUEST', message: 'RESOLVE takes { name }: a service name such as greeter.greet' }, Status.BAD_REQUEST));
      return;
    }
    const d = this.#o.resolveName(req.data.name);
    if (d === undefined) {
      if (this.#dispatcher.inStartupGrace(Date.now())) {
        const message = `this application server started moments ago and may not have heard from every function server yet (none has named a service ${req.data.name} so far); retry shortly, or at another AS`;
        c.send(encodeEventResponse(EventKind.RESOLVE, id, { code: 'SB_ERR_UNAVAILABLE', message }, Status.UNAVAILABLE));
        return;
      }
      c.send(encodeEventResponse(EventKind.RESOLVE, id, { code: 'SB_ERR_SERVICE_NOT_FOUND', message: `no registered function server serves a service named ${req.data.name}` }, Status.SERVICE_NOT_FOUND));
      return;
    }
    c.send(encodeEventResponse(EventKind.RESOLVE, id, d));
    (c.owner as ClientSession).lastRequestAt = Date.now();
  }

  #lookup(frame: Buffer, c: FrameConnection): void {
    const id = requestIdOf(frame);
    const req = lookupRequestSchema.safeParse(tryDecodeBody(frame));
    if (!req.success) {
      c.send(encodeEventResponse(EventKind.LOOKUP, id, { code: 'SB_ERR_BAD_REQUEST', message: 'LOOKUP takes { key, poolType? }: a service key (0-4294967295) and a pool type (0-65535)' }, Status.BAD_REQUEST));
      return;
    }
    const notActive = this.#dispatcher.notActive;
    if (notActive !== null) {
      const active = notActive();
      const message = 'this application server is not the active of its pair; LOOKUP at the active one';
      c.send(encodeEventResponse(EventKind.LOOKUP, id, active ? { code: 'SB_ERR_NOT_ACTIVE', message, active } : { code: 'SB_ERR_NOT_ACTIVE', message }, Status.NOT_ACTIVE));
      return;
    }
    // The session's id names the client in its tickets (and in the FSs' logs).
    const session = c.owner as ClientSession;
    const r = this.#o.lookup(session.id, req.data.key, req.data.poolType);
    c.send(encodeEventResponse(EventKind.LOOKUP, id, r.body, r.status));
    // An answered question is a request for the idle rule (a director-mode client's link to the AS
    // carries nothing but its LOOKUP renewals); a refused one, like a refused request, is not.
    if (r.status === Status.OK) session.lastRequestAt = Date.now();
  }

  /** A slot held by a connection that asks for nothing is a slot taken from one that would. */
  #closeIdle(now: number): void {
    const limit = this.#o.idleTimeoutMs;
    for (const s of this.#sessions) {
      if (s.inflight > 0 || now - s.lastRequestAt < limit) continue;
      s.conn.refuse(
        new SwitchboardError('SB_ERR_IDLE', `closed after ${limit} ms without a request; connect again when you have one`, Status.CHANNEL_CLOSED),
        'idle',
      );
    }
  }
}
