import type { SwitchboardError } from '../protocol/index.js';

const FREE = 0;
const LIVE = 1;
/** The call was failed locally (deadline and grace passed); its slot waits for the late answer. */
const OWED = 2;

/**
 * The client's calls in flight, by request id. The id is a slot index, and the slots are parallel
 * arrays: a call costs no object and no hashing here. A slot whose call was given up locally is not
 * reused until its answer arrives (or the connection goes), so a late answer never meets a new call.
 */
export class CallTable {
  #resolves: ((v: unknown) => void)[] = [];
  #rejects: ((e: SwitchboardError) => void)[] = [];
  #deadlines = new Float64Array(64);
  #states = new Uint8Array(64);
  #free: number[] = [];
  #next = 1;
  #live = 0;

  get size(): number {
    return this.#live;
  }

  add(resolve: (v: unknown) => void, reject: (e: SwitchboardError) => void, deadlineAt: number): number {
    let id = this.#free.pop();
    if (id === undefined) {
      id = this.#next++;
      if (id >= this.#states.length) this.#grow();
    }
    this.#resolves[id] = resolve;
    this.#rejects[id] = reject;
    this.#deadlines[id] = deadlineAt;
    this.#states[id] = LIVE;
    this.#live++;
    return id;
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

  /** Fails every call whose deadline is at or before `now` with `make()`; their slots wait for the answer. */
  expire(now: number, make: () => SwitchboardError): void {
    for (let id = 1; id < this.#next; id++) {
      if (this.#states[id] !== LIVE || this.#deadlines[id] > now) continue;
      const fn = this.#rejects[id];
      this.#clear(id);
      this.#states[id] = OWED;
      this.#live--;
      fn(make());
    }
  }

  /** Fails every call with `err` and forgets every slot. */
  rejectAll(err: SwitchboardError): void {
    const rejects = this.#rejects;
    const states = this.#states;
    const n = this.#next;
    this.#resolves = [];
    this.#rejects = [];
    this.#states = new Uint8Array(64);
    this.#deadlines = new Float64Array(64);
    this.#free = [];
    this.#next = 1;
    this.#live = 0;
    for (let id = 1; id < n; id++) if (states[id] === LIVE) rejects[id](err);
  }

  /** Frees slot `id`; true if a live call waited there (an owed slot is freed by its late answer). */
  #take(id: number): boolean {
    if (id <= 0 || id >= this.#next) return false;
    const s = this.#states[id];
    if (s === FREE) return false;
    this.#states[id] = FREE;
    this.#free.push(id);
    if (s === OWED) return false;
    this.#live--;
    return true;
  }

  #clear(id: number): void {
    this.#resolves[id] = noop;
    this.#rejects[id] = noop;
  }

  #grow(): void {
    const deadlines = new Float64Array(this.#states.length * 2);
    deadlines.set(this.#deadlines);
    const states = new Uint8Array(this.#states.length * 2);
    states.set(this.#states);
    this.#deadlines = deadlines;
    this.#states = states;
  }
}

function noop(): void {}
