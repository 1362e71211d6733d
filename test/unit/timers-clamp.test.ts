import { describe, expect, it } from 'vitest';
import { MAX_TIMER_MS, clampDelay, nodeTimers } from '../../src/protocol/timers.js';

// setTimeout fires at once for a delay it cannot take (negative, NaN, above 2^31 - 1 ms): every
// delay the safety timers compute goes through clampDelay first.
describe('clampDelay', () => {
  it('turns zero, negative and NaN delays into 0', () => {
    for (const ms of [0, -0, -1, -0.5, -1e12, Number.NaN, Number.NEGATIVE_INFINITY]) expect(clampDelay(ms), String(ms)).toBe(0);
  });

  it('rounds a positive fraction up, so a tiny delay is not 0', () => {
    expect(clampDelay(0.2)).toBe(1);
    expect(clampDelay(1)).toBe(1);
    expect(clampDelay(1500.01)).toBe(1501);
  });

  it('caps at MAX_TIMER_MS, infinity included', () => {
    expect(clampDelay(MAX_TIMER_MS - 1)).toBe(MAX_TIMER_MS - 1);
    expect(clampDelay(MAX_TIMER_MS)).toBe(MAX_TIMER_MS);
    expect(clampDelay(MAX_TIMER_MS + 0.5)).toBe(MAX_TIMER_MS);
    expect(clampDelay(MAX_TIMER_MS + 1)).toBe(MAX_TIMER_MS);
    expect(clampDelay(Number.POSITIVE_INFINITY)).toBe(MAX_TIMER_MS);
  });

  it('nodeTimers runs a timeout and an interval, and clears them', async () => {
    let fired = 0;
    let ticks = 0;
    const t = nodeTimers.setTimeout(() => fired++, 1);
    const cleared = nodeTimers.setTimeout(() => fired += 100, 1);
    nodeTimers.clearTimeout(cleared);
    const i = nodeTimers.setInterval(() => ticks++, 1);
    await new Promise((r) => setTimeout(r, 30));
    nodeTimers.clearInterval(i);
    const after = ticks;
    await new Promise((r) => setTimeout(r, 10));
    expect(fired).toBe(1);
    expect(after).toBeGreaterThan(0);
    expect(ticks).toBe(after);
    expect(t).toBeDefined();
    expect(Math.abs(nodeTimers.now() - Date.now())).toBeLessThan(1000);
  });
});
