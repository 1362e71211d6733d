import { describe, expect, it } from 'vitest';
import { loadScoreOf } from '../../src/application-server/registry/function-server-entry.js';
import type { LoadReport } from '../../src/index.js';

/** A report with every term at rest; each test raises the one it is about. */
function report(r: Partial<LoadReport>): LoadReport {
  return { cpu: 0, elu: 0, rssBytes: 50e6, heapUsedBytes: 20e6, memory: 0.1, inflight: 0, ...r };
}

describe('loadScoreOf', () => {
  it('is the event-loop use when that is the largest term', () => {
    expect(loadScoreOf(report({ elu: 0.42, cpu: 0.1 }))).toBe(0.42);
    expect(loadScoreOf(report({}))).toBe(0);
  });

  it('counts CPU (one core = 1) when it is above the event-loop use', () => {
    expect(loadScoreOf(report({ cpu: 0.7, elu: 0.2 }))).toBe(0.7);
    expect(loadScoreOf(report({ cpu: 0.99, elu: 0.98 }))).toBe(0.99);
  });

  it('caps the CPU term at 1: a process that uses several cores is fully loaded, not more', () => {
    expect(loadScoreOf(report({ cpu: 1, elu: 0.2 }))).toBe(1);
    expect(loadScoreOf(report({ cpu: 3.5, elu: 0.2 }))).toBe(1);
    expect(loadScoreOf(report({ cpu: 64, elu: 0 }))).toBe(1);
  });

  it('counts memory only above 85% of the heap limit, and then as itself', () => {
    // At or below 0.85 the memory term is 0, whatever the other terms.
    expect(loadScoreOf(report({ memory: 0.5 }))).toBe(0);
    expect(loadScoreOf(report({ memory: 0.85 }))).toBe(0);
    expect(loadScoreOf(report({ memory: 0.85, elu: 0.3 }))).toBe(0.3);
    // Above it, the memory fraction itself.
    expect(loadScoreOf(report({ memory: 0.851 }))).toBe(0.851);
    expect(loadScoreOf(report({ memory: 0.9, elu: 0.3, cpu: 0.4 }))).toBe(0.9);
    expect(loadScoreOf(report({ memory: 0.95, cpu: 2 }))).toBe(1); // the capped CPU term is larger
    expect(loadScoreOf(report({ memory: 1 }))).toBe(1);
  });

  it('is the largest of the three terms, in [0, 1] for any report within the documented ranges', () => {
    for (let i = 0; i < 1000; i++) {
      const r = report({ cpu: (i % 37) / 8, elu: (i % 11) / 10, memory: (i % 21) / 20 });
      const score = loadScoreOf(r);
      expect(score).toBeGreaterThanOrEqual(0);
      expect(score).toBeLessThanOrEqual(1);
      expect(score).toBe(Math.max(r.elu, Math.min(1, r.cpu), r.memory > 0.85 ? r.memory : 0));
    }
  });
});
