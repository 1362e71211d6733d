/** Marks a slot whose request timed out here but which the peer has not answered yet. */
const ANSWER_OWED = Symbol('answer owed');

/** What the table needs of a pending request: when it is due, and when to hedge it (optional). */
export interface Due {
  readonly deadlineAt: number;
  hedgeAt?: number;
}

/**
 * Requests pending on one connection, by the request id this side assigned (the AS on a pool
 * connection, a director-mode client on its FS connection). The id is a slot index with a free
 * list, so add, take and lookup are array accesses: no hashing, no allocation per request. A slot
 * whose request timed out is not reused until the peer answers it (or the connection goes), so a
 * late answer can never be taken for a newer request's.
 */
export class PendingTable<P extends Due> {
  #slots: (P | typeof ANSWER_OWED | undefined)[] = [undefined];
  #free: number[] = [];
  #size = 0;

  /** Requests still waiting (not counting timed-out ones whose answer is owed). */
  get size(): number {
    return this.#size;
  }

  /** Stores `p` and returns its id (never 0: id 0 is for connection-level errors). */
  add(p: P): number {
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
  take(id: number): P | undefined {
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
  takeExpired(now: number, hedge?: (p: P) => void): P[] {
    const out: P[] = [];
    const slots = this.#slots;
    for (let id = 1; id < slots.length; id++) {
      const p = slots[id];
      if (p === undefined || p === ANSWER_OWED) continue;
      if (p.deadlineAt > now) {
        if (hedge !== undefined && p.hedgeAt !== undefined && p.hedgeAt <= now) {
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
  takeAll(): P[] {
    const out: P[] = [];
    for (const p of this.#slots) if (p !== undefined && p !== ANSWER_OWED) out.push(p);
    this.#slots = [undefined];
    this.#free = [];
    this.#size = 0;
    return out;
  }
}

