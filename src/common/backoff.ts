export interface BackoffOptions {
  /** First delay. */
  baseMs: number;
  /** Largest delay: the reconnect span. */
  capMs: number;
}

/**
 * Capped exponential backoff with "equal jitter": half the step is fixed, half random, so retries
 * from many peers spread out yet never come sooner than half the step.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const step = Math.min(opts.capMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + random() * (step / 2));
}
