import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { PerformanceMonitor } from '../../src/function-server/performance-monitor.js';

/** What a sample should say for the window since `from`: CPU time over wall time, measured independently. */
interface Mark {
  cpu: NodeJS.CpuUsage;
  at: number;
  elu: EventLoopUtilization;
}
const mark = (): Mark => ({ cpu: process.cpuUsage(), at: performance.now(), elu: performance.eventLoopUtilization() });
function eluSince(from: Mark, to: Mark): number {
  return performance.eventLoopUtilization(to.elu, from.elu).utilization;
}
function cpuSince(from: Mark, to: Mark): number {
  const used = to.cpu.user + to.cpu.system - (from.cpu.user + from.cpu.system);
  return used / ((to.at - from.at) * 1000);
}

/** Keeps this thread busy until it has used `ms` of CPU time (not wall time: a busy machine may stretch it). */
function burnCpu(ms: number): void {
  const start = process.cpuUsage();
  let x = 0;
  for (;;) {
    for (let i = 0; i < 10_000; i++) x += Math.sqrt(i * x + 1);
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) break;
  }
  if (x === -1) throw new Error('unreachable'); // keeps the loop from being optimized away
}

const idle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('PerformanceMonitor', () => {
  it('reports CPU well above 0 after a burn, in line with an independent measurement of the same window', async () => {
    const m = new PerformanceMonitor();
    m.sample(0);
    const from = mark();
    burnCpu(100);
    const to = mark();
    const s = m.sample(0);
    const expected = cpuSince(from, to);
    expect(expected).toBeGreaterThan(0.3); // the burn itself: CPU time over wall time
    expect(s.cpu).toBeGreaterThan(0.3);
    expect(Math.abs(s.cpu - expected)).toBeLessThan(0.15);
    expect(s.cpu).toBeLessThanOrEqual(64);
  });

  it('covers only the time since the previous sample: a burn does not linger into an idle window, nor an idle one dilute a burn', async () => {
    const m = new PerformanceMonitor();
    await idle(300); // time before the first sample must not count in the second
    m.sample(0);
    const w1 = mark();
    burnCpu(150);
    const e1 = mark();
    const burnt = m.sample(0);
    const w2 = mark();
    await idle(450);
    const e2 = mark();
    const rested = m.sample(0);
    const w3 = mark();
    burnCpu(150);
    const e3 = mark();
    const burntAgain = m.sample(0);
    // Each sample agrees with an independent measurement of its own window...
    expect(Math.abs(burnt.cpu - cpuSince(w1, e1))).toBeLessThan(0.15);
    expect(Math.abs(rested.cpu - cpuSince(w2, e2))).toBeLessThan(0.1);
    expect(Math.abs(burntAgain.cpu - cpuSince(w3, e3))).toBeLessThan(0.15);
    // (Relative, not absolute: on a saturated machine a busy loop gets well under a core.)
    expect(burnt.cpu).toBeGreaterThan(rested.cpu + 0.15);
    expect(burntAgain.cpu).toBeGreaterThan(rested.cpu + 0.15);
    // ...and not with a longer one: had the idle sample's window started at the burn (or at the
    // monitor's birth), the burn would show in it; had a burn's, the idle time would dilute it.
    expect(cpuSince(w1, e2) - rested.cpu).toBeGreaterThan(0.1);
    expect(burntAgain.cpu - cpuSince(w2, e3)).toBeGreaterThan(0.15);
    // The same for event-loop use: blocked by each burn, free while idle, each in its own window.
    expect(Math.abs(burnt.elu - eluSince(w1, e1))).toBeLessThan(0.1);
    expect(Math.abs(rested.elu - eluSince(w2, e2))).toBeLessThan(0.1);
    expect(Math.abs(burntAgain.elu - eluSince(w3, e3))).toBeLessThan(0.1);
    expect(burnt.elu).toBeGreaterThan(rested.elu + 0.3);
    expect(burntAgain.elu - eluSince(w2, e3)).toBeGreaterThan(0.15);
  });

  it('keeps event-loop use and memory in [0, 1], and passes the in-flight count through', async () => {
    const m = new PerformanceMonitor();
    const samples = [m.sample(0)];
    burnCpu(30);
    samples.push(m.sample(7));
    await idle(50);
    samples.push(m.sample(12_345));
    samples.push(m.sample(3)); // a zero-length window
    expect(samples.map((s) => s.inflight)).toEqual([0, 7, 12_345, 3]);
    for (const s of samples) {
      expect(s.elu).toBeGreaterThanOrEqual(0);
      expect(s.elu).toBeLessThanOrEqual(1);
      expect(s.memory).toBeGreaterThan(0);
      expect(s.memory).toBeLessThanOrEqual(1);
      expect(s.cpu).toBeGreaterThanOrEqual(0);
      expect(s.cpu).toBeLessThanOrEqual(64);
      expect(Number.isFinite(s.cpu)).toBe(true);
      expect(s.rssBytes).toBeGreaterThan(0);
      expect(s.heapUsedBytes).toBeGreaterThan(0);
      expect(s.heapUsedBytes).toBeLessThanOrEqual(s.rssBytes);
    }
    // memory is the heap used over the heap limit: a small fraction for a test process.
    expect(samples[0].memory).toBeLessThan(0.5);
  });
});
