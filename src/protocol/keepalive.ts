import { nodeTimers, type Timers } from './timers.js';

export interface KeepaliveOptions {
  /** Heartbeat period in ms; 0 turns the rules off. */
  periodMs: number;
  /** Periods with nothing read (or nothing of ours read) after which the peer is gone. Dubbo's rule: 3. */
  deadAfterPeriods: number;
  /** Sends a ping now. */
  ping: () => void;
  /**
   * Bytes the socket has handed to the kernel so far (monotonic). While blocked, a period in which
   * this moved is progress: the peer is reading, only slower than we write. Without it, any
   * blocked period counts as stalled.
   */
  flushed?: () => number;
  /** The peer broke a rule: `reason` says which. Called at most once. */
  expire: (reason: 'heartbeat' | 'write-stall', message: string) => void;
  timers?: Timers;
}

/**
 * The heartbeat rules of one connection, on a timer of one period:
 * - idle: nothing read or nothing written during a period sends a ping;
 * - heartbeat: nothing read for `deadAfterPeriods` periods in a row means the peer is dead;
 * - write-stall: our socket stayed full and nothing of ours left it (the peer read nothing) as
 *   long means the same; a full socket that drains slowly is a slow reader, not a stalled one.
 * Time this side spends not reading on purpose (paused) is ours, not the peer's silence.
 */
export class KeepaliveManager {
  readonly #o: KeepaliveOptions;
  readonly #timers: Timers;
  #handle: unknown;
  #read = false;
  #wrote = false;
  #paused = false;
  #blocked = false;
  #silentPeriods = 0;
  #blockedPeriods = 0;
  #lastFlushed = 0;
  #stopped = false;

  constructor(opts: KeepaliveOptions) {
    this.#o = opts;
    this.#timers = opts.timers ?? nodeTimers;
    if (opts.periodMs > 0) this.#handle = this.#timers.setInterval(() => this.tick(), opts.periodMs);
  }

  /** Bytes came from the peer. */
  readSeen(): void {
    this.#read = true;
  }

  /** Bytes went to the socket. */
  wroteSeen(): void {
    this.#wrote = true;
  }

  set paused(v: boolean) {
    this.#paused = v;
  }

  set blocked(v: boolean) {
    this.#blocked = v;
  }

  /** Periods in a row with nothing read (for tests and diagnostics). */
  get silentPeriods(): number {
    return this.#silentPeriods;
  }

  /** One period passed. Public so that tests can step it without a clock. */
  tick(): void {
    if (this.#stopped) return;
    this.#silentPeriods = this.#read || this.#paused ? 0 : this.#silentPeriods + 1;
    const dead = this.#o.deadAfterPeriods;
    if (this.#silentPeriods >= dead) {
      this.stop();
      this.#o.expire('heartbeat', `no bytes read for ${this.#silentPeriods} heartbeat periods of ${this.#o.periodMs} ms`);
      return;
    }
    const flushed = this.#o.flushed?.() ?? 0;
    const moved = flushed > this.#lastFlushed;
    this.#lastFlushed = flushed;
    this.#blockedPeriods = this.#blocked && !moved ? this.#blockedPeriods + 1 : 0;
    if (this.#blockedPeriods >= dead) {
      this.stop();
      this.#o.expire('write-stall', `the peer has read nothing we wrote for ${this.#blockedPeriods} heartbeat periods of ${this.#o.periodMs} ms`);
      return;
    }
    if (!this.#read || !this.#wrote) this.#o.ping();
    this.#read = false;
    this.#wrote = false;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#handle !== undefined) this.#timers.clearInterval(this.#handle);
    this.#handle = undefined;
  }
}
