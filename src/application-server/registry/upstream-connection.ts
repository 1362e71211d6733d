import type { FrameConnection } from '../../protocol/index.js';
import { PendingTable } from '../../common/pending-table.js';

/** The AS's side of a client connection, as far as an upstream needs to know it. */
export interface ReplyTarget {
  readonly closed: boolean;
  readonly inflight: number;
  /** One request of this client ended (answered or failed): its count and its `bytes` are released. */
  done(bytes: number): void;
  reply(frame: Buffer): void;
  /**
   * Sends the frame at buf[off, off + len) to the client. buf is a chunk read from an FS, never
   * reused: it may be queued by reference until written.
   */
  replyFrom(buf: Buffer, off: number, len: number): void;
  /** Stops reading the client's requests until resume(cause) with the same cause. */
  pause(cause: object): void;
  resume(cause: object): void;
}

/** The copies of one hedged request: the first answer wins, the others are dropped. */
export interface HedgeGroup {
  /** The client has its answer (or its error). */
  done: boolean;
  /** Copies still pending on some connection. */
  live: number;
}

/** One forwarded request waiting for its answer. Kept small: one is made per request. */
export class PendingRequest {
  /** When to send a second copy elsewhere if no answer came (idempotent requests); Infinity for none. */
  hedgeAt = Number.POSITIVE_INFINITY;
  /** Set once the request has been hedged: shared by its copies. */
  group: HedgeGroup | null = null;
  /** The second copy of a hedged request: sent with what was left of the budget, so its timeout blames no FS. */
  hedgeCopy = false;
  /** Where the frame starts in `frame` (a read chunk holding it among others); its length is `bytes`. */
  frameOffset = 0;
  /** The routing key its header extension carried (version-2 requests), kept for re-sends and hedges. */
  routingKey: Buffer | undefined = undefined;

  constructor(
    readonly target: ReplyTarget,
    readonly clientId: number,
    readonly serviceKey: number,
    readonly poolType: number,
    readonly deadlineAt: number,
    /** When the AS took the request (epoch ms). */
    readonly startedAt: number,
    /** The request frame's length: what it holds of its client's in-flight byte budget. */
    readonly bytes: number,
    /** The chunk holding the request frame, kept only while it may be sent again (idempotent services). */
    public frame: Buffer | null,
    public attempts: number,
  ) {}
}

/** A pool connection to one FS and the requests pending on it. */
export class UpstreamConnection {
  readonly conn: FrameConnection;
  readonly pending = new PendingTable<PendingRequest>();
  /** Client sessions whose reading is paused until this connection's socket drains. */
  readonly waiting = new Set<ReplyTarget>();

  constructor(conn: FrameConnection) {
    this.conn = conn;
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  get blocked(): boolean {
    return this.conn.blocked;
  }

  /** Removes and returns every pending request, for the caller to fail or send elsewhere. */
  takeAllPending(): PendingRequest[] {
    return this.pending.takeAll();
  }
}
