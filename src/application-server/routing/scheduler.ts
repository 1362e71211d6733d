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
  hasService(serviceKey: number): boolean;
}

export interface SchedulingContext {
  now: number;
  random: () => number;
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

/** Cost of sending one more request: in-flight count scaled by the reported load, if fresh. */
export function cost(c: SchedulingCandidate, now: number, o: LeastLoadedOptions): number {
  const fresh = c.loadReceivedAt > 0 && now - c.loadReceivedAt <= o.staleAfterMs;
  const load = fresh ? c.loadScore : o.unknownLoad;
  return (c.inflight + 1) * (1 + o.loadWeight * load);
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

/** Takes candidates in turn, ignoring load. */
export function roundRobin(): SchedulingStrategy {
  let next = 0;
  return {
    name: 'round-robin',
    pick(candidates) {
      const n = candidates.length;
      if (n === 0) return undefined;
      next = (next + 1) % 0x7fffffff;
      return candidates[next % n];
    },
  };
}

export type StrategyName = 'least-loaded' | 'round-robin';

export function createStrategy(name: StrategyName, opts: Partial<LeastLoadedOptions> = {}): SchedulingStrategy {
  return name === 'round-robin' ? roundRobin() : leastLoaded(opts);
}
