import { describe, expect, it } from 'vitest';
import {
  DEFAULT_OUTLIER,
  OutlierStats,
  ejectionMs,
  mayEject,
  recordOutcome,
  successRateOutliers,
  type OutlierOptions,
} from '../../src/application-server/routing/outlier-detector.js';

const opts = (o: Partial<OutlierOptions> = {}): OutlierOptions => ({ ...DEFAULT_OUTLIER, ...o });

/** A peer that answered `ok` requests well and `failed` badly in the interval. */
function peer(name: string, ok: number, failed: number): { name: string; outlier: OutlierStats } {
  const outlier = new OutlierStats();
  outlier.ok = ok;
  outlier.failed = failed;
  return { name, outlier };
}

const names = (ps: { name: string }[]): string[] => ps.map((p) => p.name);

describe('recordOutcome', () => {
  it('is true exactly at the N-th consecutive failure', () => {
    const s = new OutlierStats();
    const o = opts({ consecutiveFailures: 3 });
    expect([true, true, true].map((f) => recordOutcome(s, f, o))).toEqual([false, false, true]);
    expect(s.consecutiveFailures).toBe(3);
    expect(s.failed).toBe(3);
  });

  it('a success resets the run', () => {
    const s = new OutlierStats();
    const o = opts({ consecutiveFailures: 3 });
    const got = [true, true, false, true, true, true].map((f) => recordOutcome(s, f, o));
    expect(got).toEqual([false, false, false, false, false, true]);
    expect(s.ok).toBe(1);
    expect(s.failed).toBe(5);
  });

  it('a success is never a reason to eject', () => {
    const s = new OutlierStats();
    s.consecutiveFailures = 10;
    expect(recordOutcome(s, false, opts({ consecutiveFailures: 1 }))).toBe(false);
    expect(s.consecutiveFailures).toBe(0);
  });

  it('consecutiveFailures 0 disables it', () => {
    const s = new OutlierStats();
    const o = opts({ consecutiveFailures: 0 });
    for (let i = 0; i < 100; i++) expect(recordOutcome(s, true, o)).toBe(false);
    expect(s.failed).toBe(100); // still counted for the success rate
  });
});

describe('ejectionMs', () => {
  it('grows with each ejection and is capped', () => {
    const o = opts({ baseEjectionMs: 30_000, maxEjectionMs: 100_000 });
    const s = new OutlierStats();
    const got: number[] = [];
    for (let n = 0; n < 5; n++) {
      s.ejections = n;
      got.push(ejectionMs(s, o));
    }
    expect(got).toEqual([30_000, 60_000, 90_000, 100_000, 100_000]);
  });
});

describe('mayEject', () => {
  const half = opts({ maxEjectionPercent: 50 });

  it('50% of 2 peers allows 1', () => {
    expect(mayEject(0, 2, half)).toBe(true);
    expect(mayEject(1, 2, half)).toBe(false);
  });

  it('50% of 1 peer allows 0', () => {
    expect(mayEject(0, 1, half)).toBe(false);
  });

  it('50% of 3 peers allows 1 (rounded down)', () => {
    expect(mayEject(0, 3, half)).toBe(true);
    expect(mayEject(1, 3, half)).toBe(false);
  });

  it('50% of 10 peers allows 5', () => {
    expect(mayEject(4, 10, half)).toBe(true);
    expect(mayEject(5, 10, half)).toBe(false);
  });

  it('100% allows all, 0% none', () => {
    expect(mayEject(9, 10, opts({ maxEjectionPercent: 100 }))).toBe(true);
    expect(mayEject(0, 10, opts({ maxEjectionPercent: 0 }))).toBe(false);
  });
});

describe('successRateOutliers', () => {
  // Each peer's rate is compared with the OTHER peers' mean and (population) standard deviation,
  // the deviation floored at 0.05; it is flagged below mean − factor × deviation.
  const sr = (o: Partial<OutlierOptions> = {}) => opts({ successRateMinRequests: 100, successRateMinHosts: 3, ...o });
  // Four peers at 100/100 and one at 50/100: rates 1, 1, 1, 1, 0.5.
  const fivePeers = () => [peer('a', 100, 0), peer('b', 100, 0), peer('c', 100, 0), peer('d', 100, 0), peer('e', 50, 50)];

  it('flags the low one: the others agree exactly, so the 0.05 floor applies (threshold 1 − 1.9 × 0.05 = 0.905)', () => {
    // For a high peer: others 1, 1, 1, 0.5: mean 0.875, variance 3.25 / 4 − 0.875² = 0.046875,
    // stdev ≈ 0.2165, threshold ≈ 0.464 < 1: not flagged.
    expect(names(successRateOutliers(fivePeers(), sr({ successRateStdevFactor: 1.9 })))).toEqual(['e']);
  });

  it('the factor scales the others\' standard deviation (rates 1, 0.9, 0.8, 0.5)', () => {
    // For 0.5: others 1, 0.9, 0.8: mean 0.9, variance 0.02 / 3, stdev ≈ 0.08165; 0.5 is
    // 0.4 / 0.08165 = √24 ≈ 4.899 deviations below: flagged at factor 4.8, not at 5.
    const ps = () => [peer('a', 100, 0), peer('b', 90, 10), peer('c', 80, 20), peer('d', 50, 50)];
    expect(names(successRateOutliers(ps(), sr({ successRateStdevFactor: 4.8 })))).toEqual(['d']);
    expect(successRateOutliers(ps(), sr({ successRateStdevFactor: 5 }))).toEqual([]);
  });

  it('the spread has a floor: a hair below peers that all agree is not an outlier', () => {
    // Others 1, 1, 1: stdev 0, floored to 0.05; threshold at 1.9 is 0.905.
    const at = (ok: number) => [peer('a', 100, 0), peer('b', 100, 0), peer('c', 100, 0), peer('d', ok, 100 - ok)];
    expect(successRateOutliers(at(95), sr({ successRateStdevFactor: 1.9 }))).toEqual([]);
    expect(names(successRateOutliers(at(90), sr({ successRateStdevFactor: 1.9 })))).toEqual(['d']);
  });

  it('one bad peer among three is flagged at the default factor (it is not in its own mean)', () => {
    // For 0.5: others 1, 1 → floor → threshold 0.905. For a 1: others 1, 0.5: mean 0.75,
    // stdev 0.25, threshold 0.275: not flagged.
    const ps = [peer('a', 100, 0), peer('b', 100, 0), peer('c', 50, 50)];
    expect(names(successRateOutliers(ps, sr({ successRateStdevFactor: DEFAULT_OUTLIER.successRateStdevFactor })))).toEqual(['c']);
  });

  it('flags only peers below the threshold, not every one below the mean', () => {
    // 0.8 (others 1, 0.9, 0.5: mean 0.8) is not below its own threshold at any positive factor.
    const ps = [peer('a', 100, 0), peer('b', 90, 10), peer('c', 80, 20), peer('d', 50, 50)];
    expect(names(successRateOutliers(ps, sr({ successRateStdevFactor: 1 })))).toEqual(['d']);
  });

  it('flags none when fewer than successRateMinHosts peers have enough volume', () => {
    // Only two peers have 100 answers; factor 0 would otherwise flag the 0% one.
    const ps = [peer('a', 100, 0), peer('b', 0, 100), peer('c', 50, 0), peer('d', 99, 0)];
    expect(successRateOutliers(ps, sr({ successRateMinHosts: 3, successRateStdevFactor: 0 }))).toEqual([]);
    // A third peer with volume: for b (0) the others' mean is 0.75; for c (0.5) it is 0.5, not above.
    const again = [peer('a', 100, 0), peer('b', 0, 100), peer('c', 50, 50)];
    expect(names(successRateOutliers(again, sr({ successRateMinHosts: 3, successRateStdevFactor: 0 })))).toEqual(['b']);
  });

  it('ignores low-volume peers: neither flagged nor counted among the others', () => {
    // Were the 0/99 peer counted: for 'e' the others 1, 1, 1, 1, 0 give mean 0.8, stdev 0.4,
    // threshold 0.04 (spared); for it the others give mean 0.9, stdev 0.2, threshold 0.52 (flagged).
    const ps = [...fivePeers(), peer('low', 0, 99)];
    expect(names(successRateOutliers(ps, sr({ successRateStdevFactor: 1.9 })))).toEqual(['e']);
  });

  it('successRateMinHosts 0 turns it off', () => {
    expect(successRateOutliers(fivePeers(), sr({ successRateMinHosts: 0, successRateStdevFactor: 0 }))).toEqual([]);
  });

  it('all peers equal: none flagged', () => {
    const ps = [peer('a', 90, 10), peer('b', 90, 10), peer('c', 90, 10)];
    expect(successRateOutliers(ps, sr())).toEqual([]);
  });

  it('resets ok and failed of every peer, low-volume ones included', () => {
    const ps = [...fivePeers(), peer('low', 3, 4)];
    successRateOutliers(ps, sr());
    for (const p of ps) expect([p.outlier.ok, p.outlier.failed]).toEqual([0, 0]);
  });

  it('resets the counters even when too few peers take part', () => {
    const ps = [peer('a', 100, 0), peer('b', 5, 5)];
    expect(successRateOutliers(ps, sr())).toEqual([]);
    for (const p of ps) expect([p.outlier.ok, p.outlier.failed]).toEqual([0, 0]);
  });

  it('leaves the failure run and ejection history alone', () => {
    const p = peer('a', 10, 10);
    p.outlier.consecutiveFailures = 2;
    p.outlier.ejections = 3;
    p.outlier.ejectedUntil = 123;
    successRateOutliers([p], sr());
    expect(p.outlier).toMatchObject({ consecutiveFailures: 2, ejections: 3, ejectedUntil: 123 });
  });
});
