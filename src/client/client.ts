import { CallTable } from './call-table.js';
import { authenticateDialer, dial, toSecret, type TlsOptions } from '../security/index.js';
import {
  AuthError,
  BadRequestError,
  ChannelClosedError,
  ConnectError,
  DEFAULT_HEARTBEAT_MS,
  DeadlineExceededError,
  DEFAULT_MAX_BODY_BYTES,
  FrameConnection,
  FrameTooLargeError,
  HEADER_SIZE,
  MAX_UINT32,
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
  /** The AS's body cap (default 8 MiB): a call whose body is larger fails alone, before it is sent. */
  maxBodyBytes?: number;
  /** The AS's client secret, when its client port asks for proof. */
  secret?: string | Buffer;
  /** Dial the AS over TLS: `ca` to trust it, `cert` and `key` when it asks for client certificates. */
  tls?: TlsOptions;
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
  readonly #maxBodyBytes: number;
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

  private constructor(conn: FrameConnection, defaultTimeoutMs: number, maxBodyBytes: number) {
    this.#conn = conn;
    this.#defaultTimeoutMs = defaultTimeoutMs;
    this.#maxBodyBytes = maxBodyBytes;
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#sweeper.unref();
  }

  static connect(opts: ClientOptions): Promise<Client> {
    const host = opts.host ?? '127.0.0.1';
    const secret = toSecret(opts.secret, 'the client secret');
    const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      let client: Client | undefined;
      const handlers = { onFrameAt: (buf: Buffer, off: number, len: number) => client?.onFrameAt(buf, off, len) };
      const ready = (): void => {
        clearTimeout(timer);
        client = new Client(conn, opts.defaultTimeoutMs ?? 30_000, opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
        resolve(client);
      };
      const socket = dial({ host, port: opts.port, tls: opts.tls }, () => {
        if (!secret) return ready();
        // Connected: from here the proof's own timer speaks, so an AS without a secret is reported as such.
        clearTimeout(timer);
        authenticateDialer(conn, { secret, realm: 'client', timeoutMs: connectTimeoutMs }, handlers).then(ready, reject);
      });
      const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), connectTimeoutMs);
      const conn = new FrameConnection(socket, {
        heartbeatMs: opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
        maxBodyBytes: opts.maxBodyBytes,
        // Many calls made in one tick leave in pieces, so the AS starts on the first while we encode the rest.
        earlyFlushBytes: 8192,
        ...handlers,
        onClose: (reason, err) => {
          clearTimeout(timer);
          if (client) client.onClose(reason, err);
          // A refused proof is its own answer: "is it running?" would send the user the wrong way.
          else reject(err instanceof AuthError ? err : new ConnectError(`cannot connect to the application server at ${host}:${opts.port}: ${err?.message ?? reason}; is it running?`, { cause: err }));
        },
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
    // The budget field is 32 bits: a longer timeout is sent as the longest budget there is.
    const timeoutMs = Math.min(opts?.timeoutMs ?? this.#defaultTimeoutMs, MAX_UINT32);
    let encoded: Buffer;
    try {
      encoded = encodeBody(body);
    } catch (err) {
      return Promise.reject(new BadRequestError(`the call's body cannot be encoded as msgpack: ${(err as Error).message}`));
    }
    // An oversize body would make the AS close the connection under every other call on it: fail this one alone.
    if (encoded.length > this.#maxBodyBytes) return Promise.reject(new FrameTooLargeError(encoded.length, this.#maxBodyBytes));
    const promise = new Promise<T>(this.#executor as (resolve: (v: T) => void, reject: (e: unknown) => void) => void);
    const id = this.#calls.add(this.#lastResolve, this.#lastReject, this.#now + timeoutMs + LOCAL_GRACE_MS + SWEEP_MS);
    this.#conn.sendFrame(REQUEST_FLAGS, 0, id, serviceKey, opts?.poolType ?? 0, timeoutMs, encoded);
    return promise;
  }

  /** Sends a one-way request: no answer, no error if it fails. */
  send(serviceKey: number, body?: unknown, opts: CallOptions = {}): void {
    const frame = encodeRequest(0, serviceKey, body, { poolType: opts.poolType ?? 0, budgetMs: Math.min(opts.timeoutMs ?? 0, MAX_UINT32), twoWay: false });
    // Thrown, not sent: an oversize frame would make the AS close the connection under every call on it.
    if (frame.length - HEADER_SIZE > this.#maxBodyBytes) throw new FrameTooLargeError(frame.length - HEADER_SIZE, this.#maxBodyBytes);
    // One-way requests need no slot: id 0 is never answered.
    this.#conn.send(frame);
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
