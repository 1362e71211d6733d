import { describe, expect, it } from 'vitest';
import { FrameDeadline } from '../../src/protocol/frame-deadline.js';
import type { Timers } from '../../src/protocol/timers.js';

/** A clock that moves only when told; timeouts fire, in order, when the clock reaches them. */
class FakeClock implements Timers {
  t: number;
  readonly pending = new Map<number, { fn: () => void; at: number }>();
  armed: number[] = [];
  #next = 1;

  constructor(start = 1_000_000) {
    this.t = start;
  }

  now = (): number => this.t;
  setInterval = (): unknown => {
    throw new Error('FrameDeadline sets no intervals');
  };
  clearInterval = (): void => undefined;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const h = this.#next++;
    this.pending.set(h, { fn, at: this.t + ms });
    this.armed.push(ms);
    return h;
  };
  clearTimeout = (h: unknown): void => {
    this.pending.delete(h as number);
  };

  /** Moves the clock to `to`, firing each timeout that falls due on the way (at its own time). */
  advanceTo(to: number): void {
    for (;;) {
      let due: [number, { fn: () => void; at: number }] | undefined;
      for (const e of this.pending) if (e[1].at <= to && (due === undefined || e[1].at < due[1].at)) due = e;
      if (due === undefined) break;
      this.pending.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = to;
  }

  /** Fires every pending timeout `early` ms before it is due, as a coarse real clock may. */
  fireEarly(early: number): void {
    const due = [...this.pending];
    this.pending.clear();
    for (const [, e] of due) {
      this.t = e.at - early;
      e.fn();
    }
  }
}

const TIMEOUT = 1000;

function make(timeout = TIMEOUT, start?: number) {
  const clock = new FakeClock(start);
  const expired: { at: number; message: string }[] = [];
  const d = new FrameDeadline(timeout, (message) => expired.push({ at: clock.t, message }), clock);
  return { d, clock, expired, t0: clock.t };
}

describe('FrameDeadline: the 1.0 x timeout rule', () => {
  it('expires exactly timeoutMs after the first byte of a partial frame, not before', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    clock.advanceTo(t0 + TIMEOUT - 1);
    expect(expired).toEqual([]);
    clock.advanceTo(t0 + TIMEOUT);
    expect(expired).toEqual([{ at: t0 + TIMEOUT, message: `a frame was begun and not finished within ${TIMEOUT} ms` }]);
  });

  it('trickled bytes do not extend it', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    for (let i = 1; i < TIMEOUT; i += 100) {
      clock.advanceTo(t0 + i);
      d.afterRead(true, false);
    }
    expect(expired).toEqual([]);
    clock.advanceTo(t0 + TIMEOUT);
    expect(expired.map((e) => e.at)).toEqual([t0 + TIMEOUT]);
  });

  it('a frame already partial counts from its first byte even if the first read said newFrame false', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, false);
    clock.advanceTo(t0 + 500);
    d.afterRead(true, false);
    clock.advanceTo(t0 + TIMEOUT);
    expect(expired.map((e) => e.at)).toEqual([t0 + TIMEOUT]);
  });

  it('a completed frame followed by a new partial one restarts the clock', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    clock.advanceTo(t0 + 900);
    d.afterRead(true, true); // the old frame finished in this read, a new one began
    clock.advanceTo(t0 + 900 + TIMEOUT - 1);
    expect(expired).toEqual([]);
    clock.advanceTo(t0 + 900 + TIMEOUT);
    expect(expired.map((e) => e.at)).toEqual([t0 + 900 + TIMEOUT]);
  });

  it('afterRead(false, ...) disarms', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    clock.advanceTo(t0 + 500);
    d.afterRead(false, true);
    expect(clock.pending.size).toBe(0);
    clock.advanceTo(t0 + 10 * TIMEOUT);
    expect(expired).toEqual([]);
  });

  it('after a disarm, the next partial frame gets its own full period', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    clock.advanceTo(t0 + 500);
    d.afterRead(false, false);
    clock.advanceTo(t0 + 800);
    d.afterRead(true, false);
    clock.advanceTo(t0 + 800 + TIMEOUT - 1);
    expect(expired).toEqual([]);
    clock.advanceTo(t0 + 800 + TIMEOUT);
    expect(expired.map((e) => e.at)).toEqual([t0 + 800 + TIMEOUT]);
  });

  it('a timer that fires a little early does not expire the frame early: it waits out the rest', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    clock.fireEarly(1); // at t0 + 999
    expect(expired).toEqual([]);
    expect(clock.armed).toEqual([TIMEOUT, 1]);
    clock.advanceTo(t0 + TIMEOUT);
    expect(expired.map((e) => e.at)).toEqual([t0 + TIMEOUT]);
  });

  it('arms one timer of the full timeout, never a shorter poll', () => {
    const { d, clock } = make();
    d.afterRead(true, true);
    d.afterRead(true, false);
    expect(clock.armed).toEqual([TIMEOUT]);
    expect(clock.pending.size).toBe(1);
  });

  it('expires at most once', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    clock.advanceTo(t0 + TIMEOUT);
    d.afterRead(true, true);
    clock.advanceTo(t0 + 5 * TIMEOUT);
    expect(expired).toHaveLength(1);
  });
});

describe('FrameDeadline: paused', () => {
  // The rule: time spent paused does not count; the frame's deadline moves later by the pause.

  it('no expiry while paused', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    clock.advanceTo(t0 + 100);
    d.paused = true;
    clock.advanceTo(t0 + 20 * TIMEOUT);
    expect(expired).toEqual([]);
  });

  it('a pause that outlasts the deadline moves it later by exactly the pause', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    clock.advanceTo(t0 + 100);
    d.paused = true;
    clock.advanceTo(t0 + 5000); // the timer fell due meanwhile
    d.paused = false; // paused for 4900 ms: 900 ms of the frame's 1000 are left
    expect(expired).toEqual([]);
    clock.advanceTo(t0 + TIMEOUT + 4900 - 1);
    expect(expired).toEqual([]);
    clock.advanceTo(t0 + TIMEOUT + 4900);
    expect(expired.map((e) => e.at)).toEqual([t0 + TIMEOUT + 4900]);
  });

  it('a short pause (the timer still pending) moves the deadline later too', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    clock.advanceTo(t0 + 100);
    d.paused = true;
    clock.advanceTo(t0 + 400);
    d.paused = false;
    clock.advanceTo(t0 + TIMEOUT + 300 - 1);
    expect(expired).toEqual([]);
    clock.advanceTo(t0 + TIMEOUT + 300);
    expect(expired.map((e) => e.at)).toEqual([t0 + TIMEOUT + 300]);
  });

  it('pauses add up', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    for (const [from, to] of [
      [100, 300],
      [500, 2500],
    ]) {
      clock.advanceTo(t0 + from);
      d.paused = true;
      clock.advanceTo(t0 + to);
      d.paused = false;
    }
    clock.advanceTo(t0 + TIMEOUT + 2200 - 1);
    expect(expired).toEqual([]);
    clock.advanceTo(t0 + TIMEOUT + 2200);
    expect(expired.map((e) => e.at)).toEqual([t0 + TIMEOUT + 2200]);
  });

  it('pausing again while paused keeps the first pause time', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    clock.advanceTo(t0 + 100);
    d.paused = true;
    clock.advanceTo(t0 + 300);
    d.paused = true;
    clock.advanceTo(t0 + 500);
    d.paused = false; // paused for 400 ms, not 200
    clock.advanceTo(t0 + TIMEOUT + 400 - 1);
    expect(expired).toEqual([]);
    clock.advanceTo(t0 + TIMEOUT + 400);
    expect(expired).toHaveLength(1);
  });

  it('a resume without a pause changes nothing', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    clock.advanceTo(t0 + 500);
    d.paused = false;
    clock.advanceTo(t0 + TIMEOUT);
    expect(expired.map((e) => e.at)).toEqual([t0 + TIMEOUT]);
  });

  it('a pause with no partial frame gives the next frame nothing extra', () => {
    const { d, clock, expired, t0 } = make();
    d.paused = true;
    clock.advanceTo(t0 + 5000);
    d.paused = false;
    d.afterRead(true, true);
    clock.advanceTo(t0 + 5000 + TIMEOUT);
    expect(expired.map((e) => e.at)).toEqual([t0 + 5000 + TIMEOUT]);
  });

  it('a frame finished after the resume does not expire', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    d.paused = true;
    clock.advanceTo(t0 + TIMEOUT + 1);
    d.paused = false;
    d.afterRead(false, true);
    clock.advanceTo(t0 + 10 * TIMEOUT);
    expect(expired).toEqual([]);
  });
});

describe('FrameDeadline: off and stopped', () => {
  it('timeout 0 never arms', () => {
    const { d, clock, expired, t0 } = make(0);
    d.afterRead(true, true);
    d.afterRead(true, false);
    expect(clock.armed).toEqual([]);
    clock.advanceTo(t0 + 1_000_000);
    expect(expired).toEqual([]);
  });

  it('stop() disarms and later reads arm nothing', () => {
    const { d, clock, expired, t0 } = make();
    d.afterRead(true, true);
    d.stop();
    expect(clock.pending.size).toBe(0);
    d.afterRead(true, true);
    expect(clock.pending.size).toBe(0);
    clock.advanceTo(t0 + 10 * TIMEOUT);
    expect(expired).toEqual([]);
  });

  // Time 0 is a time like any other: "no partial frame" is not spelled as a clock reading.
  it('a frame that begins at clock time 0 still expires at 1.0 x timeout', () => {
    const { d, clock, expired } = make(TIMEOUT, 0);
    d.afterRead(true, true);
    clock.advanceTo(500);
    d.afterRead(true, false);
    clock.advanceTo(TIMEOUT);
    expect(expired.map((e) => e.at)).toEqual([TIMEOUT]);
  });
});
