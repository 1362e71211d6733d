/**
 * Scheduler micro-benchmark: the cost of one pick among 3, 100 and 1,000 registered candidates,
 * for least-loaded (power of two choices), round-robin and consistent hashing (Maglev), and for the AS's whole lookup (FS
 * manager candidates() cache, then pick) where the manager can be built without network (pool
 * size 0: it never dials). One case per process (--case), so that no case's objects make
 * another's call sites polymorphic; sizes alternate within each repeat.
 */
import { handle, ready } from '../child-runtime.mjs';
import { dist } from '../paths.mjs';

const { leastLoaded, roundRobin, consistentHash } = await import(dist('application-server/routing/scheduler.js'));
const SIZES = [3, 100, 1000];

function candidates(n, now) {
  const list = [];
  for (let i = 0; i < n; i++) {
    list.push({
      id: `fs-${i}`,
      poolType: 0,
      standby: false,
      inflight: i % 7,
      loadScore: (i % 10) / 10,
      loadReceivedAt: now - (i % 5) * 500,
      hasService(key) {
        return key === 1;
      },
    });
  }
  return list;
}

/** ns per operation over `ops` calls of `op` (which returns the chosen candidate). */
function time(ops, op) {
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    const c = op();
    c.inflight = (c.inflight + 1) & 7; // the choice feeds the next one, as in the AS
    sink += c.inflight;
  }
  const ns = Number(process.hrtime.bigint() - t0) / ops;
  if (sink < 0) throw new Error('unreachable');
  return ns;
}

async function managerLookups(now) {
  try {
    const { FsManager } = await import(dist('application-server/registry/fs-manager.js'));
    const { silentLogger } = await import(dist('index.js'));
    const sink = new Proxy({}, { get: () => () => undefined });
    const strategy = leastLoaded({ staleAfterMs: 3000 });
    const out = {};
    for (const n of SIZES) {
      const m = new FsManager(
        { poolSize: 0, heartbeatMs: 0, connectTimeoutMs: 1000, reconnectBaseMs: 100, reconnectCapMs: 1000, ejectAfterFailures: 3, maxBodyBytes: 1 << 20, logger: silentLogger },
        sink,
      );
      for (let i = 0; i < n; i++) {
        m.addFunctionServer({ host: '127.0.0.1', port: 1 + i, name: `fs-${i}`, services: [{ key: 1, idempotent: true }] });
        const e = m.get(`fs-${i}`);
        e.state = 'available';
        e.inflight = i % 7;
        e.loadScore = (i % 10) / 10;
        e.loadReceivedAt = now;
      }
      if (m.candidates(1, 0).active.length !== n) throw new Error(`the FS manager lists ${m.candidates(1, 0).active.length} of ${n} candidates`);
      out[n] = { manager: m, strategy };
    }
    return out;
  } catch (err) {
    return { error: String(err?.message ?? err) };
  }
}

export const CASES = ['least-loaded pick', 'round-robin pick', 'AS lookup: candidates() + least-loaded pick', 'consistent-hash pick'];

handle('run', async ({ repeats, ops, only }) => {
  const now = Date.now();
  const ctx = { now, random: Math.random };
  const lists = Object.fromEntries(SIZES.map((n) => [n, candidates(n, now)]));
  const ll = leastLoaded({ staleAfterMs: 3000 });
  const rr = roundRobin();
  const managers = only === CASES[2] ? await managerLookups(now) : {};
  const all = {
    [CASES[0]]: (n) => () => ll.pick(lists[n], ctx),
    [CASES[1]]: (n) => () => rr.pick(lists[n], ctx),
    // A different routing key on every pick (1,024 of them, made up front): the hash and the table read.
    [CASES[3]]: (n) => {
      const ch = consistentHash({ staleAfterMs: 3000 });
      const keys = Array.from({ length: 1024 }, (_, i) => Buffer.from(`user-${i}`));
      const keyed = { ...ctx, routingKey: keys[0], again: false };
      ch.pick(lists[n], keyed); // builds the Maglev table once, outside the timing
      let i = 0;
      return () => {
        keyed.routingKey = keys[i++ & 1023];
        return ch.pick(lists[n], keyed);
      };
    },
  };
  if (!managers.error) {
    all[CASES[2]] = (n) => {
      const { manager, strategy } = managers[n];
      return () => strategy.pick(manager.candidates(1, 0).active, ctx);
    };
  }
  const cases = only in all ? { [only]: all[only] } : {};
  const samples = {};
  for (const name of Object.keys(cases)) samples[name] = Object.fromEntries(SIZES.map((n) => [n, []]));
  for (let r = 0; r < repeats + 1; r++) {
    // Sizes and cases alternate within each repeat; the first repeat only warms up.
    for (const name of Object.keys(cases)) {
      for (const n of r % 2 === 0 ? SIZES : [...SIZES].reverse()) {
        const ns = time(ops, cases[name](n));
        if (r > 0) samples[name][n].push(ns);
      }
    }
  }
  for (const m of Object.values(managers)) m.manager?.close?.();
  return { sizes: SIZES, samples, managerError: managers.error };
});
ready();
