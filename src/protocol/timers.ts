/**
 * The clock and timers a connection's safety rules run on. Injected so that the rules can be
 * tested alone, step by step; the default is Node's own, with every timer unref()ed.
 */
export interface Timers {
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** setTimeout's largest delay (2^31 - 1 ms, about 24.8 days); a longer one would fire at once. */
export const MAX_TIMER_MS = 0x7fffffff;

/** A delay setTimeout can take: whole, at least 0, at most MAX_TIMER_MS. */
export function clampDelay(ms: number): number {
  if (!(ms > 0)) return 0;
  return ms > MAX_TIMER_MS ? MAX_TIMER_MS : Math.ceil(ms);
}

export const nodeTimers: Timers = {
  now: () => Date.now(),
  setInterval: (fn, ms) => setInterval(fn, clampDelay(ms)).unref(),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
  setTimeout: (fn, ms) => setTimeout(fn, clampDelay(ms)).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
