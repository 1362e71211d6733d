import { describe, expect, it } from 'vitest';
import type { ApplicationServerOptions } from '../../src/index.js';
import { runBounded, steadyMonitor, tally, useHarness, waitForRegistry } from '../fixtures/cluster.js';
import { WHO_AM_I } from '../fixtures/test-plugins.js';

const h = useHarness();

const CALLS = 3000;
const IN_FLIGHT = 16;

/** One busy FS (elu and cpu 0.9) and two idle ones (0.1), each reporting load every 50 ms. */
async function startThree(asOpts: ApplicationServerOptions): Promise<void> {
  await h.cluster({ loadRefreshMs: 50, ...asOpts }, [
    { name: 'busy', monitor: steadyMonitor(0.9), refreshMs: 50 },
    { name: 'idle-1', monitor: steadyMonitor(0.1), refreshMs: 50 },
    { name: 'idle-2', monitor: steadyMonitor(0.1), refreshMs: 50 },
  ]);
  await waitForRegistry(h.as, (l) => l.length === 3 && l.every((f) => f.load !== undefined), 'a load report from each FS');
  const busy = h.as.listFunctionServers().find((f) => f.name === 'busy');
  expect(busy?.load?.elu).toBe(0.9);
  expect(busy?.loadScore).toBe(0.9);
}

/** Sends CALLS who-am-i calls, IN_FLIGHT at a time, and counts where they landed. */
async function spread(): Promise<Map<string, number>> {
  const c = await h.client();
  const names: string[] = [];
  await runBounded(CALLS, IN_FLIGHT, async () => {
    names.push(await c.call<string>(WHO_AM_I));
  });
  expect(names).toHaveLength(CALLS);
  return tally(names);
}

describe('load balancing', () => {
  it('least-loaded sends clearly fewer calls to the FS that reports high load', async () => {
    await startThree({});
    const counts = await spread();
    const busy = counts.get('busy') ?? 0;
    const idle1 = counts.get('idle-1') ?? 0;
    const idle2 = counts.get('idle-2') ?? 0;
    expect(busy + idle1 + idle2).toBe(CALLS);
    expect(busy).toBeLessThan(0.5 * idle1);
    expect(busy).toBeLessThan(0.5 * idle2);
    // The idle pair shares its part fairly.
    expect(Math.abs(idle1 - idle2)).toBeLessThan(0.2 * (idle1 + idle2));
    // Served counts in the registry agree with what the plugin saw.
    const served = Object.fromEntries(h.as.listFunctionServers().map((f) => [f.name, f.served]));
    expect(served).toEqual({ busy, 'idle-1': idle1, 'idle-2': idle2 });
  });

  it('round-robin ignores load and spreads calls evenly', async () => {
    await startThree({ strategy: 'round-robin' });
    const counts = await spread();
    for (const name of ['busy', 'idle-1', 'idle-2']) {
      const n = counts.get(name) ?? 0;
      expect(n).toBeGreaterThanOrEqual((CALLS / 3) * 0.9);
      expect(n).toBeLessThanOrEqual((CALLS / 3) * 1.1);
    }
  });

  it('least-loaded still uses every FS when all report the same load', async () => {
    await h.cluster({ loadRefreshMs: 50 }, [
      { name: 'a', refreshMs: 50 },
      { name: 'b', refreshMs: 50 },
      { name: 'c', refreshMs: 50 },
    ]);
    await waitForRegistry(h.as, (l) => l.every((f) => f.load !== undefined), 'a load report from each FS');
    const counts = await spread();
    for (const name of ['a', 'b', 'c']) expect(counts.get(name) ?? 0).toBeGreaterThan(CALLS / 6);
  });
});
