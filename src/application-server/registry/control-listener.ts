import type { Server, Socket } from 'node:net';
import { listenOn } from '../../common/listen.js';
import type { Logger } from '../../common/logger.js';
import type { RateLimitedLog } from '../../common/rate-limited-log.js';
import {
  AuthError,
  CLOSE_REASONS,
  EventKind,
  FrameConnection,
  Status,
  decodeBody,
  encodeErrorResponse,
  encodeEventResponse,
  eventKindOf,
  helloSchema,
  isRequest,
  isTwoWay,
  loadSchema,
  requestIdOf,
  type CloseReason,
  type FrameHandlers,
} from '../../protocol/index.js';
import { createListener, guardListener, isLoopback, type TlsOptions } from '../../security/index.js';
import type { FunctionServerEntry } from './function-server-entry.js';
import type { FsManager } from './fs-manager.js';
import { RegistryRefusal } from './registry-refusal.js';

export interface ControlListenerOptions {
  host: string;
  port: number;
  heartbeatMs: number;
  /** Control events are small: HELLO with every key fits well under this. */
  maxBodyBytes: number;
  /** Control connections held at once, proven or not; beyond, new ones are closed at once. */
  maxConnections: number;
  joinSecret?: Buffer;
  tls?: TlsOptions;
  authTimeoutMs: number;
  logger: Logger;
  log: RateLimitedLog;
}

/**
 * Where FSs register: HELLO, then LOAD on a timer, DRAIN before they stop. Events only. With a
 * join secret every connection must prove it first (CHALLENGE/AUTH); with mutual TLS the
 * certificate is the proof; with neither, only loopback peers are taken.
 */
export class ControlListener {
  readonly #o: ControlListenerOptions;
  readonly #manager: FsManager;
  readonly #server: Server;
  readonly #conns = new Set<FrameConnection>();
  /** Connections closed since start, by reason (for metrics). */
  readonly closed = new Map<CloseReason, number>(CLOSE_REASONS.map((r) => [r, 0]));
  refused = 0;

  constructor(opts: ControlListenerOptions, manager: FsManager) {
    this.#o = opts;
    this.#manager = manager;
    this.#server = createListener(opts.tls, { mutual: true, handshakeTimeoutMs: opts.authTimeoutMs }, (s) => this.#accept(s));
  }

  get connectionCount(): number {
    return this.#conns.size;
  }

  listen(): Promise<number> {
    return listenOn(this.#server, this.#o.port, this.#o.host);
  }

  close(): void {
    this.#server.close();
    for (const c of this.#conns) c.destroy('local');
    this.#conns.clear();
  }

  get #mutualTls(): boolean {
    return this.#o.tls?.cert !== undefined && this.#o.tls.ca !== undefined;
  }

  #accept(socket: Socket): void {
    if (this.#conns.size >= this.#o.maxConnections) {
      this.refused++;
      this.#o.log.warn('control-max', { remote: socket.remoteAddress, max: this.#o.maxConnections }, 'control connection refused: at maxControlConnections');
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    const handlers: FrameHandlers = {
      onFrame: (frame, c) => {
        if (isRequest(frame) && isTwoWay(frame)) {
          c.send(encodeErrorResponse(requestIdOf(frame), Status.BAD_REQUEST, 'SB_ERR_BAD_REQUEST', 'the control port takes events only; send requests to the client port'));
        }
      },
      onEvent: (frame, c) => this.#onEvent(frame, c),
    };
    const conn = new FrameConnection(socket, {
      heartbeatMs: this.#o.heartbeatMs,
      readTimeoutMs: Math.max(1000, this.#o.heartbeatMs * 3),
      maxBodyBytes: this.#o.maxBodyBytes,
      ...handlers,
      onClose: (reason, err, c) => {
        this.#conns.delete(c);
        this.closed.set(reason, (this.closed.get(reason) ?? 0) + 1);
        this.#manager.linkClosed(c);
        const fs = (c.owner as FunctionServerEntry | undefined)?.id;
        if (reason === 'auth' || reason === 'protocol') this.#o.log.warn(`control-close:${reason}`, { fs, remote: c.remote, reason, err: err?.message }, 'control link closed');
        else this.#o.logger.debug({ fs, reason, err: err?.message }, 'control link closed');
      },
    });
    this.#conns.add(conn);
    if (this.#o.joinSecret) {
      guardListener(conn, { secret: this.#o.joinSecret, realm: 'join', timeoutMs: this.#o.authTimeoutMs }, handlers);
    } else if (!this.#mutualTls && !isLoopback(socket.remoteAddress)) {
      conn.refuse(
        new AuthError('SB_ERR_AUTH_REQUIRED', 'this application server has no join secret and takes function servers from loopback only; give the AS and the FS the same --join-secret-file'),
        'auth',
      );
    }
  }

  #onEvent(frame: Buffer, conn: FrameConnection): void {
    if (!isRequest(frame)) return;
    const kind = eventKindOf(frame);
    const id = requestIdOf(frame);
    let body: unknown;
    try {
      body = decodeBody(frame);
    } catch (err) {
      if (kind === EventKind.LOAD) this.#manager.dropLoad('malformed');
      if (isTwoWay(frame)) this.#refuse(conn, kind, id, 'SB_ERR_BAD_REQUEST', (err as Error).message);
      else this.#o.log.warn('event-undecodable', { remote: conn.remote, kind }, 'one-way control event ignored: its body is not valid msgpack');
      return;
    }
    switch (kind) {
      case EventKind.HELLO: {
        const h = helloSchema.safeParse(body);
        if (!h.success) {
          this.#refuse(conn, kind, id, 'SB_ERR_BAD_REQUEST', `HELLO is malformed: ${h.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
          return;
        }
        let entry: FunctionServerEntry;
        try {
          entry = this.#manager.registerFromHello(h.data, conn);
        } catch (err) {
          if (!(err instanceof RegistryRefusal)) throw err;
          const e = err.toWireError();
          this.#refuse(conn, kind, id, e.code, e.message, e.status, h.data.name);
          return;
        }
        conn.send(encodeEventResponse(EventKind.HELLO, id, { fsId: entry.id, heartbeatMs: this.#o.heartbeatMs }));
        return;
      }
      case EventKind.LOAD: {
        const l = loadSchema.safeParse(body);
        if (l.success) this.#manager.reportLoad(conn, l.data, Date.now());
        else {
          this.#manager.dropLoad('malformed');
          this.#o.log.warn('load-malformed', { remote: conn.remote }, 'LOAD ignored: malformed');
        }
        return;
      }
      case EventKind.DRAIN: {
        const e = conn.owner as FunctionServerEntry | undefined;
        // Only the link that holds the FS may park it, and only while that FS is the one registered
        // under its name: a retired entry's link speaks for the old process, not for its successor.
        if (e !== undefined && e.link === conn && this.#manager.get(e.id) === e) this.#manager.markDraining(e.id);
        if (isTwoWay(frame)) conn.send(encodeEventResponse(EventKind.DRAIN, id, undefined));
        return;
      }
      default:
        if (isTwoWay(frame)) this.#refuse(conn, kind, id, 'SB_ERR_BAD_REQUEST', `event kind ${kind} is not accepted on the control port`);
    }
  }

  #refuse(conn: FrameConnection, kind: number, id: number, code: string, message: string, status: number = Status.BAD_REQUEST, name?: string): void {
    this.#o.log.warn(`refused:${code}`, { remote: conn.remote, kind, code, name, message }, 'control event refused');
    conn.send(encodeEventResponse(kind, id, { code, message }, status));
  }
}
