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
  const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
  const stdev = Math.sqrt(rates.reduce((a, r) => a + (r - mean) ** 2, 0) / rates.length);
  const threshold = mean - o.successRateStdevFactor * stdev;
  return sampled.filter((_, i) => rates[i] < threshold);
}
