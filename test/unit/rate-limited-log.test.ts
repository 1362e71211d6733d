import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/common/logger.js';
import { RateLimitedLog } from '../../src/common/rate-limited-log.js';

type Line = { level: 'warn' | 'error' | 'info'; obj: Record<string, unknown>; msg: string };

function make(opts: { burst?: number; windowMs?: number; maxKeys?: number } = {}) {
  const lines: Line[] = [];
  const clock = { t: 1_000_000 };
  const logger = {
    warn: (obj: Record<string, unknown>, msg: string) => lines.push({ level: 'warn', obj, msg }),
    error: (obj: Record<string, unknown>, msg: string) => lines.push({ level: 'error', obj, msg }),
    info: (obj: Record<string, unknown>, msg: string) => lines.push({ level: 'info', obj, msg }),
  };
  const log = new RateLimitedLog(logger as unknown as Logger, { ...opts, now: () => clock.t });
  return { log, lines, clock };
}

describe('RateLimitedLog', () => {
  it('lets at most `burst` lines per key through in a window', () => {
    const { log, lines } = make({ burst: 2, windowMs: 1000 });
    const results = [1, 2, 3, 4, 5].map((i) => log.warn('k', { i }, 'bad frame'));
    expect(results).toEqual([true, true, false, false, false]);
    expect(lines).toEqual([
      { level: 'warn', obj: { i: 1 }, msg: 'bad frame' },
      { level: 'warn', obj: { i: 2 }, msg: 'bad frame' },
    ]);
  });

  it('the window lasts windowMs: one ms short is still the old window', () => {
    const { log, lines, clock } = make({ burst: 1, windowMs: 1000 });
    const t0 = clock.t;
    log.warn('k', {}, 'm');
    clock.t = t0 + 999;
    expect(log.warn('k', {}, 'm')).toBe(false);
    clock.t = t0 + 1000;
    expect(log.warn('k', {}, 'm')).toBe(true);
    expect(lines).toHaveLength(2);
  });

  it("a new window's first line carries `suppressed: n`, the next ones do not", () => {
    const { log, lines, clock } = make({ burst: 2, windowMs: 1000 });
    for (let i = 0; i < 5; i++) log.error('k', { i }, 'm');
    clock.t += 1000;
    log.error('k', { i: 5 }, 'm');
    log.error('k', { i: 6 }, 'm');
    expect(lines.slice(2).map((l) => l.obj)).toEqual([{ i: 5, suppressed: 3 }, { i: 6 }]);
  });

  it('no `suppressed` when nothing was held back', () => {
    const { log, lines, clock } = make({ burst: 2, windowMs: 1000 });
    log.info('k', { a: 1 }, 'm');
    clock.t += 5000;
    log.info('k', { a: 2 }, 'm');
    expect(lines.map((l) => l.obj)).toEqual([{ a: 1 }, { a: 2 }]);
  });

  it("does not change the caller's object", () => {
    const { log, clock } = make({ burst: 1, windowMs: 1000 });
    log.warn('k', {}, 'm');
    log.warn('k', {}, 'm');
    clock.t += 1000;
    const obj = { x: 1 };
    log.warn('k', obj, 'm');
    expect(obj).toEqual({ x: 1 });
  });

  it('keys are independent', () => {
    const { log, lines } = make({ burst: 1, windowMs: 1000 });
    expect(log.warn('a', {}, 'a1')).toBe(true);
    expect(log.warn('a', {}, 'a2')).toBe(false);
    expect(log.warn('b', {}, 'b1')).toBe(true);
    expect(log.warn('b', {}, 'b2')).toBe(false);
    expect(lines.map((l) => l.msg)).toEqual(['a1', 'b1']);
  });

  it('each level goes to the same-named logger method', () => {
    const { log, lines } = make({ burst: 5 });
    log.warn('k', {}, 'w');
    log.error('k', {}, 'e');
    log.info('k', {}, 'i');
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['warn', 'w'],
      ['error', 'e'],
      ['info', 'i'],
    ]);
  });

  it('beyond maxKeys the oldest key is forgotten', () => {
    const { log } = make({ burst: 1, windowMs: 1000, maxKeys: 2 });
    log.warn('a', {}, 'm');
    log.warn('b', {}, 'm');
    log.warn('c', {}, 'm'); // forgets a
    expect(log.warn('b', {}, 'm')).toBe(false); // still remembered: suppressed
    expect(log.warn('c', {}, 'm')).toBe(false);
    expect(log.warn('a', {}, 'm')).toBe(true); // forgotten: a fresh window
  });

  it('the map never holds more than maxKeys keys', () => {
    const { log } = make({ burst: 1, windowMs: 1000, maxKeys: 3 });
    for (let i = 0; i < 1000; i++) log.warn(`k${i}`, {}, 'm');
    // Exactly the last three are remembered (each is suppressed on a second line)...
    expect(['k997', 'k998', 'k999'].map((k) => log.warn(k, {}, 'm'))).toEqual([false, false, false]);
    // ...and the one before them is not.
    expect(log.warn('k996', {}, 'm')).toBe(true);
  });

  it('suppressedTotal counts every line held back, over all keys', () => {
    const { log, clock } = make({ burst: 1, windowMs: 1000 });
    for (let i = 0; i < 4; i++) log.warn('a', {}, 'm');
    for (let i = 0; i < 3; i++) log.warn('b', {}, 'm');
    expect(log.suppressedTotal).toBe(5);
    clock.t += 1000;
    log.warn('a', {}, 'm');
    log.warn('a', {}, 'm');
    expect(log.suppressedTotal).toBe(6);
  });

  it('defaults: 5 lines per 10 s', () => {
    const lines: unknown[] = [];
    const t = { now: 0 };
    const logger = { warn: () => lines.push(1), error: () => undefined, info: () => undefined };
    const log = new RateLimitedLog(logger as unknown as Logger, { now: () => t.now });
    for (let i = 0; i < 10; i++) log.warn('k', {}, 'm');
    expect(lines).toHaveLength(5);
    t.now = 9_999;
    log.warn('k', {}, 'm');
    expect(lines).toHaveLength(5);
    t.now = 10_000;
    log.warn('k', {}, 'm');
    expect(lines).toHaveLength(6);
  });
});
