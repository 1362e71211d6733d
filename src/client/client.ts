import { connect as netConnect } from 'node:net';
import { CallTable } from './call-table.js';
import {
  ChannelClosedError,
  ConnectError,
  DEFAULT_HEARTBEAT_MS,
  DeadlineExceededError,
  FrameConnection,
  Status,
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  Serialization,
  OFFSET,
  decodeBodyAt,
  encodeBody,
  encodeRequest,
  errorFromStatus,
  tryDecodeBody,
  type SwitchboardError,
} from '../protocol/index.js';

export interface ClientOptions {
  host?: string;
  port: number;
  /** Deadline for calls that name none. */
  defaultTimeoutMs?: number;
  heartbeatMs?: number;
  connectTimeoutMs?: number;
  maxBodyBytes?: number;
}

export interface CallOptions {
  /** 0 (the default) means any pool. */
  poolType?: number;
  /** Sent as the request's deadline budget; the call fails with TIMEOUT once it passes. */
  timeoutMs?: number;
}

const REQUEST_FLAGS = FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK;
const SWEEP_MS = 50;

/** Grace on top of the deadline: the AS answers TIMEOUT itself, this only guards against a silent AS. */
const LOCAL_GRACE_MS = 1000;

/**
 * A pipelined client: many calls in flight on one connection, each answered by request id, each
 * failure an error carrying the response status.
 */
export class Client {
  readonly #conn: FrameConnection;
  readonly #calls = new CallTable();
  readonly #defaultTimeoutMs: number;
  readonly #sweeper: NodeJS.Timeout;
  #closeError: SwitchboardError | undefined;
  /** Coarse clock (the sweeper's), enough for a deadline that has a second of grace. */
  #now = Date.now();
  // One executor for every call, so a call allocates no closure of its own.
  #lastResolve: (v: unknown) => void = () => undefined;
  #lastReject: (e: SwitchboardError) => void = () => undefined;
  readonly #executor = (resolve: (v: unknown) => void, reject: (e: SwitchboardError) => void): void => {
    this.#lastResolve = resolve;
    this.#lastReject = reject;
  };

  private constructor(conn: FrameConnection, defaultTimeoutMs: number) {
    this.#conn = conn;
    this.#defaultTimeoutMs = defaultTimeoutMs;
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#sweeper.unref();
  }

  static connect(opts: ClientOptions): Promise<Client> {
    const host = opts.host ?? '127.0.0.1';
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host, port: opts.port });
      let client: Client | undefined;
      const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), opts.connectTimeoutMs ?? 5000);
      const conn = new FrameConnection(socket, {
        heartbeatMs: opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
        maxBodyBytes: opts.maxBodyBytes,
        // Many calls made in one tick leave in pieces, so the AS starts on the first while we encode the rest.
        earlyFlushBytes: 8192,
        onFrameAt: (buf, off, len) => client?.onFrameAt(buf, off, len),
        onClose: (reason, err) => {
          clearTimeout(timer);
          if (client) client.onClose(reason, err);
          else reject(new ConnectError(`cannot connect to the application server at ${host}:${opts.port}: ${err?.message ?? reason}; is it running?`, { cause: err }));
        },
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        client = new Client(conn, opts.defaultTimeoutMs ?? 30_000);
        resolve(client);
      });
    });
  }

  get inflight(): number {
    return this.#calls.size;
  }

  get closed(): boolean {
    return this.#conn.closed;
  }

  /** Calls one service and resolves with its decoded answer, or rejects with the status's error class. */
  call<T = unknown>(serviceKey: number, body?: unknown, opts?: CallOptions): Promise<T> {
    if (this.#conn.closed) return Promise.reject(this.#closeError ?? new ChannelClosedError('the client is closed'));
    const timeoutMs = opts?.timeoutMs ?? this.#defaultTimeoutMs;
    const encoded = encodeBody(body);
    const promise = new Promise<T>(this.#executor as (resolve: (v: T) => void, reject: (e: unknown) => void) => void);
    const id = this.#calls.add(this.#lastResolve, this.#lastReject, this.#now + timeoutMs + LOCAL_GRACE_MS + SWEEP_MS);
    this.#conn.sendFrame(REQUEST_FLAGS, 0, id, serviceKey, opts?.poolType ?? 0, timeoutMs, encoded);
    return promise;
  }

  /** Sends a one-way request: no answer, no error if it fails. */
  send(serviceKey: number, body?: unknown, opts: CallOptions = {}): void {
    // One-way requests need no slot: id 0 is never answered.
    this.#conn.send(encodeRequest(0, serviceKey, body, { poolType: opts.poolType ?? 0, budgetMs: opts.timeoutMs ?? 0, twoWay: false }));
  }

  close(): Promise<void> {
    clearInterval(this.#sweeper);
    if (this.#conn.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#conn.socket.once('close', () => resolve());
      this.#conn.close('local');
    });
  }

  private onFrameAt(buf: Buffer, off: number, len: number): void {
    const id = buf.readUInt32BE(off + OFFSET.requestId);
    const status = buf[off + OFFSET.status];
    if (id === 0 && status !== Status.OK) {
      // A connection-level refusal (too many connections, bad frame): it applies to every call.
      this.#closeError = errorFromStatus(status, tryDecodeBody(buf.subarray(off, off + len)) as { code?: string; message?: string });
      return;
    }
    let body: unknown;
    try {
      body = decodeBodyAt(buf, off, len);
    } catch (err) {
      this.#calls.reject(id, err as SwitchboardError);
      return;
    }
    if (status === Status.OK) this.#calls.resolve(id, body);
    else this.#calls.reject(id, errorFromStatus(status, body as { code?: string; message?: string }));
  }

  private onClose(reason: string, err: Error | undefined): void {
    clearInterval(this.#sweeper);
    const e = this.#closeError ?? new ChannelClosedError(`the connection to the application server closed (${reason}${err ? `: ${err.message}` : ''})`);
    this.#closeError = e;
    this.#calls.rejectAll(e);
  }

  #sweep(): void {
    this.#now = Date.now();
    if (this.#calls.size === 0) return;
    this.#calls.expire(this.#now, () => new DeadlineExceededError('no answer from the application server within the deadline and its grace; is it overloaded?'));
  }
}
