import { describe, expect, it } from 'vitest';
import { ECHO } from '../../src/plugins/samples/echo-plugin.js';
import type { FunctionServerInfo } from '../../src/index.js';
import { HOST, connectClient, freePort, fsInfo, listenRaw, spawnFs, startAs, startFs, useCleanup, waitFor, waitForState } from './helpers.js';

const c = useCleanup();
const BASE = 40;
const CAP = 200;
const EJECT = 3;

describe('the unavailable list', () => {
  it('ejects after ejectAfterFailures dials, probes one at a time with capped backoff, and re-admits without a request', async () => {
    const { as } = await startAs(c, { heartbeatMs: 200, reconnectBaseMs: BASE, reconnectCapMs: CAP, ejectAfterFailures: EJECT, connectTimeoutMs: 500 });
    // A listener that accepts each dial and drops it at once: a failed dial we can count and time.
    const attempts: number[] = [];
    let open = 0;
    let maxOpen = 0;
    const refuser = await listenRaw(c, 0, (s) => {
      attempts.push(performance.now());
      maxOpen = Math.max(maxOpen, ++open);
      s.on('close', () => open--);
      setImmediate(() => s.destroy());
    });
    let atEject = -1;
    as.on('fs-state', (i) => {
      if (i.id === 'flaky' && i.state === 'unavailable' && atEject < 0) atEject = attempts.length;
    });
    as.addFunctionServer({ host: HOST, port: refuser.port, name: 'flaky' });
    await waitForState(as, 'flaky', 'unavailable', 2000);
    expect(atEject).toBe(EJECT);

    // Keep watching the probes for a while: spaced by at least half a step, never longer apart than the cap (plus slack).
    await waitFor(() => attempts.length >= 12, 'a dozen probes', 4000);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
    for (const [i, gap] of gaps.entries()) {
      const step = Math.min(CAP, BASE * 2 ** i);
      expect(gap, `gap ${i}`).toBeGreaterThanOrEqual(step / 2 - 5);
      expect(gap, `gap ${i}`).toBeLessThanOrEqual(CAP + 100);
    }
    expect(Math.max(...gaps.slice(6))).toBeGreaterThanOrEqual(CAP / 2 - 5); // it reached the cap
    expect(maxOpen).toBe(1); // one dial in flight at a time

    // Now a real FS listens on that port: the probe loop alone re-admits it.
    await new Promise<void>((r) => refuser.server.close(() => r()));
    for (const s of refuser.sockets) s.destroy();
    await startFs(c, 'flaky-fs', undefined, { port: refuser.port, heartbeatMs: 200 });
    const back = await waitForState(as, 'flaky', 'available', 3000);
    expect(back.serviceKeys).toContain(ECHO); // learnt from DESCRIBE
  });

  it('stops probing an FS once it is removed', async () => {
    const { as } = await startAs(c, { heartbeatMs: 200, reconnectBaseMs: BASE, reconnectCapMs: CAP, ejectAfterFailures: EJECT });
    const port = await freePort();
    as.addFunctionServer({ host: HOST, port, name: 'gone' });
    await waitForState(as, 'gone', 'unavailable', 2000);
    expect(as.removeFunctionServer('gone')).toBe(true);
    expect(fsInfo(as, 'gone')).toBeUndefined();
    let dials = 0;
    await listenRaw(c, port, () => dials++);
    // A probe was due within one cap period; wait three and a half.
    await new Promise((r) => setTimeout(r, CAP * 3.5));
    expect(dials).toBe(0);
  });

  it('marks an FS whose process dies unavailable with an fs-state event, and re-admits its successor on the same port', async () => {
    const { as, port } = await startAs(c, { heartbeatMs: 200, reconnectBaseMs: BASE, reconnectCapMs: CAP });
    const fsPort = await freePort();
    const args = ['--port', String(fsPort), '--plugins', 'echo', '--heartbeat-ms', '200']; // no --as: added by address
    const first = spawnFs(c, 'fs-d', args);
    await first.waitForLog('function server listening', 10_000);
    as.addFunctionServer({ host: HOST, port: fsPort });
    const id = `${HOST}:${fsPort}`;
    await waitForState(as, id, 'available', 3000);
    const client = await connectClient(c, port);
    expect(await client.call(ECHO, 'before')).toBe('before');

    const events: [FunctionServerInfo, string][] = [];
    as.on('fs-state', (info, from) => events.push([info, from]));
    first.signal('SIGKILL');
    await waitForState(as, id, 'unavailable', 2000);
    expect(events.map(([i, from]) => [i.id, from, i.state])).toEqual([[id, 'available', 'unavailable']]);
    await first.exited();

    const second = spawnFs(c, 'fs-d2', args);
    await second.waitForLog('function server listening', 10_000);
    await waitForState(as, id, 'available', 3000);
    expect(await client.call(ECHO, 'after')).toBe('after');
  });
});
