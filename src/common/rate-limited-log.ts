import type { Logger } from './logger.js';

export interface RateLimitedLogOptions {
  /** Lines let through per key in each window. */
  burst: number;
  windowMs: number;
  /** Keys remembered at once; the oldest is forgotten beyond it, so keys cannot grow the map. */
  maxKeys: number;
  now?: () => number;
}

type Level = 'warn' | 'error' | 'info';

/**
 * Log lines a peer can cause, rate-limited per key: at most `burst` lines per key per window, and
 * the first line after a quiet spell says how many were suppressed. A flood of bad input costs a
 * few lines per window, never the disk.
 */
export class RateLimitedLog {
  readonly #logger: Logger;
  readonly #o: RateLimitedLogOptions;
  readonly #now: () => number;
  readonly #windows = new Map<string, { start: number; count: number; suppressed: number }>();
  /** Lines held back since start, over every key. */
  suppressedTotal = 0;

  constructor(logger: Logger, opts: Partial<RateLimitedLogOptions> = {}) {
    this.#logger = logger;
    this.#o = { burst: opts.burst ?? 5, windowMs: opts.windowMs ?? 10_000, maxKeys: opts.maxKeys ?? 1000 };
    this.#now = opts.now ?? Date.now;
  }

  warn(key: string, obj: Record<string, unknown>, msg: string): boolean {
    return this.#log('warn', key, obj, msg);
  }

  error(key: string, obj: Record<string, unknown>, msg: string): boolean {
    return this.#log('error', key, obj, msg);
  }

  info(key: string, obj: Record<string, unknown>, msg: string): boolean {
    return this.#log('info', key, obj, msg);
  }

  #log(level: Level, key: string, obj: Record<string, unknown>, msg: string): boolean {
    const now = this.#now();
    let w = this.#windows.get(key);
    if (w === undefined || now - w.start >= this.#o.windowMs) {
      const suppressed = w?.suppressed ?? 0;
      if (w !== undefined) this.#windows.delete(key);
      else if (this.#windows.size >= this.#o.maxKeys) this.#windows.delete(this.#windows.keys().next().value as string);
      w = { start: now, count: 0, suppressed: 0 };
      this.#windows.set(key, w);
      if (suppressed > 0) obj = { ...obj, suppressed };
    }
    if (w.count >= this.#o.burst) {
      w.suppressed++;
      this.suppressedTotal++;
      return false;
    }
    w.count++;
    this.#logger[level](obj, msg);
    return true;
  }
}
