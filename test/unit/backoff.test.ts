import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/common/backoff.js';

const opts = { baseMs: 100, capMs: 5000 };
const top = (): number => 1 - Number.EPSILON; // the largest value Math.random() can return, near enough

describe('backoffDelay', () => {
  it('grows exponentially from baseMs: the step doubles each attempt', () => {
    // random() = 0 gives exactly half the step; just under 1 gives the step itself.
    expect([0, 1, 2, 3, 4].map((a) => backoffDelay(a, opts, () => 0))).toEqual([50, 100, 200, 400, 800]);
    expect([0, 1, 2, 3, 4].map((a) => backoffDelay(a, opts, top))).toEqual([100, 200, 400, 800, 1600]);
  });

  it('is capped at capMs', () => {
    for (const attempt of [6, 7, 10, 30, 31, 100, 1e6]) {
      expect(backoffDelay(attempt, opts, top)).toBe(5000);
      expect(backoffDelay(attempt, opts, () => 0)).toBe(2500);
    }
  });

  it('stays finite for huge attempt counts', () => {
    expect(Number.isFinite(backoffDelay(Number.MAX_SAFE_INTEGER, { baseMs: 1000, capMs: 30_000 }, () => 0.5))).toBe(true);
  });

  it('lies in [step/2, step] for random in [0, 1)', () => {
    const randoms = [0, 0.001, 0.25, 0.5, 0.75, 0.999, top()];
    for (let attempt = 0; attempt < 12; attempt++) {
      const step = Math.min(opts.capMs, opts.baseMs * 2 ** attempt);
      for (const r of randoms) {
        const d = backoffDelay(attempt, opts, () => r);
        expect(d, `attempt ${attempt}, random ${r}`).toBeGreaterThanOrEqual(step / 2);
        expect(d, `attempt ${attempt}, random ${r}`).toBeLessThanOrEqual(step);
        expect(Number.isInteger(d)).toBe(true);
      }
    }
  });

  it('grows with the random value (more jitter, later retry)', () => {
    const ds = [0, 0.2, 0.4, 0.6, 0.8].map((r) => backoffDelay(3, opts, () => r));
    expect([...ds].sort((a, b) => a - b)).toEqual(ds);
    expect(new Set(ds).size).toBe(ds.length);
  });

  it('uses Math.random by default and still stays in range', () => {
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(2, opts);
      expect(d).toBeGreaterThanOrEqual(200);
      expect(d).toBeLessThanOrEqual(400);
    }
  });
});
