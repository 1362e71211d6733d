import { describe, expect, it, vi } from 'vitest';
import {
  MAGLEV_TABLE_SIZE,
  consistentHash,
  cost,
  createStrategy,
  DEFAULT_LEAST_LOADED,
  guardedStrategy,
  leastLoaded,
  maglevTable,
  murmur3,
  roundRobin,
  type SchedulingCandidate,
  type SchedulingContext,
  type SchedulingStrategy,
} from '../../src/application-server/routing/scheduler.js';
import { mulberry32 } from '../fixtures/seeded-random.js';

const NOW = 1_000_000;

interface Mutable extends SchedulingCandidate {
  inflight: number;
}

function fs(id: string, weight?: number, inflight = 0, loadScore = 0.1): Mutable {
  return { id, poolType: 0, standby: false, inflight, loadScore, loadReceivedAt: NOW, weight, hasService: () => true };
}

const ctx = (over: Partial<SchedulingContext> = {}, seed = 1): SchedulingContext => ({ now: NOW, random: mulberry32(seed), ...over });
const keyOf = (i: number): Buffer => Buffer.from(`user-${i}`);

function tally<T extends SchedulingCandidate>(picks: (T | undefined)[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of picks) if (p) m.set(p.id, (m.get(p.id) ?? 0) + 1);
  return m;
}

describe('murmur3', () => {
  it('matches the reference vectors of MurmurHash3_x86_32', () => {
    expect(murmur3('', 0)).toBe(0);
    expect(murmur3('', 1)).toBe(0x514e28b7);
    expect(murmur3('hello', 0)).toBe(0x248bfa47);
    expect(murmur3('The quick brown fox jumps over the lazy dog', 0)).toBe(0x2e4ff723);
    // Every tail length (1, 2, 3 bytes past a block) is hashed, not dropped.
    expect(new Set(['abcd', 'abcde', 'abcdef', 'abcdefg'].map((s) => murmur3(s))).size).toBe(4);
    expect(murmur3(Buffer.from('hello'))).toBe(murmur3('hello'));
  });
});

describe('weights', () => {
  it('least-loaded divides the cost by the weight (LVS wlc): weight 2 with 3 in flight beats weight 1 with 2', () => {
    const heavy = fs('heavy', 2, 3);
    const light = fs('light', 1, 2);
    expect(cost(heavy, NOW, DEFAULT_LEAST_LOADED)).toBeCloseTo(cost(fs('x', 1, 3), NOW, DEFAULT_LEAST_LOADED) / 2);
    expect(cost(heavy, NOW, DEFAULT_LEAST_LOADED)).toBeLessThan(cost(light, NOW, DEFAULT_LEAST_LOADED));
    expect(leastLoaded().pick([light, heavy], ctx())?.id).toBe('heavy');
  });

  it('least-loaded gives a weight-3 FS about three times the share of weight-1 ones when requests pile up (20 seeds)', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const cands = [fs('w3', 3), fs('a', 1), fs('b', 1)];
      const s = leastLoaded();
      const c = ctx({}, seed);
      const rnd = mulberry32(seed + 100);
      const counts = new Map<string, number>();
      // A closed system: each pick adds one in flight, and answers come back at random, 8 at a time.
      for (let i = 0; i < 6000; i++) {
        const p = s.pick(cands, c) as Mutable;
        p.inflight++;
        counts.set(p.id, (counts.get(p.id) ?? 0) + 1);
        if (i % 8 === 7) {
          for (let k = 0; k < 8; k++) {
            const busy = cands.filter((x) => x.inflight > 0);
            busy[Math.floor(rnd() * busy.length)].inflight--;
          }
        }
      }
      const share = (counts.get('w3') ?? 0) / 6000;
      expect(share, `seed ${seed}`).toBeGreaterThan(0.45);
      expect(share, `seed ${seed}`).toBeLessThan(0.75);
    }
  });

  it('round-robin with weights 3:1:1 is exact and smooth (no burst longer than the weight)', () => {
    const cands = [fs('w3', 3), fs('a', 1), fs('b', 1)];
    const s = roundRobin();
    const picks = Array.from({ length: 5000 }, () => s.pick(cands, ctx()));
    expect(tally(picks)).toEqual(new Map([['w3', 3000], ['a', 1000], ['b', 1000]]));
    let run = 0;
    let longest = 0;
    for (const p of picks) {
      run = p?.id === 'w3' ? run + 1 : 0;
      longest = Math.max(longest, run);
    }
    // Smooth: w3's turns are spread between the others', never all three plus one in a row.
    expect(longest).toBeLessThanOrEqual(2);
  });

  it('round-robin with equal weights takes each in turn', () => {
    const cands = [fs('a'), fs('b', 1), fs('c')];
    const s = roundRobin();
    expect(tally(Array.from({ length: 300 }, () => s.pick(cands, ctx())))).toEqual(new Map([['a', 100], ['b', 100], ['c', 100]]));
  });
});

describe('consistent hashing (Maglev)', () => {
  it('fills every slot, evenly for equal weights and in proportion for unequal ones', () => {
    const ten = Array.from({ length: 10 }, (_, i) => fs(`fs-${i}`));
    const t = maglevTable(ten);
    expect(t.length).toBe(MAGLEV_TABLE_SIZE);
    expect(t.every((v) => v >= 0 && v < 10)).toBe(true);
    const counts = new Array<number>(10).fill(0);
    for (const v of t) counts[v]++;
    for (const n of counts) expect(Math.abs(n - MAGLEV_TABLE_SIZE / 10)).toBeLessThanOrEqual(1);

    const weighted = maglevTable([fs('big', 2), fs('s1', 1), fs('s2', 1)]);
    const w = [0, 0, 0];
    for (const v of weighted) w[v]++;
    expect(w[0] / w[1]).toBeCloseTo(2, 1);
    expect(w[1] / w[2]).toBeCloseTo(1, 1);
  });

  it('keeps one key on one FS, spreads keys over all FSs, and builds the same table whatever the list order', () => {
    const cands = Array.from({ length: 5 }, (_, i) => fs(`fs-${i}`));
    const s = consistentHash();
    const first = s.pick(cands, ctx({ routingKey: keyOf(42) }));
    for (let i = 0; i < 50; i++) expect(s.pick(cands, ctx({ routingKey: keyOf(42) }, i))).toBe(first);
    const spread = tally(Array.from({ length: 5000 }, (_, i) => s.pick(cands, ctx({ routingKey: keyOf(i) }))));
    for (const c of cands) expect(spread.get(c.id)).toBeGreaterThan(800);
    // Another AS, whose manager lists the same FSs in another order, sends each key to the same FS.
    const reversed = [...cands].reverse();
    const other = consistentHash();
    for (let i = 0; i < 5000; i++) expect(other.pick(reversed, ctx({ routingKey: keyOf(i) }))?.id).toBe(s.pick(cands, ctx({ routingKey: keyOf(i) }))?.id);
  });

  it('bounds movement: when one of ten FSs leaves only its keys move (and ≤ 2% of the others); when one joins, about 1/11 move', () => {
    const ten = Array.from({ length: 10 }, (_, i) => fs(`fs-${i}`));
    const s = consistentHash();
    const keys = Array.from({ length: 20_000 }, (_, i) => keyOf(i));
    const before = keys.map((k) => s.pick(ten, ctx({ routingKey: k }))?.id);

    const nine = ten.filter((c) => c.id !== 'fs-3');
    const afterLeave = keys.map((k) => s.pick(nine, ctx({ routingKey: k }))?.id);
    let movedOthers = 0;
    let onLeaver = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] === 'fs-3') onLeaver++;
      else if (afterLeave[i] !== before[i]) movedOthers++;
    }
    expect(afterLeave.includes('fs-3')).toBe(false);
    expect(onLeaver / keys.length).toBeCloseTo(0.1, 1);
    expect(movedOthers / (keys.length - onLeaver)).toBeLessThanOrEqual(0.02);

    const eleven = [...ten, fs('fs-10')];
    const afterJoin = keys.map((k) => s.pick(eleven, ctx({ routingKey: k }))?.id);
    const moved = afterJoin.filter((id, i) => id !== before[i]).length / keys.length;
    const toNewcomer = afterJoin.filter((id) => id === 'fs-10').length / keys.length;
    expect(toNewcomer).toBeCloseTo(1 / 11, 1);
    // Nearly every key that moved went to the newcomer.
    expect(moved - toNewcomer).toBeLessThanOrEqual(0.02);
  });

  it('falls back to least-loaded without a routing key and on a second choice for the same request', () => {
    const idle = fs('idle', 1, 0);
    const busy = fs('busy', 1, 50);
    const s = consistentHash();
    // Which one the key maps to does not matter here: without a key, or when choosing again, load decides.
    expect(s.pick([busy, idle], ctx())).toBe(idle);
    const key = Array.from({ length: 100 }, (_, i) => keyOf(i)).find((k) => s.pick([busy, idle], ctx({ routingKey: k })) === busy) as Buffer;
    expect(key).toBeDefined();
    expect(s.pick([busy, idle], ctx({ routingKey: key, again: true }))).toBe(idle);
  });

  it('is the strategy createStrategy("consistent-hash") builds', () => {
    expect(createStrategy('consistent-hash').name).toBe('consistent-hash');
  });
});

describe('a strategy from outside, guarded', () => {
  it('a throw or an answer that is not a candidate costs a fallback pick and a report, never the request', () => {
    const cands = [fs('a'), fs('b')];
    const report = vi.fn();
    const fallback = { name: 'fallback', pick: vi.fn(() => cands[1]) } as unknown as SchedulingStrategy;
    const throwing = guardedStrategy({ name: 'boom', pick: () => { throw new Error('bug in strategy'); } }, fallback, report);
    expect(throwing.pick(cands, ctx())).toBe(cands[1]);
    expect(report).toHaveBeenCalledWith(expect.objectContaining({ message: 'bug in strategy' }));

    const stranger = guardedStrategy({ name: 'stranger', pick: () => fs('not-a-candidate') as never }, fallback, report);
    expect(stranger.pick(cands, ctx())).toBe(cands[1]);
    expect(report).toHaveBeenLastCalledWith(expect.objectContaining({ message: expect.stringContaining('not one of the candidates') }));

    const nothing = guardedStrategy({ name: 'nothing', pick: () => undefined }, fallback, report);
    expect(nothing.pick(cands, ctx())).toBe(cands[1]);
    expect(report).toHaveBeenCalledTimes(3);

    const good = guardedStrategy({ name: 'first', pick: (c) => c[0] }, fallback, report);
    expect(good.pick(cands, ctx())).toBe(cands[0]);
    expect(good.pick([], ctx())).toBeUndefined();
    expect(report).toHaveBeenCalledTimes(3);
  });

  it('sees the request: service key, pool type, routing key and whether it is a second choice', () => {
    const seen: SchedulingContext[] = [];
    const s = guardedStrategy({ name: 'spy', pick: (c, x) => (seen.push({ ...x }), c[0]) }, leastLoaded(), () => undefined);
    s.pick([fs('a')], ctx({ serviceKey: 7, poolType: 2, routingKey: keyOf(1), again: false }));
    expect(seen[0]).toMatchObject({ serviceKey: 7, poolType: 2, routingKey: keyOf(1), again: false });
  });
});
