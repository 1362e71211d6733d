import { backoffDelay, type BackoffOptions } from '../../common/backoff.js';
import { EventKind, FrameConnection, encodeEventRequest, tryDecodeBody, eventKindOf, isRequest, type CloseReason, type FrameHandlers } from '../../protocol/index.js';
import { authenticateDialer, dial, type TlsOptions } from '../../security/index.js';
import { UpstreamConnection, type PendingRequest } from './upstream-connection.js';

export interface PoolHooks {
  /**
   * A response frame arrived on one of the pool's connections, at buf[off, off + len): a chunk read
   * from the socket, never reused, so it may be forwarded by reference.
   */
  response(up: UpstreamConnection, buf: Buffer, off: number, len: number): void;
  /** An event frame (DRAIN) arrived on a ready connection. */
  event(pool: Pool, up: UpstreamConnection, frame: Buffer): void;
  /**
   * The FS answered DESCRIBE with `described` (its name, pool type, services). Return a reason to
   * refuse the connection (it is closed and counts as a failed dial, with backoff), or undefined.
   */
  vet(pool: Pool, described: unknown): string | undefined;
  /** A connection is ready: its DESCRIBE answer passed vet(). */
  up(pool: Pool, up: UpstreamConnection, described: unknown): void;
  /** A connection closed; `orphans` were pending on it and must be failed or re-sent now. */
  down(pool: Pool, up: UpstreamConnection, reason: CloseReason, err: Error | undefined, orphans: PendingRequest[]): void;
  /** A connection's socket, full before, has drained. */
  drained(up: UpstreamConnection): void;
  /** A dial failed; `failures` counts consecutive failures. */
  connectFailed(pool: Pool, err: Error, failures: number): void;
}

export interface PoolOptions {
  host: string;
  port: number;
  /** Connections kept to the FS. One per FS per event loop is the fastest (fewer, fuller writes). */
  size: number;
  heartbeatMs: number;
  connectTimeoutMs: number;
  backoff: BackoffOptions;
  maxBodyBytes: number;
  /** Proved to the FS before anything else; the FS proves it back. */
  joinSecret?: Buffer;
  tls?: TlsOptions;
  authTimeoutMs?: number;
}

/**
 * The AS's connections to one FS. Dials in the background (one attempt in flight at a time,
 * capped exponential backoff between failures, never on the request path), rents the least busy
 * ready connection, and stops for good when closed.
 */
export class Pool {
  readonly #o: PoolOptions;
  readonly #hooks: PoolHooks;
  readonly #ready: UpstreamConnection[] = [];
  #dialing = false;
  #failures = 0;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  #describeId = 0;
  /** Opaque owner slot (the FS entry). */
  owner: unknown;

  constructor(opts: PoolOptions, hooks: PoolHooks) {
    this.#o = opts;
    this.#hooks = hooks;
  }

  get host(): string {
    return this.#o.host;
  }

  get port(): number {
    return this.#o.port;
  }

  get readyCount(): number {
    return this.#ready.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get consecutiveFailures(): number {
    return this.#failures;
  }

  /** Requests pending on all of the pool's connections. */
  get pendingCount(): number {
    let n = 0;
    for (const u of this.#ready) n += u.pending.size;
    return n;
  }

  connections(): readonly UpstreamConnection[] {
    return this.#ready;
  }

  /** The ready connection with the fewest pending requests, preferring one whose socket is not backed up. */
  rent(): UpstreamConnection | undefined {
    const r = this.#ready;
    if (r.length === 1) return r[0];
    let best: UpstreamConnection | undefined;
    for (const u of r) {
      if (best === undefined || (best.blocked && !u.blocked) || (best.blocked === u.blocked && u.pending.size < best.pending.size)) best = u;
    }
    return best;
  }

  /**
   * Takes a connection out of use because it misbehaved: closes it now, so what was pending on it
   * is re-sent or failed at once (the down hook) and the pool dials a fresh one.
   */
  markDamaged(up: UpstreamConnection, why: string): void {
    if (this.#ready.includes(up)) up.conn.destroy('error', new Error(`marked damaged: ${why}`));
  }

  /** Asks the FS on `up` for its service table again (it said CHANGED); the answer comes as an event. */
  describe(up: UpstreamConnection): void {
    this.#describeId = (this.#describeId % 0x7fffffff) + 1;
    up.conn.send(encodeEventRequest(EventKind.DESCRIBE, this.#describeId + 1, { maxBodyBytes: this.#o.maxBodyBytes }, true));
  }

  /** Starts dialing until `size` connections are ready. Safe to call often. */
  fill(): void {
    if (this.#closed || this.#dialing || this.#retry !== undefined || this.#ready.length >= this.#o.size) return;
    this.#dial();
  }

  /** Dials now, skipping any backoff wait (an FS said HELLO again). */
  retryNow(): void {
    if (this.#retry !== undefined) {
      clearTimeout(this.#retry);
      this.#retry = undefined;
    }
    this.#failures = 0;
    this.fill();
  }

  /** Closes every connection now but keeps dialing (an operator's dispose): the FS is probed afresh. */
  dispose(): void {
    for (const u of [...this.#ready]) u.conn.close('local');
  }

  /** Connections this pool keeps to its FS. */
  get expected(): number {
    return this.#o.size;
  }

  /** Closes every connection and never dials again. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    for (const u of [...this.#ready]) u.conn.close('local');
  }

  /**
   * A connection counts as ready only once the FS has answered DESCRIBE on it: a frozen process
   * still completes the TCP handshake in the kernel, so "connected" alone proves nothing.
   */
  #dial(): void {
    this.#dialing = true;
    // Plain 'data' reads, not a reused onread buffer: answers are forwarded to clients as views of
    // the chunk they came in (no copy per answer), so a chunk must never be written over.
    const socket = dial({ host: this.#o.host, port: this.#o.port, tls: this.#o.tls }, () => this.#connected(conn, handlers));
    let ready = false;
    const handshake = setTimeout(
      () => conn.destroy('error', new Error(`no DESCRIBE answer within ${this.#o.connectTimeoutMs} ms`)),
      this.#o.connectTimeoutMs,
    );
    handshake.unref();
    const handlers = {
      onFrameAt: (buf: Buffer, off: number, len: number) => this.#hooks.response(up, buf, off, len),
      onEvent: (frame: Buffer) => {
        if (!ready && eventKindOf(frame) === EventKind.DESCRIBE && !isRequest(frame)) {
          clearTimeout(handshake);
          this.#onReady(up, frame);
          ready = true;
          return;
        }
        this.#hooks.event(this, up, frame);
      },
    };
    const conn: FrameConnection = new FrameConnection(socket, {
      heartbeatMs: this.#o.heartbeatMs,
      maxBodyBytes: this.#o.maxBodyBytes,
      // Fed by every client connection: one write per loop turn, not one per client read.
      perTurn: true,
      ...handlers,
      onDrain: () => this.#hooks.drained(up),
      onClose: (reason, err) => {
        clearTimeout(handshake);
        if (!ready) {
          this.#dialing = false;
          this.#onDialFailed(err ?? new Error(`connection closed during the handshake (${reason})`));
          return;
        }
        const i = this.#ready.indexOf(up);
        if (i >= 0) this.#ready.splice(i, 1);
        this.#hooks.drained(up); // release clients held on this connection
        this.#hooks.down(this, up, reason, err, up.takeAllPending());
        if (!this.#closed) this.fill();
      },
    });
    const up = new UpstreamConnection(conn);
    conn.owner = this;
  }

  /**
   * The socket is up (TLS verified, if any): prove the join secret when there is one, then send
   * DESCRIBE. DESCRIBE carries our body cap, so the FS refuses an oversize answer itself (one
   * request fails) instead of sending a frame that would close this shared connection.
   */
  #connected(conn: FrameConnection, handlers: FrameHandlers): void {
    const describe = (): void => conn.send(encodeEventRequest(EventKind.DESCRIBE, 1, { maxBodyBytes: this.#o.maxBodyBytes }, true));
    const secret = this.#o.joinSecret;
    if (!secret) {
      describe();
      return;
    }
    authenticateDialer(conn, { secret, realm: 'join', timeoutMs: this.#o.authTimeoutMs ?? this.#o.connectTimeoutMs }, handlers).then(describe, () => undefined);
  }

  #onReady(up: UpstreamConnection, frame: Buffer): void {
    if (this.#closed) {
      this.#dialing = false;
      up.conn.close('local');
      return;
    }
    const described = tryDecodeBody(frame);
    const refusal = this.#hooks.vet(this, described);
    if (refusal !== undefined) {
      // Not ready yet, so this close is a failed dial: the next one waits its backoff.
      up.conn.destroy('protocol', new Error(refusal));
      return;
    }
    this.#dialing = false;
    this.#failures = 0;
    this.#ready.push(up);
    this.#hooks.up(this, up, described);
    this.fill();
  }

  #onDialFailed(err: Error): void {
    if (this.#closed) return;
    this.#failures++;
    this.#hooks.connectFailed(this, err, this.#failures);
    const delay = backoffDelay(this.#failures - 1, this.#o.backoff);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.fill();
    }, delay);
    this.#retry.unref();
  }
}
