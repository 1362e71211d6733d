/**
 * Outlier detection, the way Envoy does it: an FS that keeps failing is taken out of scheduling
 * for a while even though its connections look healthy (a black hole answers heartbeats and never
 * answers requests). Pure functions over per-FS counters; the FS manager applies the decisions.
 */

export interface OutlierOptions {
  /** Failures in a row (AS-side timeouts, FS TIMEOUT or SERVER_ERROR answers) that eject an FS; 0 turns it off. */
  consecutiveFailures: number;
  /** How often success rates are compared; also the window their counts cover. */
  intervalMs: number;
  /** First ejection time; the n-th ejection lasts n times as long. */
  baseEjectionMs: number;
  maxEjectionMs: number;
  /** Never more than this share of an FS's peers (FSs sharing a service key with it) ejected at once. */
  maxEjectionPercent: number;
  /** Success-rate ejection looks only at FSs with at least this many answers in the interval... */
  successRateMinRequests: number;
  /** ...and only when at least this many peers have that many; 0 turns success-rate ejection off. */
  successRateMinHosts: number;
  /** Eject below mean − factor × standard deviation of the peers' success rates. */
  successRateStdevFactor: number;
}

export const DEFAULT_OUTLIER: OutlierOptions = {
  consecutiveFailures: 5,
  intervalMs: 10_000,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 50,
  successRateMinRequests: 100,
  successRateMinHosts: 3,
  successRateStdevFactor: 1.9,
};

/** One FS's counters. */
export class OutlierStats {
  consecutiveFailures = 0;
  /** Answers in the current interval. */
  ok = 0;
  failed = 0;
  /** Times ejected since it joined: each ejection lasts longer. */
  ejections = 0;
  /** Epoch ms until which it is ejected; 0 when it is not. */
  ejectedUntil = 0;
}

/** Counts one answer; true when this failure makes `consecutiveFailures` in a row. */
export function recordOutcome(s: OutlierStats, failed: boolean, o: OutlierOptions): boolean {
  if (!failed) {
    s.ok++;
    s.consecutiveFailures = 0;
    return false;
  }
  s.failed++;
  s.consecutiveFailures++;
  return o.consecutiveFailures > 0 && s.consecutiveFailures >= o.consecutiveFailures;
}

/** How long the next ejection lasts: base × (ejections so far + 1), capped. */
export function ejectionMs(s: OutlierStats, o: OutlierOptions): number {
  return Math.min(o.maxEjectionMs, o.baseEjectionMs * (s.ejections + 1));
}

/** Whether one more of `peers` may be ejected while `ejected` of them already are. */
export function mayEject(ejected: number, peers: number, o: OutlierOptions): boolean {
  return ejected + 1 <= Math.floor((peers * o.maxEjectionPercent) / 100);
}

/**
 * The peers whose success rate in the interval is far below the others'. Only peers with enough
 * answers take part. Resets every peer's interval counts.
 */
export function successRateOutliers<T extends { readonly outlier: OutlierStats }>(peers: readonly T[], o: OutlierOptions): T[] {
  const sampled = peers.filter((p) => p.outlier.ok + p.outlier.failed >= o.successRateMinRequests);
  const rates = sampled.map((p) => p.outlier.ok / (p.outlier.ok + p.outlier.failed));
  for (const p of peers) {
    p.outlier.ok = 0;
    p.outlier.failed = 0;
  }
  if (o.successRateMinHosts <= 0 || sampled.length < o.successRateMinHosts) return [];
  // Each FS is compared with the others. With itself in the mean and spread, no value can lie more
  // than sqrt(n - 1) standard deviations below the mean (Samuelson), so at factor 1.9 one bad FS
  // among 3 or 4 could never be ejected. The spread has a floor, so that a hair below peers that
  // all agree exactly is not an outlier.
  const sum = rates.reduce((a, r) => a + r, 0);
  const sumSq = rates.reduce((a, r) => a + r * r, 0);
  const m = rates.length - 1;
  return sampled.filter((_, i) => {
    const mean = (sum - rates[i]) / m;
    const variance = Math.max(0, (sumSq - rates[i] * rates[i]) / m - mean * mean);
    return rates[i] < mean - o.successRateStdevFactor * Math.max(Math.sqrt(variance), MIN_SUCCESS_RATE_STDEV);
  });
}

/** Floor of the peers' spread in success rate: 5 points. */
const MIN_SUCCESS_RATE_STDEV = 0.05;
