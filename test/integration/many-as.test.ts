import { describe, expect, it } from 'vitest';
import { Client } from '../../src/index.js';
import { runBounded, steadyMonitor, tally, waitForRegistry } from '../fixtures/cluster.js';
import { HOST, WHO, startAs, startFs, useCleanup } from '../resilience/helpers.js';

const c = useCleanup();

const CALLS = 1500;
const IN_FLIGHT = 16;

describe('several active ASs', () => {
  it('two ASs, three FSs registered with both, two clients at once: each AS counts its own in-flight and the busy FS gets clearly less', async () => {
    const ass = await Promise.all([startAs(c, { loadRefreshMs: 50 }), startAs(c, { loadRefreshMs: 50 })]);
    const applicationServers = ass.map((a) => ({ host: HOST, port: a.controlPort }));
    for (const [name, elu] of [['busy', 0.9], ['idle-1', 0.1], ['idle-2', 0.1]] as const) {
      await startFs(c, name, undefined, { applicationServers, monitor: steadyMonitor(elu), refreshMs: 50 });
    }
    for (const a of ass) await waitForRegistry(a.as, (l) => l.length === 3 && l.every((f) => f.state === 'available' && f.load !== undefined), 'three available FSs with a load report each');

    // One client per AS, both at the same time.
    const clients = await Promise.all(ass.map((a) => Client.connect({ port: a.port })));
    for (const cl of clients) c.defer(() => cl.close());
    const names: string[][] = [[], []];
    await Promise.all(
      clients.map((cl, i) =>
        runBounded(CALLS, IN_FLIGHT, async () => {
          names[i].push(await cl.call<string>(WHO));
        }),
      ),
    );
    const total = tally([...names[0], ...names[1]]);
    const busy = total.get('busy') ?? 0;
    const idle1 = total.get('idle-1') ?? 0;
    const idle2 = total.get('idle-2') ?? 0;
    expect(busy + idle1 + idle2).toBe(2 * CALLS);
    expect(busy).toBeLessThan(0.5 * idle1);
    expect(busy).toBeLessThan(0.5 * idle2);
    // No herding: the idle FSs share fairly in total, and each AS used both of them.
    expect(Math.abs(idle1 - idle2)).toBeLessThan(0.25 * (idle1 + idle2));
    for (const i of [0, 1]) {
      const per = tally(names[i]);
      expect(per.get('idle-1') ?? 0).toBeGreaterThan(CALLS / 5);
      expect(per.get('idle-2') ?? 0).toBeGreaterThan(CALLS / 5);
      // Each AS's registry counted what went through it, and only that.
      const served = Object.fromEntries(ass[i].as.listFunctionServers().map((f) => [f.name, f.served]));
      expect(served).toEqual({ busy: per.get('busy') ?? 0, 'idle-1': per.get('idle-1') ?? 0, 'idle-2': per.get('idle-2') ?? 0 });
      expect(ass[i].as.listFunctionServers().every((f) => f.inflight === 0)).toBe(true);
    }
  });
});
