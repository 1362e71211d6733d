import { describe, expect, it } from 'vitest';
import {
  DEFAULT_LEAST_LOADED,
  compatibleTiers,
  cost,
  createStrategy,
  isCompatible,
  leastLoaded,
  roundRobin,
  type SchedulingCandidate,
  type SchedulingContext,
  type SchedulingStrategy,
} from '../../src/application-server/routing/scheduler.js';
import { mulberry32 } from '../fixtures/seeded-random.js';

const NOW = 1_000_000;

interface Spec {
  id: string;
  poolType?: number;
  standby?: boolean;
  inflight?: number;
  loadScore?: number;
  /** Age of the last report in ms; undefined means no report ever came. */
  age?: number;
  keys?: number[];
}

function candidate(s: Spec): SchedulingCandidate {
  const keys = new Set(s.keys ?? [1]);
  return {
    id: s.id,
    poolType: s.poolType ?? 0,
    standby: s.standby ?? false,
    inflight: s.inflight ?? 0,
    loadScore: s.loadScore ?? 0,
    loadReceivedAt: s.age === undefined ? 0 : NOW - s.age,
    hasService: (k) => keys.has(k),
  };
}

const ctx = (seed = 1): SchedulingContext => ({ now: NOW, random: mulberry32(seed) });

function countPicks(pick: () => SchedulingCandidate | undefined, times: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < times; i++) {
    const c = pick();
    if (c) counts.set(c.id, (counts.get(c.id) ?? 0) + 1);
  }
  return counts;
}

describe('isCompatible', () => {
  const fs = candidate({ id: 'a', poolType: 3, keys: [101, 102] });

  it('pool type 0 in the request matches an FS of any pool type', () => {
    expect(isCompatible(fs, 101, 0)).toBe(true);
    expect(isCompatible(candidate({ id: 'z', poolType: 0, keys: [101] }), 101, 0)).toBe(true);
  });

  it('any other pool type must match exactly', () => {
    expect(isCompatible(fs, 101, 3)).toBe(true);
    expect(isCompatible(fs, 101, 4)).toBe(false);
    // An FS of pool type 0 is not a wildcard for a request that names a pool type.
    expect(isCompatible(candidate({ id: 'z', poolType: 0, keys: [101] }), 101, 3)).toBe(false);
  });

  it('the FS must serve the service key', () => {
    expect(isCompatible(fs, 999, 0)).toBe(false);
    expect(isCompatible(fs, 999, 3)).toBe(false);
  });
});

describe('compatibleTiers', () => {
  it('splits compatible candidates into active and standby, in order, dropping the rest', () => {
    const all = [
      candidate({ id: 'a1', poolType: 1, keys: [5] }),
      candidate({ id: 's1', poolType: 1, keys: [5], standby: true }),
      candidate({ id: 'other-pool', poolType: 2, keys: [5] }),
      candidate({ id: 'other-key', poolType: 1, keys: [6] }),
      candidate({ id: 'a2', poolType: 1, keys: [5, 6] }),
      candidate({ id: 's2', poolType: 1, keys: [5], standby: true }),
    ];
    const { active, standby } = compatibleTiers(all, 5, 1);
    expect(active.map((c) => c.id)).toEqual(['a1', 'a2']);
    expect(standby.map((c) => c.id)).toEqual(['s1', 's2']);
    const any = compatibleTiers(all, 5, 0);
    expect(any.active.map((c) => c.id)).toEqual(['a1', 'other-pool', 'a2']);
  });

  it('accepts any iterable and returns empty tiers when nothing fits', () => {
    const set = new Set([candidate({ id: 'a', keys: [1] })]);
    expect(compatibleTiers(set, 2, 0)).toEqual({ active: [], standby: [] });
  });
});

describe('cost', () => {
  const o = DEFAULT_LEAST_LOADED;

  it('uses a fresh report: (inflight + 1) * (1 + loadWeight * load)', () => {
    expect(cost(candidate({ id: 'a', loadScore: 0.9, age: 0 }), NOW, o)).toBeCloseTo(1 * (1 + o.loadWeight * 0.9));
    expect(cost(candidate({ id: 'a', inflight: 4, loadScore: 0.25, age: 100 }), NOW, o)).toBeCloseTo(5 * (1 + o.loadWeight * 0.25));
  });

  it('a report exactly staleAfterMs old still counts', () => {
    const c = candidate({ id: 'a', loadScore: 0.9, age: o.staleAfterMs });
    expect(cost(c, NOW, o)).toBeCloseTo(1 + o.loadWeight * 0.9);
  });

  it('ignores a report older than staleAfterMs and uses unknownLoad', () => {
    const unknown = 1 + o.loadWeight * o.unknownLoad;
    expect(cost(candidate({ id: 'a', loadScore: 0.9, age: o.staleAfterMs + 1 }), NOW, o)).toBeCloseTo(unknown);
    expect(cost(candidate({ id: 'a', loadScore: 0.0, age: 60_000 }), NOW, o)).toBeCloseTo(unknown);
  });

  it('uses unknownLoad when no report ever came', () => {
    expect(cost(candidate({ id: 'a', loadScore: 0.1 }), NOW, o)).toBeCloseTo(1 + o.loadWeight * o.unknownLoad);
  });

  it('honours custom options', () => {
    const custom = { staleAfterMs: 10, loadWeight: 1, unknownLoad: 1 };
    expect(cost(candidate({ id: 'a', loadScore: 0.5, age: 11 }), NOW, custom)).toBeCloseTo(2);
    expect(cost(candidate({ id: 'a', loadScore: 0.5, age: 10 }), NOW, custom)).toBeCloseTo(1.5);
  });
});

/**
 * How often `strategy` picks each candidate, over SEEDS seeded random sources with PICKS picks
 * each. A choice that holds for one seed may be luck (a random picker gets any one pick between
 * two right half the time); over 10 000 picks from 500 sources it is not.
 */
const SEEDS = 500;
const PICKS = 20;
function shares(strategy: SchedulingStrategy, cands: readonly SchedulingCandidate[], seeds = SEEDS, picks = PICKS): Map<string, number> {
  const counts = new Map<string, number>(cands.map((c) => [c.id, 0]));
  for (let seed = 1; seed <= seeds; seed++) {
    const c = ctx(seed);
    for (let k = 0; k < picks; k++) {
      const got = strategy.pick(cands, c);
      if (got) counts.set(got.id, (counts.get(got.id) ?? 0) + 1);
    }
  }
  const total = seeds * picks;
  return new Map([...counts].map(([id, n]) => [id, n / total]));
}

/** The share of picks that chose `want`, the candidate order given and reversed. */
function shareOf(strategy: SchedulingStrategy, want: SchedulingCandidate, others: readonly SchedulingCandidate[]): number {
  const forward = shares(strategy, [want, ...others]).get(want.id) ?? 0;
  const backward = shares(strategy, [...others].reverse().concat(want)).get(want.id) ?? 0;
  return (forward + backward) / 2;
}

describe('leastLoaded (power of two choices)', () => {
  it('returns undefined for no candidates and the only one for a single candidate', () => {
    const s = leastLoaded();
    expect(s.pick([], ctx())).toBeUndefined();
    const only = candidate({ id: 'only', loadScore: 1, age: 0, inflight: 100 });
    expect(shares(s, [only]).get('only')).toBe(1);
  });

  it('with two candidates always picks the cheaper, whatever their order and the random source', () => {
    const cheap = candidate({ id: 'cheap', loadScore: 0.2, age: 0 });
    const dear = candidate({ id: 'dear', loadScore: 0.7, age: 0 });
    // Two of two are always compared: the cheaper wins every time (a random picker: half).
    expect(shareOf(leastLoaded(), cheap, [dear])).toBe(1);
  });

  it('sends no picks to a loaded FS among three, and shares the rest evenly between the idle ones', () => {
    const cands = [
      candidate({ id: 'idle-1', loadScore: 0.1, age: 100 }),
      candidate({ id: 'loaded', loadScore: 0.9, age: 100 }),
      candidate({ id: 'idle-2', loadScore: 0.1, age: 100 }),
    ];
    const got = shares(leastLoaded(), cands);
    // Any pair it samples holds an idle one, which is cheaper: the loaded one is never chosen
    // (a random picker would give it a third). Both idle ones share the traffic (half each)
    // rather than one global minimum taking it all.
    expect(got.get('loaded')).toBe(0);
    expect(got.get('idle-1')).toBeGreaterThan(0.45);
    expect(got.get('idle-1')).toBeLessThan(0.55);
    expect(got.get('idle-2')).toBeGreaterThan(0.45);
    expect(got.get('idle-2')).toBeLessThan(0.55);
  });

  it('among four, the dearest is never chosen and the cheapest is chosen whenever it is sampled (half the time)', () => {
    const cands = [0.1, 0.3, 0.5, 0.9].map((load, k) => candidate({ id: `c${k}`, loadScore: load, age: 0 }));
    const got = shares(leastLoaded(), cands);
    // Two of four sampled: the cheapest is in 3 of the 6 pairs, the second in 2, the third in 1.
    expect(got.get('c0')).toBeGreaterThan(0.45);
    expect(got.get('c0')).toBeLessThan(0.55);
    expect(got.get('c1')).toBeGreaterThan(0.28);
    expect(got.get('c1')).toBeLessThan(0.39);
    expect(got.get('c2')).toBeGreaterThan(0.12);
    expect(got.get('c2')).toBeLessThan(0.22);
    expect(got.get('c3')).toBe(0);
  });

  it('a candidate with many requests in flight loses to an idle one with the same load', () => {
    const busy = candidate({ id: 'busy', inflight: 20, loadScore: 0.1, age: 0 });
    const idle = candidate({ id: 'idle', inflight: 0, loadScore: 0.1, age: 0 });
    expect(shareOf(leastLoaded(), idle, [busy])).toBe(1);
  });

  it('in-flight count outweighs a stale low report (never schedule on stale reports alone)', () => {
    // Claims to be idle, but the report is stale and the AS already has 10 requests on it.
    const liar = candidate({ id: 'liar', inflight: 10, loadScore: 0, age: 60_000 });
    const honest = candidate({ id: 'honest', inflight: 1, loadScore: 0.5, age: 0 });
    expect(shareOf(leastLoaded(), honest, [liar])).toBe(1);
  });

  it('treats a stale report on a loaded FS as unknown load', () => {
    const s = leastLoaded();
    const medium = candidate({ id: 'medium', loadScore: 0.6, age: 0 }); // cost 1 + 4*0.6 = 3.4
    const freshLoaded = candidate({ id: 'loaded', loadScore: 0.9, age: 0 }); // cost 4.6
    const staleLoaded = candidate({ id: 'loaded', loadScore: 0.9, age: DEFAULT_LEAST_LOADED.staleAfterMs + 1 }); // cost 3 (unknown 0.5)
    expect(shareOf(s, medium, [freshLoaded])).toBe(1);
    expect(shareOf(s, staleLoaded, [medium])).toBe(1);
    // And a stale "idle" report does not win against a fresh modest one.
    const staleIdle = candidate({ id: 'stale-idle', loadScore: 0, age: 10_000 }); // cost 3
    const fresh = candidate({ id: 'fresh', loadScore: 0.3, age: 0 }); // cost 2.2
    expect(shareOf(s, fresh, [staleIdle])).toBe(1);
  });

  it('honours staleAfterMs given in its options', () => {
    const oldLoaded = candidate({ id: 'old', loadScore: 0.9, age: 101 }); // unknown: 3
    const medium = candidate({ id: 'medium', loadScore: 0.6, age: 0 }); // 3.4
    expect(shareOf(leastLoaded({ staleAfterMs: 100 }), oldLoaded, [medium])).toBe(1);
    expect(shareOf(leastLoaded(), medium, [oldLoaded])).toBe(1); // with the default 3000 ms it is fresh: 4.6
  });

  it('always compares two distinct candidates', () => {
    /** Candidates that log which of them the strategy reads, to see the pair it compared. */
    const read: string[] = [];
    const spy = (id: string): SchedulingCandidate => {
      const base = candidate({ id, loadScore: 0.5, age: 0 });
      return {
        ...base,
        get inflight() {
          read.push(id);
          return 0;
        },
      };
    };
    const edgeRandoms = [0, 0.5, 0.999999999];
    const bad: string[] = [];
    for (let n = 2; n <= 6; n++) {
      const cands = Array.from({ length: n }, (_, k) => spy(`c${k}`));
      const seeded = mulberry32(n);
      const sources: (() => number)[] = [seeded];
      for (const a of edgeRandoms) {
        for (const b of edgeRandoms) {
          let calls = 0;
          sources.push(() => (calls++ % 2 === 0 ? a : b));
        }
      }
      for (const random of sources) {
        const s = leastLoaded();
        const rounds = random === seeded ? 500 : 1;
        for (let r = 0; r < rounds; r++) {
          read.length = 0;
          const picked = s.pick(cands, { now: NOW, random });
          if (read.length !== 2 || read[0] === read[1] || !read.includes(picked?.id ?? '')) bad.push(`n=${n}: read ${read.join(',')}, picked ${picked?.id}`);
        }
      }
    }
    expect(bad).toEqual([]);
  });

  it('reaches every candidate, about equally, when all cost the same', () => {
    const cands = Array.from({ length: 5 }, (_, k) => candidate({ id: `c${k}`, loadScore: 0.2, age: 0 }));
    const got = shares(leastLoaded(), cands);
    for (const share of got.values()) {
      expect(share).toBeGreaterThan(0.17);
      expect(share).toBeLessThan(0.23);
    }
  });
});

describe('roundRobin', () => {
  it('cycles through the candidates evenly, ignoring load', () => {
    const s = roundRobin();
    const cands = [
      candidate({ id: 'a', loadScore: 1, age: 0, inflight: 50 }),
      candidate({ id: 'b' }),
      candidate({ id: 'c' }),
    ];
    const seq = Array.from({ length: 9 }, () => s.pick(cands, ctx())!.id);
    for (let i = 0; i < 9; i += 3) expect(new Set(seq.slice(i, i + 3))).toEqual(new Set(['a', 'b', 'c']));
    expect(seq.slice(3)).toEqual([...seq.slice(0, 3), ...seq.slice(0, 3)]);
    const counts = countPicks(() => s.pick(cands, ctx()), 3000);
    expect([...counts.values()]).toEqual([1000, 1000, 1000]);
  });

  it('returns undefined for no candidates, the only one for one', () => {
    const s = roundRobin();
    expect(s.pick([], ctx())).toBeUndefined();
    const only = candidate({ id: 'only' });
    expect(s.pick([only], ctx())).toBe(only);
    expect(s.pick([only], ctx())).toBe(only);
  });
});

describe('createStrategy', () => {
  it('builds a strategy by name', () => {
    expect(createStrategy('least-loaded').name).toBe('least-loaded');
    expect(createStrategy('round-robin').name).toBe('round-robin');
  });

  it('passes options to least-loaded', () => {
    const oldLoaded = candidate({ id: 'old', loadScore: 0.9, age: 101 });
    const medium = candidate({ id: 'medium', loadScore: 0.6, age: 0 });
    expect(shareOf(createStrategy('least-loaded', { staleAfterMs: 100 }), oldLoaded, [medium])).toBe(1);
    expect(shareOf(createStrategy('least-loaded'), medium, [oldLoaded])).toBe(1);
    expect(shareOf(createStrategy('least-loaded', { loadWeight: 0 }), oldLoaded, [medium]), 'load weighs nothing: a tie, half each').toBeCloseTo(0.5, 1);
  });

  it('gives each call its own round-robin cursor', () => {
    const cands = [candidate({ id: 'a' }), candidate({ id: 'b' })];
    const one = createStrategy('round-robin');
    const two = createStrategy('round-robin');
    expect(one.pick(cands, ctx())).toBe(two.pick(cands, ctx()));
  });
});
