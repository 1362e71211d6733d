import { nodeTimers, type Timers } from './timers.js';

/**
 * The stalled-frame rule: a frame whose first byte has arrived must be whole within `timeoutMs`
 * of that byte. Bytes trickled one at a time do not extend it. One timer, armed only while a
 * frame is partial, so it fires at exactly 1.0 × timeoutMs after the frame began.
 */
export class FrameDeadline {
  readonly #timeoutMs: number;
  readonly #timers: Timers;
  readonly #expire: (message: string) => void;
  /** When the partial frame began (ms); undefined while no frame is partial. */
  #since: number | undefined;
  #handle: unknown;
  #paused = false;
  /** When reading was paused (ms). */
  #pausedAt = 0;
  #stopped = false;

  constructor(timeoutMs: number, expire: (message: string) => void, timers: Timers = nodeTimers) {
    this.#timeoutMs = timeoutMs;
    this.#expire = expire;
    this.#timers = timers;
  }

  /**
   * After each read: `partial` says whether a frame is left unfinished, `newFrame` whether that
   * unfinished frame began in this read (frames were completed before it, or none was partial).
   */
  afterRead(partial: boolean, newFrame: boolean): void {
    if (this.#timeoutMs <= 0 || this.#stopped) return;
    if (!partial) {
      this.#since = undefined;
      this.#disarm();
      return;
    }
    if (this.#since === undefined || newFrame) {
      this.#since = this.#timers.now();
      this.#arm(this.#timeoutMs);
    }
  }

  /**
   * While this side does not read on purpose, a frame cannot finish: time paused is not counted
   * (the frame's clock moves forward by the pause when reading resumes).
   */
  set paused(v: boolean) {
    if (v) {
      if (!this.#paused) this.#pausedAt = this.#timers.now();
      this.#paused = true;
      return;
    }
    if (!this.#paused) return;
    this.#paused = false;
    const pausedFor = this.#timers.now() - this.#pausedAt;
    if (this.#since === undefined || this.#stopped) return;
    this.#since += pausedFor;
    this.#check();
  }

  stop(): void {
    this.#stopped = true;
    this.#disarm();
  }

  #arm(ms: number): void {
    this.#disarm();
    this.#handle = this.#timers.setTimeout(() => {
      this.#handle = undefined;
      this.#check();
    }, ms);
  }

  #disarm(): void {
    if (this.#handle !== undefined) this.#timers.clearTimeout(this.#handle);
    this.#handle = undefined;
  }

  #check(): void {
    if (this.#stopped || this.#since === undefined || this.#paused) return; // resuming checks again
    const left = this.#since + this.#timeoutMs - this.#timers.now();
    if (left > 0) {
      this.#arm(left);
      return;
    }
    this.stop();
    this.#expire(`a frame was begun and not finished within ${this.#timeoutMs} ms`);
  }
}
