import type { FrameConnection } from '../../protocol/index.js';

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

/** Marks a slot whose request timed out here but which the FS has not answered yet. */
const ANSWER_OWED = Symbol('answer owed');

/**
 * Requests pending on one connection, by the AS-assigned request id. The id is a slot index with
 * a free list, so add, take and lookup are array accesses: no hashing, no allocation per request.
 * A slot whose request timed out is not reused until the FS answers it (or the connection goes),
 * so a late answer can never be taken for a newer request's.
 */
export class PendingTable {
  #slots: (PendingRequest | typeof ANSWER_OWED | undefined)[] = [undefined];
  #free: number[] = [];
  #size = 0;

  /** Requests still waiting (not counting timed-out ones whose answer is owed). */
  get size(): number {
    return this.#size;
  }

  /** Stores `p` and returns its id (never 0: id 0 is for connection-level errors). */
  add(p: PendingRequest): number {
    let id = this.#free.pop();
    if (id === undefined) {
      id = this.#slots.length;
      this.#slots.push(p);
    } else {
      this.#slots[id] = p;
    }
    this.#size++;
    return id;
  }

  /** Removes and returns the request with this id; an owed late answer just frees its slot. */
  take(id: number): PendingRequest | undefined {
    const p = this.#slots[id];
    if (p === undefined || id === 0) return undefined;
    this.#slots[id] = undefined;
    this.#free.push(id);
    if (p === ANSWER_OWED) return undefined;
    this.#size--;
    return p;
  }

  /**
   * Removes and returns those whose deadline is at or before `now` (their slots wait for the late
   * answer), and hands `hedge` each one still waiting whose hedge time has come.
   */
  takeExpired(now: number, hedge?: (p: PendingRequest) => void): PendingRequest[] {
    const out: PendingRequest[] = [];
    const slots = this.#slots;
    for (let id = 1; id < slots.length; id++) {
      const p = slots[id];
      if (p === undefined || p === ANSWER_OWED) continue;
      if (p.deadlineAt > now) {
        if (p.hedgeAt <= now && hedge !== undefined) {
          p.hedgeAt = Number.POSITIVE_INFINITY;
          hedge(p);
        }
        continue;
      }
      slots[id] = ANSWER_OWED;
      this.#size--;
      out.push(p);
    }
    return out;
  }

  /** Removes and returns every pending request. */
  takeAll(): PendingRequest[] {
    const out: PendingRequest[] = [];
    for (const p of this.#slots) if (p !== undefined && p !== ANSWER_OWED) out.push(p);
    this.#slots = [undefined];
    this.#free = [];
    this.#size = 0;
    return out;
  }
}

/** A pool connection to one FS and the requests pending on it. */
export class UpstreamConnection {
  readonly conn: FrameConnection;
  readonly pending = new PendingTable();
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
