import 'reflect-metadata';
import { describe, expect, it, vi } from 'vitest';
import { EventKind, Plugin, Service, Status, type ApplicationServer, type ApplicationServerOptions, type Client, type FsState } from '../../src/index.js';
import { ECHO, ECHO_DELAYED, EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { expectTrafficUnharmed, runBounded, useHarness, waitFor, waitForAvailable, waitForRegistry } from '../fixtures/cluster.js';
import { FaultyPlugin, THROWS_CUSTOM, THROWS_PLAIN, WhoAmIPlugin } from '../fixtures/test-plugins.js';
import { ControlPeer, failure, FakeFs, fsInfo, helloFor, loadOf, steadyBackground } from './registry-fixtures.js';

// Outlier detection takes an FS that keeps failing out of scheduling for a while, though its
// connections look healthy, and never for what is not the FS's fault (a client's tiny budget, a
// plugin's own error). Every test keeps a good client calling echo and checks its answers.

const h = useHarness();

/** Key of the flaky service: answers its call number, or (on failing calls) a value msgpack cannot encode. */
const FLAKY = 60;
/** Key served only by black holes in the maxEjectionPercent test. */
const HOLE_ONLY = 50;

/** A plugin whose every `failEvery`-th call returns 2^70 as a BigInt: the FS answers SERVER_ERROR. 0 never fails. */
function flakyPlugin(failEvery: number): unknown {
  let n = 0;
  @Plugin({ name: 'flaky' })
  class Flaky {
    @Service(FLAKY)
    call(): number | bigint {
      n++;
      return failEvery > 0 && n % failEvery === 0 ? 2n ** 70n : n;
    }
  }
  return Flaky;
}

type Outlier = NonNullable<ApplicationServerOptions['outlier']>;

/** Resolves with performance.now() on the 'fs-state' event putting `id` in `state`. */
function whenState(as: ApplicationServer, id: string, state: FsState, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const on = (i: { id: string; state: FsState }): void => {
      if (i.id !== id || i.state !== state) return;
      clearTimeout(timer);
      as.off('fs-state', on);
      resolve(performance.now());
    };
    const timer = setTimeout(() => {
      as.off('fs-state', on);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${id} to be ${state} (now ${fsInfo(as, id)?.state ?? 'absent'}, failures ${fsInfo(as, id)?.failures})`));
    }, timeoutMs);
    as.on('fs-state', on);
  });
}

/**
 * A black hole registered by its own control link: it answers heartbeats and DESCRIBE, swallows
 * every request, and (lying) reports itself idle so that the least-loaded scheduler likes it.
 */
async function blackHole(name: string, keys: number[], opts: { lie?: boolean } = {}): Promise<FakeFs> {
  const hole = await FakeFs.start(h, { name, services: keys.map((key) => ({ key })) });
  const ctl = await ControlPeer.connect(h);
  const answer = await ctl.hello(helloFor(name, hole.endpoint, keys));
  expect(answer.status).toBe(Status.OK);
  if (opts.lie !== false) {
    ctl.send(EventKind.LOAD, loadOf(0));
    const t = setInterval(() => ctl.send(EventKind.LOAD, loadOf(0)), 300);
    h.defer(() => clearInterval(t));
  }
  await waitForRegistry(h.as, (l) => l.find((f) => f.id === name)?.state === 'available', `${name} available`);
  return hole;
}

interface Probe {
  calls: { at: number; ok: boolean; code?: string }[];
  stop(): Promise<void>;
}

/** `lanes` callers of `key` with a short deadline, each call stamped with when it started. */
function probe(c: Client, key: number, lanes: number, timeoutMs: number, body: (i: number) => unknown): Probe {
  let stopped = false;
  let i = 0;
  const calls: Probe['calls'] = [];
  const lane = async (): Promise<void> => {
    while (!stopped && i < 20_000) {
      const n = i++;
      const at = performance.now();
      try {
        await c.call(key, body(n), { timeoutMs });
        calls.push({ at, ok: true });
      } catch (err) {
        calls.push({ at, ok: false, code: (err as { code?: string }).code });
      }
    }
  };
  const running = Promise.all(Array.from({ length: lanes }, lane));
  return {
    calls,
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

describe('a black hole (answers heartbeats and DESCRIBE, never requests)', () => {
  const OUTLIER: Outlier = { consecutiveFailures: 5, baseEjectionMs: 2000, minTimeoutMs: 100 };

  it('is ejected within seconds under steady load with short deadlines; afterwards the good client gets only answers', async () => {
    await h.cluster({ outlier: OUTLIER }, [{ name: 'fs-1' }, { name: 'fs-2' }]);
    const hole = await blackHole('fs-hole', [ECHO_DELAYED]);
    const bg = await steadyBackground(h);
    const c = await h.client();

    const ejected = whenState(h.as, 'fs-hole', 'ejected', 8000);
    const t0 = performance.now();
    const p = probe(c, ECHO_DELAYED, 4, 300, (i) => ({ ms: 0, value: i }));
    const ejectedAt = await ejected;
    await waitFor(() => p.calls.filter((x) => x.at > ejectedAt).length >= 200, '200 calls started after the ejection', 5000);
    await p.stop();

    const before = p.calls.filter((x) => x.at <= ejectedAt);
    const after = p.calls.filter((x) => x.at > ejectedAt);
    const failedBefore = before.filter((x) => !x.ok);
    const failedAfter = after.filter((x) => !x.ok);
    console.log(
      `black hole ejected ${(ejectedAt - t0).toFixed(0)} ms after load began; good client: ${failedBefore.length} failed of ${before.length} before, ` +
        `${failedAfter.length} failed of ${after.length} after; the hole swallowed ${hole.requests.length} requests`,
    );
    expect(h.as.manager.counters.ejections).toBe(1);
    const info = fsInfo(h.as, 'fs-hole');
    expect(info?.state).toBe('ejected');
    expect(info?.ejections).toBe(1);
    expect(info?.failures).toBeGreaterThanOrEqual(5);
    expect(failedBefore.length).toBeGreaterThanOrEqual(5);
    expect(new Set(failedBefore.map((x) => x.code))).toEqual(new Set(['SB_ERR_TIMEOUT']));
    expect(failedAfter).toEqual([]);
    expect(ejectedAt - t0).toBeLessThan(5000);
    expect(fsInfo(h.as, 'fs-1')?.state).toBe('available');
    expect(fsInfo(h.as, 'fs-2')?.state).toBe('available');
    await expectTrafficUnharmed(bg);
  });

  it('comes back after its ejection time and, still a black hole, is ejected again for longer', async () => {
    await h.cluster({ outlier: OUTLIER }, [{ name: 'fs-1' }, { name: 'fs-2' }]);
    await blackHole('fs-hole', [ECHO_DELAYED]);
    const bg = await steadyBackground(h);
    const c = await h.client();
    const entry = (): NonNullable<ReturnType<typeof h.as.manager.get>> => h.as.manager.get('fs-hole') as NonNullable<ReturnType<typeof h.as.manager.get>>;
    const seen: FsState[] = [];
    h.as.on('fs-state', (i) => {
      if (i.id === 'fs-hole') seen.push(i.state);
    });

    const first = whenState(h.as, 'fs-hole', 'ejected', 8000);
    const p = probe(c, ECHO_DELAYED, 4, 300, (i) => ({ ms: 0, value: i }));
    const t1 = await first;
    const firstMs = entry().outlier.ejectedUntil - Date.now();
    const back = await whenState(h.as, 'fs-hole', 'available', 4000);
    const carried = entry().outlier.consecutiveFailures;
    const t3 = await whenState(h.as, 'fs-hole', 'ejected', 4000);
    const secondMs = entry().outlier.ejectedUntil - Date.now();
    await p.stop();

    console.log(
      `first ejection ${firstMs} ms (back after ${(back - t1).toFixed(0)} ms), second ejection ${secondMs} ms, ${(t3 - back).toFixed(0)} ms after it came back ` +
        `(consecutive failures carried over the ejection: ${carried})`,
    );
    expect(seen).toEqual(['ejected', 'available', 'ejected']);
    expect(back - t1).toBeGreaterThanOrEqual(1900);
    expect(firstMs).toBeGreaterThan(1800);
    expect(firstMs).toBeLessThanOrEqual(2000);
    expect(secondMs).toBeGreaterThan(3800); // base × 2
    expect(secondMs).toBeLessThanOrEqual(4000);
    expect(fsInfo(h.as, 'fs-hole')?.ejections).toBe(2);
    expect(h.as.manager.counters.ejections).toBe(2);
    await expectTrafficUnharmed(bg);
  });

  it('maxEjectionPercent 50: of two black holes serving a key, only one is ejected', async () => {
    await h.cluster({ outlier: { ...OUTLIER, maxEjectionPercent: 50, baseEjectionMs: 10_000 } }, [{ name: 'fs-1' }]);
    await blackHole('fs-hole-a', [HOLE_ONLY], { lie: false });
    await blackHole('fs-hole-b', [HOLE_ONLY], { lie: false });
    const bg = await steadyBackground(h);
    const c = await h.client();

    const ejectedOne = new Promise<string>((resolve) => h.as.on('fs-state', (i) => i.state === 'ejected' && resolve(i.id)));
    const p = probe(c, HOLE_ONLY, 6, 300, () => ({}));
    const first = await ejectedOne;
    const other = first === 'fs-hole-a' ? 'fs-hole-b' : 'fs-hole-a';
    const failuresAtEjection = fsInfo(h.as, other)?.failures ?? 0;
    // The other keeps failing, three times the threshold and more, and stays in.
    await waitFor(() => (fsInfo(h.as, other)?.failures ?? 0) >= failuresAtEjection + 15, `15 more failures of ${other}`, 5000);
    await p.stop();
    expect(h.as.manager.counters.ejections).toBe(1);
    expect(fsInfo(h.as, first)?.state).toBe('ejected');
    expect(fsInfo(h.as, other)?.state).toBe('available');
    expect(fsInfo(h.as, other)?.ejections).toBe(0);
    expect(fsInfo(h.as, 'fs-1')?.state).toBe('available');
    await expectTrafficUnharmed(bg);
  });
});

describe('what must never eject', () => {
  it('a client asking for 5 ms answers from a slow-but-healthy FS gets TIMEOUTs, and the FS is not ejected (minTimeoutMs 1000)', async () => {
    await h.cluster({ outlier: { consecutiveFailures: 5 } }, [{ name: 'fs-1' }, { name: 'fs-2' }]);
    const bg = await steadyBackground(h);
    const c = await h.client();

    const errors: (Error & { code?: string })[] = [];
    await runBounded(60, 8, async (i) => {
      errors.push(await failure(c.call(ECHO_DELAYED, { ms: 50, value: i }, { timeoutMs: 5 })));
    });
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['SB_ERR_TIMEOUT']));
    expect(errors).toHaveLength(60);
    expect(h.as.manager.counters.ejections).toBe(0);
    for (const id of ['fs-1', 'fs-2']) {
      expect(fsInfo(h.as, id)?.state).toBe('available');
      expect(fsInfo(h.as, id)?.failures).toBe(0);
    }
    // The same FSs answer a caller who gives them time.
    expect(await c.call(ECHO_DELAYED, { ms: 50, value: 'ok' }, { timeoutMs: 2000 })).toBe('ok');
    await expectTrafficUnharmed(bg);
  });

  it("a plugin's own errors (SERVICE_ERROR) never eject", async () => {
    await h.cluster({ outlier: { consecutiveFailures: 5 } }, [
      { name: 'fs-1', plugins: [EchoPlugin, WhoAmIPlugin, FaultyPlugin] },
      { name: 'fs-2', plugins: [EchoPlugin, WhoAmIPlugin, FaultyPlugin] },
    ]);
    const bg = await steadyBackground(h);
    const c = await h.client();

    const errors: (Error & { code?: string; status?: number })[] = [];
    await runBounded(80, 8, async (i) => {
      errors.push(await failure(c.call(i % 2 === 0 ? THROWS_PLAIN : THROWS_CUSTOM, {})));
    });
    expect(new Set(errors.map((e) => e.status))).toEqual(new Set([Status.SERVICE_ERROR]));
    expect(h.as.dispatcher.relayedAnswers[Status.SERVICE_ERROR]).toBe(80);
    expect(h.as.manager.counters.ejections).toBe(0);
    for (const id of ['fs-1', 'fs-2']) {
      expect(fsInfo(h.as, id)?.state).toBe('available');
      expect(fsInfo(h.as, id)?.failures).toBe(0);
    }
    await expectTrafficUnharmed(bg);
  });
});

describe('success-rate ejection', () => {
  const SR: Outlier = { consecutiveFailures: 0, successRateMinHosts: 3, successRateMinRequests: 20, intervalMs: 500 };

  /** `good` healthy FSs and one failing every other call, all serving FLAKY; resolves once the flaky one is ejected. */
  async function flakyAmong(good: number, outlier: Outlier): Promise<{ ejectedAfterMs: number; calls: number }> {
    const names = Array.from({ length: good }, (_, i) => `fs-${i + 1}`);
    await h.cluster({ outlier }, [
      ...names.map((name) => ({ name, plugins: [EchoPlugin, WhoAmIPlugin, flakyPlugin(0)] })),
      { name: 'fs-flaky', plugins: [EchoPlugin, WhoAmIPlugin, flakyPlugin(2)] },
    ]);
    const bg = await steadyBackground(h);
    const c = await h.client();
    const ejected = whenState(h.as, 'fs-flaky', 'ejected', 4000);
    const t0 = performance.now();
    const p = probe(c, FLAKY, 8, 2000, () => undefined);
    let ejectedAt: number;
    try {
      ejectedAt = await ejected;
    } finally {
      await p.stop();
    }
    const failed = p.calls.filter((x) => !x.ok);
    expect(new Set(failed.map((x) => x.code))).toEqual(new Set(['SB_ERR_SERVER']));
    expect(h.as.manager.counters.ejections).toBe(1);
    for (const n of names) expect(fsInfo(h.as, n)?.state).toBe('available');
    await expectTrafficUnharmed(bg);
    return { ejectedAfterMs: ejectedAt - t0, calls: p.calls.length };
  }

  it('of four FSs, the one failing ~50% with SERVER_ERROR is ejected', async () => {
    const r = await flakyAmong(3, SR);
    console.log(`success-rate ejection among 4: after ${r.ejectedAfterMs.toFixed(0)} ms, ${r.calls} calls`);
  });

  it('of six FSs, the one failing ~50% with SERVER_ERROR is ejected', async () => {
    const r = await flakyAmong(5, SR);
    console.log(`success-rate ejection among 6: after ${r.ejectedAfterMs.toFixed(0)} ms, ${r.calls} calls`);
  });

  it('the success-rate window is intervalMs even when forgetUnavailableAfterMs makes the sweep run more often', async () => {
    await h.cluster({ forgetUnavailableAfterMs: 300, outlier: { ...SR, intervalMs: 10_000 } }, [{ name: 'fs-1' }, { name: 'fs-2' }, { name: 'fs-3' }]);
    await waitForAvailable(h.as, 3);
    const c = await h.client();
    await runBounded(90, 6, async (i) => {
      await c.call(ECHO, { i });
    });
    const counted = (): number => ['fs-1', 'fs-2', 'fs-3'].reduce((a, id) => a + (h.as.manager.get(id)?.outlier.ok ?? 0), 0);
    expect(counted()).toBeGreaterThanOrEqual(90);
    const sweep = vi.spyOn(h.as.manager, 'sweep');
    h.defer(() => sweep.mockRestore());
    await waitFor(() => sweep.mock.calls.length >= 2, 'two registry sweeps (every forgetUnavailableAfterMs / 4)');
    // Well within the 10 s interval: the answers counted so far are still in its window.
    expect(counted()).toBeGreaterThanOrEqual(90);
    await expectTrafficUnharmed(await steadyBackground(h));
  });
});
