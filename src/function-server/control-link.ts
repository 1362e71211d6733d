import { backoffDelay } from '../common/backoff.js';
import { RateLimitedLog } from '../common/rate-limited-log.js';
import { authenticateDialer, dial, type TlsOptions } from '../security/index.js';
import type { Logger } from '../common/logger.js';
import {
  EventKind,
  FrameConnection,
  Status,
  tryDecodeBody,
  encodeEventRequest,
  eventKindOf,
  helloReplySchema,
  isRequest,
  requestIdOf,
  statusOf,
  type Hello,
  type LoadReport,
} from '../protocol/index.js';

export interface ControlLinkOptions {
  host: string;
  port: number;
  hello: () => Hello;
  load: () => LoadReport;
  refreshMs: number;
  heartbeatMs: number;
  reconnectBaseMs: number;
  reconnectCapMs: number;
  /** Proved to the AS before HELLO; the AS must prove it back. */
  joinSecret?: Buffer;
  tls?: TlsOptions;
  authTimeoutMs?: number;
  logger: Logger;
}

type Waiter = { resolve: (ok: boolean) => void; timer: NodeJS.Timeout };

/**
 * The FS's control connection to the AS: sends HELLO, then LOAD every refresh period. When the
 * link drops (the AS restarted, the network blinked) it reconnects with capped backoff and says
 * HELLO again, so a restarted AS learns about this FS without anyone's help.
 */
export class ControlLink {
  readonly #o: ControlLinkOptions;
  #conn: FrameConnection | undefined;
  #attempt = 0;
  #stopped = false;
  #registered = false;
  #loadTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #nextId = 1;
  readonly #waiters = new Map<number, Waiter>();
  #onRegistered: (() => void)[] = [];
  readonly #log: RateLimitedLog;
  fsId: string | undefined;

  constructor(opts: ControlLinkOptions) {
    this.#o = opts;
    this.#log = new RateLimitedLog(opts.logger, { burst: 3, windowMs: 60_000 });
  }

  get registered(): boolean {
    return this.#registered;
  }

  start(): void {
    this.#dial();
  }

  /** Resolves when the AS has acknowledged a HELLO (now or after a reconnect). */
  whenRegistered(): Promise<void> {
    if (this.#registered) return Promise.resolve();
    return new Promise((r) => this.#onRegistered.push(r));
  }

  /** Sends DRAIN and waits for the AS's acknowledgement, at most `timeoutMs`. */
  async drain(timeoutMs: number): Promise<boolean> {
    if (!this.#conn || this.#conn.closed || !this.#registered) return false;
    return this.#request(EventKind.DRAIN, {}, timeoutMs);
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#loadTimer);
    clearTimeout(this.#retryTimer);
    this.#conn?.close('local');
    for (const w of this.#waiters.values()) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
    this.#waiters.clear();
  }

  #dial(): void {
    if (this.#stopped) return;
    const as = `${this.#o.host}:${this.#o.port}`;
    const handlers = {
      onEvent: (frame: Buffer) => this.#onEvent(frame),
      onFrame: (frame: Buffer) => this.#onRefusal(frame),
    };
    const socket = dial({ host: this.#o.host, port: this.#o.port, tls: this.#o.tls }, () => {
      if (this.#stopped || conn.closed) return; // stopped while dialling: nothing to say
      const secret = this.#o.joinSecret;
      if (!secret) {
        this.#hello(conn);
        return;
      }
      authenticateDialer(conn, { secret, realm: 'join', timeoutMs: this.#o.authTimeoutMs ?? 5000 }, handlers).then(
        () => this.#hello(conn),
        (err: Error & { code?: string }) => this.#log.error(`auth:${err.code}`, { as, code: err.code, err: err.message }, 'the application server and this FS could not prove the join secret to each other'),
      );
    });
    const conn = new FrameConnection(socket, {
      heartbeatMs: this.#o.heartbeatMs,
      ...handlers,
      onClose: (reason, err) => this.#onClose(reason, err),
    });
    this.#conn = conn;
  }

  #hello(conn: FrameConnection): void {
    if (this.#stopped || conn.closed) return;
    this.#o.logger.debug({ as: `${this.#o.host}:${this.#o.port}` }, 'control link connected; sending HELLO');
    void this.#request(EventKind.HELLO, this.#o.hello(), Math.max(5000, this.#o.heartbeatMs * 3)).then((ok) => {
      if (!ok) {
        conn.destroy('local', new Error('HELLO was not acknowledged'));
        return;
      }
      this.#attempt = 0;
      this.#registered = true;
      this.#o.logger.info({ fsId: this.fsId, as: `${this.#o.host}:${this.#o.port}` }, 'registered with the application server');
      for (const r of this.#onRegistered.splice(0)) r();
      this.#sendLoad();
      clearInterval(this.#loadTimer);
      this.#loadTimer = setInterval(() => this.#sendLoad(), this.#o.refreshMs);
      this.#loadTimer.unref();
    });
  }

  /** A connection-level error from the AS (request id 0): it is about to close this link; say why. */
  #onRefusal(frame: Buffer): void {
    if (requestIdOf(frame) !== 0 || statusOf(frame) === Status.OK) return;
    const body = tryDecodeBody(frame) as { code?: string; message?: string } | undefined;
    this.#log.error(`refused:${body?.code}`, { as: `${this.#o.host}:${this.#o.port}`, code: body?.code, reason: body?.message }, 'the application server refused this function server');
  }

  #sendLoad(): void {
    const conn = this.#conn;
    if (!conn || conn.closed) return;
    conn.send(encodeEventRequest(EventKind.LOAD, 0, this.#o.load(), false));
  }

  #request(kind: number, body: unknown, timeoutMs: number): Promise<boolean> {
    const conn = this.#conn;
    if (!conn || conn.closed) return Promise.resolve(false);
    const id = this.#nextId++;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(id);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      this.#waiters.set(id, { resolve, timer });
      conn.send(encodeEventRequest(kind, id, body, true));
    });
  }

  #onEvent(frame: Buffer): void {
    if (isRequest(frame)) return;
    const w = this.#waiters.get(requestIdOf(frame));
    if (!w) return;
    this.#waiters.delete(requestIdOf(frame));
    clearTimeout(w.timer);
    if (statusOf(frame) !== Status.OK) {
      const body = tryDecodeBody(frame) as { code?: string; message?: string } | undefined;
      this.#log.error(`event:${body?.code}`, { status: statusOf(frame), code: body?.code, reason: body?.message }, 'application server refused the control event');
      w.resolve(false);
      return;
    }
    if (eventKindOf(frame) === EventKind.HELLO) {
      const parsed = helloReplySchema.safeParse(tryDecodeBody(frame));
      if (parsed.success) this.fsId = parsed.data.fsId;
    }
    w.resolve(true);
  }

  #onClose(reason: string, err: Error | undefined): void {
    clearInterval(this.#loadTimer);
    const was = this.#registered;
    this.#registered = false;
    for (const w of this.#waiters.values()) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
    this.#waiters.clear();
    if (this.#stopped) return;
    const delay = backoffDelay(this.#attempt++, { baseMs: this.#o.reconnectBaseMs, capMs: this.#o.reconnectCapMs });
    const log = was ? this.#o.logger.warn.bind(this.#o.logger) : this.#o.logger.debug.bind(this.#o.logger);
    log({ reason, err: err?.message, retryInMs: delay }, 'control link to the application server lost; will register again');
    this.#retryTimer = setTimeout(() => this.#dial(), delay);
    this.#retryTimer.unref();
  }
}
