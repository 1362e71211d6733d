import type { SwitchboardError } from '../protocol/index.js';

const FREE = 0;
/** Sent on the connection of generation gens[id]; its answer is awaited. */
const LIVE = 1;
/** The call was failed locally (deadline and grace passed); its slot waits for the late answer. */
const OWED = 2;
/** Waiting for a connection: never sent, or to be sent again (it did not run, or may safely run twice). */
const QUEUED = 3;

/** What a call needs to be sent (again): kept until it is settled. */
export interface CallSpec {
  serviceKey: number;
  poolType: number;
  body: Buffer;
  idempotent: boolean;
  /** The extension block (routing key, trace context), sent as a version-2 request; absent for version 1. */
  extension: Buffer | undefined;
}

/**
 * The client's calls, by request id. The id is a slot index and the slots are parallel arrays: a
 * call costs no object and no hashing here. A call keeps its slot (and id) while it moves from one
 * connection to another; answers are matched with the connection generation it was sent on, so a
 * late answer on an old connection never settles a call that moved on. A slot whose call was given
 * up locally is not reused until its answer arrives (or its connection goes).
 */
export class CallTable {
  #resolves: ((v: unknown) => void)[] = [];
  #rejects: ((e: SwitchboardError) => void)[] = [];
  #specs: (CallSpec | undefined)[] = [];
  #deadlines = new Float64Array(64);
  #gens = new Uint32Array(64);
  #states = new Uint8Array(64);
  #free: number[] = [];
  #next = 1;
  #live = 0;
  #queued = 0;

  /** Calls not yet settled (sent or queued). */
  get size(): number {
    return this.#live + this.#queued;
  }

  /** Calls waiting for a connection. */
  get queued(): number {
    return this.#queued;
  }

  /** Adds a call; `gen` is the connection it is sent on now, or undefined to queue it. */
  add(resolve: (v: unknown) => void, reject: (e: SwitchboardError) => void, deadlineAt: number, spec?: CallSpec, gen?: number): number {
    let id = this.#free.pop();
    if (id === undefined) {
      id = this.#next++;
      if (id >= this.#states.length) this.#grow();
    }
    this.#resolves[id] = resolve;
    this.#rejects[id] = reject;
    this.#specs[id] = spec;
    this.#deadlines[id] = deadlineAt;
    if (gen === undefined) {
      this.#states[id] = QUEUED;
      this.#queued++;
    } else {
      this.#states[id] = LIVE;
      this.#gens[id] = gen;
      this.#live++;
    }
    return id;
  }

  spec(id: number): CallSpec | undefined {
    return this.#specs[id];
  }

  deadline(id: number): number {
    return this.#deadlines[id];
  }

  /** Whether call `id` awaits an answer on connection `gen`. */
  isLiveOn(id: number, gen: number): boolean {
    return id > 0 && id < this.#next && this.#states[id] === LIVE && this.#gens[id] === gen;
  }

  /** A queued call was sent on connection `gen`. */
  markSent(id: number, gen: number): void {
    if (this.#states[id] !== QUEUED) return;
    this.#states[id] = LIVE;
    this.#gens[id] = gen;
    this.#queued--;
    this.#live++;
  }

  /** A sent call must go again (it did not run, or may run twice): back to the queue. */
  requeue(id: number): void {
    if (this.#states[id] !== LIVE) return;
    this.#states[id] = QUEUED;
    this.#live--;
    this.#queued++;
  }

  /** Ids of the queued calls, oldest slot first. */
  queuedIds(): number[] {
    const out: number[] = [];
    if (this.#queued === 0) return out;
    for (let id = 1; id < this.#next; id++) if (this.#states[id] === QUEUED) out.push(id);
    return out;
  }

  /** Ids of the calls live on connection `gen`. */
  liveOn(gen: number): number[] {
    const out: number[] = [];
    for (let id = 1; id < this.#next; id++) if (this.#states[id] === LIVE && this.#gens[id] === gen) out.push(id);
    return out;
  }

  /** Frees the slots of calls given up on connection `gen`: their answers will never come now. */
  forgetOwedOn(gen: number): void {
    for (let id = 1; id < this.#next; id++) {
      if (this.#states[id] === OWED && this.#gens[id] === gen) {
        this.#states[id] = FREE;
        this.#free.push(id);
      }
    }
  }

  /** Settles call `id` with an answer; false if no call waits on that id (late or unknown). */
  resolve(id: number, value: unknown): boolean {
    const fn = this.#take(id) ? this.#resolves[id] : undefined;
    if (fn === undefined) return false;
    this.#clear(id);
    fn(value);
    return true;
  }

  reject(id: number, err: SwitchboardError): boolean {
    const fn = this.#take(id) ? this.#rejects[id] : undefined;
    if (fn === undefined) return false;
    this.#clear(id);
    fn(err);
    return true;
  }

  /**
   * Fails every call whose deadline is at or before `now` with `make(queued)`: a sent call's slot
   * waits for the answer; a queued one (never answered by anyone) is freed.
   */
  expire(now: number, make: (queued: boolean) => SwitchboardError, queuedGraceMs = 0): void {
    for (let id = 1; id < this.#next; id++) {
      const s = this.#states[id];
      // A queued call was never sent: no AS owes it an answer, so it gets no grace past its deadline.
      if ((s !== LIVE && s !== QUEUED) || this.#deadlines[id] - (s === QUEUED ? queuedGraceMs : 0) > now) continue;
      const fn = this.#rejects[id];
      this.#clear(id);
      if (s === LIVE) {
        this.#states[id] = OWED;
        this.#live--;
      } else {
        this.#states[id] = FREE;
        this.#free.push(id);
        this.#queued--;
      }
      fn(make(s === QUEUED));
    }
  }

  /** Fails every call with `err` and forgets every slot. */
  rejectAll(err: SwitchboardError): void {
    const rejects = this.#rejects;
    const states = this.#states;
    const n = this.#next;
    this.#resolves = [];
    this.#rejects = [];
    this.#specs = [];
    this.#states = new Uint8Array(64);
    this.#deadlines = new Float64Array(64);
    this.#gens = new Uint32Array(64);
    this.#free = [];
    this.#next = 1;
    this.#live = 0;
    this.#queued = 0;
    for (let id = 1; id < n; id++) if (states[id] === LIVE || states[id] === QUEUED) rejects[id](err);
  }

  /** Frees slot `id`; true if a live or queued call waited there (an owed slot is freed by its late answer). */
  #take(id: number): boolean {
    if (id <= 0 || id >= this.#next) return false;
    const s = this.#states[id];
    if (s === FREE) return false;
    this.#states[id] = FREE;
    this.#free.push(id);
    if (s === OWED) return false;
    if (s === QUEUED) this.#queued--;
    else this.#live--;
    return true;
  }

  #clear(id: number): void {
    this.#resolves[id] = noop;
    this.#rejects[id] = noop;
    this.#specs[id] = undefined;
  }

  #grow(): void {
    const size = this.#states.length * 2;
    const deadlines = new Float64Array(size);
    deadlines.set(this.#deadlines);
    const gens = new Uint32Array(size);
    gens.set(this.#gens);
    const states = new Uint8Array(size);
    states.set(this.#states);
    this.#deadlines = deadlines;
    this.#gens = gens;
    this.#states = states;
  }
}

function noop(): void {}
