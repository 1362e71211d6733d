import { describe, expect, it } from 'vitest';
import { LATENCY_BOUNDS_MS, LatencyRecorder, MAX_LATENCY_SERVICES, OTHER_SERVICES } from '../../src/application-server/routing/latency.js';

const all = (r: LatencyRecorder): Map<number, number[]> => new Map([...r.entries()].map(([k, c]) => [k, [...c]]));

describe('LatencyRecorder (the request-duration histogram)', () => {
  it('puts a duration in the first bucket whose bound holds it (bounds inclusive, as Prometheus le), the rest in the last, and sums the ms', () => {
    const r = new LatencyRecorder();
    for (const ms of [0, 1, 2, 2.5, 60, 10_000, 10_001]) r.record(7, ms);
    const counts = all(r).get(7) as number[];
    const n = LATENCY_BOUNDS_MS.length;
    expect(counts).toHaveLength(n + 2);
    expect(counts[0]).toBe(2); // 0 and 1 ms: le 0.001
    expect(counts[1]).toBe(2); // 2 and 2.5 ms: le 0.0025
    expect(counts[LATENCY_BOUNDS_MS.indexOf(100)]).toBe(1); // 60 ms: le 0.1
    expect(counts[n - 1]).toBe(1); // 10 s: le 10
    expect(counts[n]).toBe(1); // over 10 s: +Inf only
    expect(counts[n + 1]).toBe(0 + 1 + 2 + 2.5 + 60 + 10_000 + 10_001);
  });

  it(`keeps series for ${MAX_LATENCY_SERVICES} service keys; later keys are summed under _other, listed last`, () => {
    const r = new LatencyRecorder();
    for (let k = MAX_LATENCY_SERVICES + 10; k > 0; k--) r.record(k, 3);
    r.record(MAX_LATENCY_SERVICES + 10, 3); // had its own series: still has
    r.record(1, 3); // came after the cap: still _other
    const keys = [...all(r).keys()];
    expect(keys).toHaveLength(MAX_LATENCY_SERVICES + 1);
    expect(keys.at(-1)).toBe(OTHER_SERVICES);
    expect(keys.slice(0, 3)).toEqual([11, 12, 13]);
    expect(all(r).get(OTHER_SERVICES)?.[2]).toBe(11); // ten keys and one more call, 3 ms each: le 0.005
    expect(all(r).get(MAX_LATENCY_SERVICES + 10)?.[2]).toBe(2);
  });
});
