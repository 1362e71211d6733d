import type { FrameConnection } from '../protocol/index.js';

/** The AS's side of a client connection, as far as an upstream needs to know it. */
export interface ReplyTarget {
  readonly closed: boolean;
  inflight: number;
  reply(frame: Buffer): void;
}

/** One forwarded request waiting for its answer. Kept small: one is made per request. */
export class PendingRequest {
  upstreamId = 0;
  upstream: UpstreamConnection | null = null;
  fsId = '';
  constructor(
    readonly target: ReplyTarget,
    readonly clientId: number,
    readonly serviceKey: number,
    readonly poolType: number,
    readonly deadlineAt: number,
    /** The request frame, kept only while it may be sent again (idempotent services). */
    public frame: Buffer | null,
    public attempts: number,
  ) {}
}

/** A pool connection to one FS and the requests pending on it, by the AS-assigned request id. */
export class UpstreamConnection {
  readonly conn: FrameConnection;
  readonly pending = new Map<number, PendingRequest>();
  /** Client sessions whose reading is paused until this connection's socket drains. */
  readonly waiting = new Set<{ resume(cause: object): void }>();
  #nextId = 0;

  constructor(conn: FrameConnection) {
    this.conn = conn;
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  get blocked(): boolean {
    return this.conn.blocked;
  }

  /** A fresh request id on this connection; ids wrap at 2^32 and skip any still pending. */
  nextId(): number {
    let id = (this.#nextId + 1) >>> 0;
    while (this.pending.has(id)) id = (id + 1) >>> 0;
    this.#nextId = id;
    return id;
  }

  /** Removes and returns every pending request, for the caller to fail or send elsewhere. */
  takeAllPending(): PendingRequest[] {
    const all = [...this.pending.values()];
    this.pending.clear();
    return all;
  }
}
