import { createServer, type Server, type Socket } from 'node:net';
import { listenOn } from '../../common/listen.js';
import type { Logger } from '../../common/logger.js';
import {
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
} from '../../protocol/index.js';
import type { FsManager } from './fs-manager.js';

export interface ControlListenerOptions {
  host: string;
  port: number;
  heartbeatMs: number;
  maxBodyBytes: number;
  logger: Logger;
}

/** Where FSs register: HELLO, then LOAD on a timer, DRAIN before they stop. Events only. */
export class ControlListener {
  readonly #o: ControlListenerOptions;
  readonly #manager: FsManager;
  readonly #server: Server;
  readonly #conns = new Set<FrameConnection>();

  constructor(opts: ControlListenerOptions, manager: FsManager) {
    this.#o = opts;
    this.#manager = manager;
    this.#server = createServer((s) => this.#accept(s));
  }

  listen(): Promise<number> {
    return listenOn(this.#server, this.#o.port, this.#o.host);
  }

  close(): void {
    this.#server.close();
    for (const c of this.#conns) c.destroy('local');
    this.#conns.clear();
  }

  #accept(socket: Socket): void {
    const conn = new FrameConnection(socket, {
      heartbeatMs: this.#o.heartbeatMs,
      readTimeoutMs: this.#o.heartbeatMs * 3,
      maxBodyBytes: this.#o.maxBodyBytes,
      onFrame: (frame, c) => {
        if (isRequest(frame) && isTwoWay(frame)) {
          c.send(encodeErrorResponse(requestIdOf(frame), Status.BAD_REQUEST, 'SB_ERR_BAD_REQUEST', 'the control port takes events only; send requests to the client port'));
        }
      },
      onEvent: (frame, c) => this.#onEvent(frame, c),
      onClose: (reason, err, c) => {
        this.#conns.delete(c);
        this.#o.logger.debug({ fs: c.owner, reason, err: err?.message }, 'control link closed');
      },
    });
    this.#conns.add(conn);
  }

  #onEvent(frame: Buffer, conn: FrameConnection): void {
    if (!isRequest(frame)) return;
    const kind = eventKindOf(frame);
    const id = requestIdOf(frame);
    let body: unknown;
    try {
      body = decodeBody(frame);
    } catch (err) {
      this.#refuse(conn, kind, id, (err as Error).message);
      return;
    }
    switch (kind) {
      case EventKind.HELLO: {
        const h = helloSchema.safeParse(body);
        if (!h.success) {
          this.#refuse(conn, kind, id, `HELLO is malformed: ${h.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
          return;
        }
        const entry = this.#manager.upsertFromHello(h.data);
        conn.owner = entry.id;
        conn.send(encodeEventResponse(EventKind.HELLO, id, { fsId: entry.id, heartbeatMs: this.#o.heartbeatMs }));
        return;
      }
      case EventKind.LOAD: {
        const l = loadSchema.safeParse(body);
        if (typeof conn.owner === 'string' && l.success) this.#manager.reportLoad(conn.owner, l.data, Date.now());
        else this.#o.logger.debug({ fs: conn.owner }, 'LOAD ignored: no HELLO yet on this link, or malformed');
        return;
      }
      case EventKind.DRAIN: {
        if (typeof conn.owner === 'string') this.#manager.markDraining(conn.owner);
        if (isTwoWay(frame)) conn.send(encodeEventResponse(EventKind.DRAIN, id, undefined));
        return;
      }
      default:
        if (isTwoWay(frame)) this.#refuse(conn, kind, id, `event kind ${kind} is not accepted on the control port`);
    }
  }

  #refuse(conn: FrameConnection, kind: number, id: number, message: string): void {
    this.#o.logger.warn({ remote: conn.remote, kind, message }, 'control event refused');
    conn.send(encodeEventResponse(kind, id, { code: 'SB_ERR_BAD_REQUEST', message }, Status.BAD_REQUEST));
  }
}
