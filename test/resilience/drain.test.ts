import { describe, expect, it } from 'vitest';
import { ECHO, ECHO_DELAYED, EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import type { ApplicationServerOptions, FunctionServer, SwitchboardError } from '../../src/index.js';
import { GATED, WHO, connectClient, fsInfo, gatedPlugin, settle, startAs, startFs, steadyLoad, useCleanup, waitFor, waitForLeft, waitForState, whoPlugin } from './helpers.js';

const HB = 200;
const c = useCleanup();

/** An AS and an FS (`name`), and `n` calls held running on it until openGate(). */
async function heldCalls(n: number, asOpts: ApplicationServerOptions, name = 'fs-a') {
  const { as, port, controlPort } = await startAs(c, { heartbeatMs: HB, ...asOpts });
  let openGate!: () => void;
  const gate = new Promise<void>((r) => (openGate = r));
  c.defer(() => openGate());
  const a = await startFs(c, name, controlPort, { heartbeatMs: HB, plugins: [EchoPlugin, whoPlugin(name), gatedPlugin(gate)] });
  await waitForState(as, name, 'available');
  const client = await connectClient(c, port);
  const inflight = Array.from({ length: n }, (_, i) => settle(client.call(GATED, { value: i }, { timeoutMs: 5000 })));
  await waitFor(() => a.inflight === n, `${n} calls running on ${name}`);
  return { as, controlPort, a, client, inflight, openGate };
}

describe('graceful drain', () => {
  it('FS.stop() under load: the AS stops choosing it at once, its in-flight calls finish OK, then it closes', async () => {
    // The in-flight calls are held until the test opens the gate: "at once" is then an order of
    // events (draining while all six are still held), not a time window.
    const { as, controlPort, a, client, inflight, openGate } = await heldCalls(6, {});
    await startFs(c, 'fs-b', controlPort, { heartbeatMs: HB });
    await waitForState(as, 'fs-b', 'available');

    const draining = waitForState(as, 'fs-a', 'draining', 3000);
    const left = waitForLeft(as, 'fs-a', 3000);
    const stopped = a.stop();
    const atDrain = await draining;
    expect(atDrain.inflight).toBe(6); // the AS saw the drain while all six were still held
    // From now on every new call goes elsewhere.
    const after = await Promise.all(Array.from({ length: 20 }, () => client.call(WHO)));
    expect(new Set(after)).toEqual(new Set(['fs-b']));
    expect(a.inflight).toBe(6);
    expect(fsInfo(as, 'fs-a')?.state).toBe('draining');

    openGate();
    const results = await Promise.all(inflight);
    expect(results.map((r) => (r.ok ? r.value : r.error.message))).toEqual([0, 1, 2, 3, 4, 5]);
    await stopped;
    expect(a.inflight).toBe(0);
    expect(a.connectionCount).toBe(0);
    expect(await left).toBe('drained');
  });

  it('AS.stop() with calls in flight: they finish OK; new calls meanwhile get UNAVAILABLE (did not run); then the port closes', async () => {
    const { as, a, client, inflight, openGate } = await heldCalls(4, { clientDrainTimeoutMs: 5000 });

    let stopped = false;
    const stopping = as.stop().then(() => (stopped = true));
    await waitFor(() => as.dispatcher.stopping !== null, 'the AS to start stopping');
    // A new call on the open connection is refused, and never reaches the FS.
    const refused = await settle(client.call(ECHO, 'late', { timeoutMs: 2000 }));
    expect(refused.ok ? 'answered' : (refused.error as SwitchboardError).code).toBe('SB_ERR_UNAVAILABLE');
    expect(a.inflight).toBe(4);
    expect(stopped).toBe(false); // waiting for the four

    openGate();
    const results = await Promise.all(inflight);
    expect(results.map((r) => (r.ok ? r.value : r.error.message))).toEqual([0, 1, 2, 3]);
    await stopping;
    await waitFor(() => !client.connected, 'the client connection to close');
  });

  it('rolling restart of three FSs under steady mixed load gives the client zero errors', async () => {
    const { as, port, controlPort } = await startAs(c, { heartbeatMs: HB });
    const names = ['fs-0', 'fs-1', 'fs-2'];
    const fss: FunctionServer[] = [];
    for (const n of names) fss.push(await startFs(c, n, controlPort, { heartbeatMs: HB }));
    await Promise.all(names.map((n) => waitForState(as, n, 'available')));
    const client = await connectClient(c, port);
    const load = steadyLoad(8, (i) =>
      i % 2 === 0
        ? client.call(ECHO, { i }, { timeoutMs: 5000 })
        : client.call(ECHO_DELAYED, { ms: 5 + (i % 4) * 10, value: i }, { timeoutMs: 5000 }).then((v) => {
            if (v !== i) throw new Error(`call ${i} answered ${String(v)}`);
          }),
    );
    c.defer(() => load.stop());
    await waitFor(() => load.ok() > 50, 'load to flow');

    for (const [i, name] of names.entries()) {
      const okBefore = load.ok();
      await fss[i].stop();
      fss[i] = await startFs(c, name, controlPort, { heartbeatMs: HB });
      await waitForState(as, name, 'available', 3000);
      await waitFor(() => load.ok() > okBefore + 100, `load to flow after restarting ${name}`);
    }
    const result = await load.stop();
    expect(result.errors).toEqual([]);
    expect(result.ok).toBeGreaterThan(300);
    expect(names.map((n) => fsInfo(as, n)?.state)).toEqual(['available', 'available', 'available']);
  });

  it('a successor registering under the same name does not cut short the in-flight calls of the FS still draining', async () => {
    const { as, controlPort, a: old, inflight, openGate } = await heldCalls(3, {}, 'fs-r');
    const stopped = old.stop();
    await waitForState(as, 'fs-r', 'draining', 3000);
    // The new process starts (on a new port) while the old one is still finishing its work: its
    // three calls are held until the successor is registered and available.
    await startFs(c, 'fs-r', controlPort, { heartbeatMs: HB });
    await waitForState(as, 'fs-r', 'available', 3000);
    expect(old.inflight).toBe(3);
    openGate();
    const results = await Promise.all(inflight);
    expect(results.map((r) => (r.ok ? r.value : `${r.error.constructor.name}: ${r.error.message}`))).toEqual([0, 1, 2]);
    await stopped;
  });
});
