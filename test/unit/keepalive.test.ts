import { describe, expect, it } from 'vitest';
import { KeepaliveManager } from '../../src/protocol/keepalive.js';
import type { Timers } from '../../src/protocol/timers.js';

/** Timers that only record: intervals are stepped by calling tick() directly. */
class FakeTimers implements Timers {
  readonly intervals = new Map<number, { fn: () => void; ms: number }>();
  cleared: unknown[] = [];
  #next = 1;
  now = (): number => 0;
  setInterval = (fn: () => void, ms: number): unknown => {
    const h = this.#next++;
    this.intervals.set(h, { fn, ms });
    return h;
  };
  clearInterval = (h: unknown): void => {
    this.cleared.push(h);
    this.intervals.delete(h as number);
  };
  setTimeout = (): unknown => {
    throw new Error('KeepaliveManager sets no timeouts');
  };
  clearTimeout = (): void => undefined;
}

type Reason = 'heartbeat' | 'write-stall';

function make(deadAfterPeriods = 3, periodMs = 1000, flushed?: () => number) {
  const timers = new FakeTimers();
  const pings: number[] = [];
  const expired: { reason: Reason; message: string }[] = [];
  let period = 0;
  const k = new KeepaliveManager({
    periodMs,
    deadAfterPeriods,
    ping: () => pings.push(period),
    expire: (reason, message) => expired.push({ reason, message }),
    flushed,
    timers,
  });
  /** One period: what happened during it, then its tick. */
  const step = (read: boolean, wrote: boolean): void => {
    period++;
    if (read) k.readSeen();
    if (wrote) k.wroteSeen();
    k.tick();
  };
  return { k, timers, pings, expired, step };
}

describe('KeepaliveManager: idle pings', () => {
  it('pings when nothing was read in a period', () => {
    const { pings, step } = make();
    step(false, true);
    expect(pings).toEqual([1]);
  });

  it('pings when nothing was written in a period', () => {
    const { pings, step } = make();
    step(true, false);
    expect(pings).toEqual([1]);
  });

  it('does not ping when both reads and writes happened', () => {
    const { pings, step } = make();
    step(true, true);
    step(true, true);
    expect(pings).toEqual([]);
  });

  it('each period starts afresh: last period\'s traffic does not count', () => {
    const { pings, step } = make();
    step(true, true);
    step(true, false);
    step(false, true);
    expect(pings).toEqual([2, 3]);
  });
});

describe('KeepaliveManager: heartbeat expiry', () => {
  it("expires with 'heartbeat' after exactly deadAfterPeriods silent periods, not one earlier", () => {
    const { k, expired, step } = make(3);
    step(false, true);
    step(false, true);
    expect(k.silentPeriods).toBe(2);
    expect(expired).toEqual([]);
    step(false, true);
    expect(expired).toHaveLength(1);
    expect(expired[0].reason).toBe('heartbeat');
    expect(expired[0].message).toContain('3 heartbeat periods of 1000 ms');
  });

  it('any read resets the silent count', () => {
    const { k, expired, step } = make(3);
    step(false, false);
    step(false, false);
    step(true, false);
    expect(k.silentPeriods).toBe(0);
    step(false, false);
    step(false, false);
    expect(expired).toEqual([]);
    step(false, false);
    expect(expired.map((e) => e.reason)).toEqual(['heartbeat']);
  });

  it('paused periods never count toward dead', () => {
    const { k, expired, step } = make(3);
    k.paused = true;
    for (let i = 0; i < 10; i++) step(false, false);
    expect(k.silentPeriods).toBe(0);
    expect(expired).toEqual([]);
    k.paused = false;
    step(false, false);
    step(false, false);
    expect(expired).toEqual([]);
    step(false, false);
    expect(expired.map((e) => e.reason)).toEqual(['heartbeat']);
  });

  it('expire is called at most once, and the interval is cleared when it is', () => {
    const { k, timers, expired, step } = make(2);
    const [handle] = [...timers.intervals.keys()];
    step(false, false);
    step(false, false);
    expect(timers.cleared).toEqual([handle]);
    for (let i = 0; i < 5; i++) step(false, false);
    k.blocked = true;
    for (let i = 0; i < 5; i++) step(true, false);
    expect(expired).toHaveLength(1);
  });

  it('no ping after it expired', () => {
    const { pings, step } = make(1);
    step(false, false);
    step(false, false);
    expect(pings).toEqual([]);
  });
});

describe('KeepaliveManager: write-stall', () => {
  it("expires with 'write-stall' after deadAfterPeriods blocked periods even while reads keep coming", () => {
    const { k, expired, step } = make(3);
    k.blocked = true;
    step(true, false);
    step(true, false);
    expect(expired).toEqual([]);
    step(true, false);
    expect(expired).toHaveLength(1);
    expect(expired[0].reason).toBe('write-stall');
    expect(expired[0].message).toContain('3 heartbeat periods');
  });

  it('a drain (blocked false) resets the blocked count', () => {
    const { k, expired, step } = make(3);
    k.blocked = true;
    step(true, false);
    step(true, false);
    k.blocked = false;
    step(true, false);
    k.blocked = true;
    step(true, false);
    step(true, false);
    expect(expired).toEqual([]);
    step(true, false);
    expect(expired.map((e) => e.reason)).toEqual(['write-stall']);
  });

  it('pausing does not excuse a write stall', () => {
    const { k, expired, step } = make(2);
    k.paused = true;
    k.blocked = true;
    step(false, false);
    step(false, false);
    expect(expired.map((e) => e.reason)).toEqual(['write-stall']);
  });
});

describe('KeepaliveManager: write-stall with a flushed() counter', () => {
  it('a blocked socket that keeps draining is a slow reader, not a write stall', () => {
    const out = { flushed: 0 };
    const { k, expired, step } = make(3, 1000, () => out.flushed);
    k.blocked = true;
    for (let i = 0; i < 10; i++) {
      out.flushed += 100;
      step(true, true);
    }
    expect(expired).toEqual([]);
  });

  it('counts only the blocked periods in which nothing left the socket', () => {
    const out = { flushed: 0 };
    const { k, expired, step } = make(3, 1000, () => out.flushed);
    k.blocked = true;
    out.flushed = 500; // moved during the first period
    step(true, true);
    step(true, true);
    step(true, true);
    expect(expired).toEqual([]);
    step(true, true);
    expect(expired.map((e) => e.reason)).toEqual(['write-stall']);
  });

  it('any progress resets the stalled count', () => {
    const out = { flushed: 0 };
    const { k, expired, step } = make(3, 1000, () => out.flushed);
    k.blocked = true;
    step(true, true);
    step(true, true);
    out.flushed = 1;
    step(true, true);
    step(true, true);
    step(true, true);
    expect(expired).toEqual([]);
    step(true, true);
    expect(expired.map((e) => e.reason)).toEqual(['write-stall']);
  });
});

describe('KeepaliveManager: timer', () => {
  it('sets one interval of periodMs that runs tick()', () => {
    const { timers, pings } = make(3, 250);
    expect([...timers.intervals.values()].map((i) => i.ms)).toEqual([250]);
    const [{ fn }] = [...timers.intervals.values()];
    fn();
    expect(pings).toHaveLength(1);
  });

  it('stop() clears the interval and later ticks do nothing', () => {
    const { k, timers, pings, expired, step } = make(1);
    const [handle] = [...timers.intervals.keys()];
    k.stop();
    expect(timers.cleared).toEqual([handle]);
    expect(timers.intervals.size).toBe(0);
    step(false, false);
    expect(pings).toEqual([]);
    expect(expired).toEqual([]);
  });

  it('periodMs 0 sets no timer', () => {
    const { timers } = make(3, 0);
    expect(timers.intervals.size).toBe(0);
  });
});
