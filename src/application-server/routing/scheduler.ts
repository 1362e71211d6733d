/**
 * The scheduler: pure functions that choose one FS among candidates. No I/O, no timers; the
 * clock and the random source come in as arguments so that every choice can be tested alone.
 */

/** What the scheduler may know about one FS. */
export interface SchedulingCandidate {
  readonly id: string;
  readonly poolType: number;
  readonly standby: boolean;
  /** Requests the AS has sent this FS and not yet seen answered: the AS's own, always-fresh count. */
  readonly inflight: number;
  /** Last reported load in [0, 1] (see loadScoreOf: CPU, event-loop use, memory near its limit). */
  readonly loadScore: number;
  /** AS receive time of that report (epoch ms); 0 if none came yet. */
  readonly loadReceivedAt: number;
  /** Its share against candidates of weight 1 (LVS's wrr/wlc); absent means 1. */
  readonly weight?: number;
  hasService(serviceKey: number): boolean;
}

/** What a strategy knows of the request it chooses for. The AS reuses one object: read it, do not keep it. */
export interface SchedulingContext {
  now: number;
  random: () => number;
  /** The request's service key and pool type. */
  serviceKey?: number;
  poolType?: number;
  /** The routing key the request carried in its header extension (docs/protocol.md, section 2.4). */
  routingKey?: Buffer;
  /**
   * A second choice for the same request: a re-send after its FS was lost, a hedge, or a new pick
   * because the first one was full. The candidates then leave out the FS that failed or was full.
   */
  again?: boolean;
}

export interface SchedulingStrategy {
  readonly name: string;
  pick<C extends SchedulingCandidate>(candidates: readonly C[], ctx: SchedulingContext): C | undefined;
}

/** Pool type 0 in a request means "any pool"; otherwise the FS must be of exactly that pool type. */
export function isCompatible(c: SchedulingCandidate, serviceKey: number, poolType: number): boolean {
  return (poolType === 0 || c.poolType === poolType) && c.hasService(serviceKey);
}

/** Splits compatible candidates into the active tier and the standby tier. */
export function compatibleTiers<C extends SchedulingCandidate>(
  all: Iterable<C>,
  serviceKey: number,
  poolType: number,
): { active: C[]; standby: C[] } {
  const active: C[] = [];
  const standby: C[] = [];
  for (const c of all) {
    if (!isCompatible(c, serviceKey, poolType)) continue;
    (c.standby ? standby : active).push(c);
  }
  return { active, standby };
}

export interface LeastLoadedOptions {
  /** A report older than this is ignored (about three report periods). */
  staleAfterMs: number;
  /** How much a fully loaded FS costs relative to an idle one with the same in-flight count. */
  loadWeight: number;
  /** Load assumed for an FS whose report is missing or stale. */
  unknownLoad: number;
}

export const DEFAULT_LEAST_LOADED: LeastLoadedOptions = { staleAfterMs: 3000, loadWeight: 4, unknownLoad: 0.5 };

/**
 * Cost of sending one more request: in-flight count scaled by the reported load, if fresh, and
 * divided by the weight (LVS's weighted least-connection: twice the weight, twice the share).
 */
export function cost(c: SchedulingCandidate, now: number, o: LeastLoadedOptions): number {
  const fresh = c.loadReceivedAt > 0 && now - c.loadReceivedAt <= o.staleAfterMs;
  const load = fresh ? c.loadScore : o.unknownLoad;
  return ((c.inflight + 1) * (1 + o.loadWeight * load)) / (c.weight ?? 1);
}

/**
 * Power of two choices: sample two distinct candidates, keep the cheaper. O(1) whatever the
 * number of FSs, and it never sends every request to the one global minimum at once.
 */
export function leastLoaded(opts: Partial<LeastLoadedOptions> = {}): SchedulingStrategy {
  const o: LeastLoadedOptions = {
    staleAfterMs: opts.staleAfterMs ?? DEFAULT_LEAST_LOADED.staleAfterMs,
    loadWeight: opts.loadWeight ?? DEFAULT_LEAST_LOADED.loadWeight,
    unknownLoad: opts.unknownLoad ?? DEFAULT_LEAST_LOADED.unknownLoad,
  };
  return {
    name: 'least-loaded',
    pick(candidates, ctx) {
      const n = candidates.length;
      if (n <= 1) return candidates[0];
      const i = Math.floor(ctx.random() * n);
      let j = Math.floor(ctx.random() * (n - 1));
      if (j >= i) j++;
      const a = candidates[i];
      const b = candidates[j];
      const ca = cost(a, ctx.now, o);
      const cb = cost(b, ctx.now, o);
      return cb < ca ? b : a;
    },
  };
}

/** Per candidate list: whether every weight is equal, and the smooth round-robin's running weights. */
interface RoundRobinState {
  uniform: boolean;
  current: Float64Array;
}

/**
 * Takes candidates in turn, ignoring load. With unequal weights it is nginx's smooth weighted
 * round-robin: each candidate gets its weight's share, spread out rather than in bursts.
 */
export function roundRobin(): SchedulingStrategy {
  let next = 0;
  // Candidate lists are rebuilt when membership or weights change, so state keyed by list is never stale.
  const states = new WeakMap<readonly SchedulingCandidate[], RoundRobinState>();
  return {
    name: 'round-robin',
    pick(candidates) {
      const n = candidates.length;
      if (n === 0) return undefined;
      let st = states.get(candidates);
      if (st === undefined) {
        const w0 = candidates[0].weight ?? 1;
        st = { uniform: candidates.every((c) => (c.weight ?? 1) === w0), current: new Float64Array(n) };
        states.set(candidates, st);
      }
      if (st.uniform) {
        next = (next + 1) % 0x7fffffff;
        return candidates[next % n];
      }
      const cur = st.current;
      let total = 0;
      let best = 0;
      for (let i = 0; i < n; i++) {
        const w = candidates[i].weight ?? 1;
        cur[i] += w;
        total += w;
        if (cur[i] > cur[best]) best = i;
      }
      cur[best] -= total;
      return candidates[best];
    },
  };
}

/** Maglev's lookup table size: a prime, so every skip visits every slot; ~65k slots keep imbalance under 1%. */
export const MAGLEV_TABLE_SIZE = 65537;

/** 32-bit MurmurHash3 of `data` (a string is hashed as UTF-8). */
export function murmur3(data: Uint8Array | string, seed = 0): number {
  const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let h = seed >>> 0;
  const n = b.length;
  const blocks = n & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = n & 3;
  if (tail > 0) {
    let k = b[blocks];
    if (tail > 1) k ^= b[blocks + 1] << 8;
    if (tail > 2) k ^= b[blocks + 2] << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Maglev's lookup table (Eisenbud et al., NSDI 2016): each candidate walks its own permutation of
 * the slots (offset and skip from its id, so every AS builds the same table for the same FSs) and
 * takes the next free slot in turn; a candidate of weight w takes turns w times as often as one of
 * weight 1. When one candidate leaves, mostly its own slots change hands.
 */
export function maglevTable(candidates: readonly SchedulingCandidate[], size = MAGLEV_TABLE_SIZE): Int32Array {
  const n = candidates.length;
  const table = new Int32Array(size).fill(-1);
  if (n === 0) return table;
  const offset = new Float64Array(n);
  const skip = new Float64Array(n);
  const next = new Float64Array(n);
  const credit = new Float64Array(n);
  let maxWeight = 0;
  for (let i = 0; i < n; i++) {
    const id = candidates[i].id;
    offset[i] = murmur3(id, 0x9747b28c) % size;
    skip[i] = (murmur3(id, 0x5bd1e995) % (size - 1)) + 1;
    maxWeight = Math.max(maxWeight, candidates[i].weight ?? 1);
  }
  // Turns go in id order, so the table depends on the set of FSs, not on the order the AS lists them.
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (candidates[a].id < candidates[b].id ? -1 : candidates[a].id > candidates[b].id ? 1 : 0));
  let filled = 0;
  for (;;) {
    for (const i of order) {
      credit[i] += (candidates[i].weight ?? 1) / maxWeight;
      if (credit[i] < 1) continue;
      credit[i] -= 1;
      let slot = (offset[i] + next[i] * skip[i]) % size;
      while (table[slot] >= 0) {
        next[i]++;
        slot = (offset[i] + next[i] * skip[i]) % size;
      }
      table[slot] = i;
      next[i]++;
      if (++filled === size) return table;
    }
  }
}

/**
 * Affinity: a request with a routing key goes to the candidate its key hashes to in a Maglev
 * table, so one key stays on one FS while that FS is available. Without a key, and on a second
 * choice for the same request (the first FS was lost or full), least-loaded chooses.
 */
export function consistentHash(opts: Partial<LeastLoadedOptions> = {}): SchedulingStrategy {
  const fallback = leastLoaded(opts);
  const tables = new WeakMap<readonly SchedulingCandidate[], Int32Array>();
  return {
    name: 'consistent-hash',
    pick(candidates, ctx) {
      const key = ctx.routingKey;
      if (key === undefined || ctx.again === true || candidates.length <= 1) return fallback.pick(candidates, ctx);
      let table = tables.get(candidates);
      if (table === undefined) {
        table = maglevTable(candidates);
        tables.set(candidates, table);
      }
      return candidates[table[murmur3(key) % MAGLEV_TABLE_SIZE]];
    },
  };
}

export const STRATEGY_NAMES = ['least-loaded', 'round-robin', 'consistent-hash'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

export function createStrategy(name: StrategyName, opts: Partial<LeastLoadedOptions> = {}): SchedulingStrategy {
  if (name === 'round-robin') return roundRobin();
  if (name === 'consistent-hash') return consistentHash(opts);
  return leastLoaded(opts);
}

/**
 * A strategy from outside (a module given to --strategy) made safe to call on the request path: a
 * throw, or an answer that is not one of the candidates, falls back to `fallback` for that pick and
 * is logged (at most once per interval, through `report`).
 */
export function guardedStrategy(user: SchedulingStrategy, fallback: SchedulingStrategy, report: (err: Error) => void): SchedulingStrategy {
  return {
    name: user.name,
    pick(candidates, ctx) {
      let chosen: SchedulingCandidate | undefined;
      try {
        chosen = user.pick(candidates, ctx);
      } catch (err) {
        report(err instanceof Error ? err : new Error(String(err)));
        return fallback.pick(candidates, ctx);
      }
      if (chosen === undefined && candidates.length === 0) return undefined;
      if (chosen !== undefined && candidates.includes(chosen as (typeof candidates)[number])) return chosen as (typeof candidates)[number];
      report(new Error(`strategy ${user.name} chose ${chosen === undefined ? 'nothing' : 'something that is not one of the candidates'}; it must return one of the candidates it was given`));
      return fallback.pick(candidates, ctx);
    },
  };
}
