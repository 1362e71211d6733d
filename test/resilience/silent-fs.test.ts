import { describe, expect, it } from 'vitest';
import { ECHO } from '../../src/plugins/samples/echo-plugin.js';
import { UnavailableError, type FsState } from '../../src/index.js';
import {
  HOST,
  connectClient,
  fsInfo,
  listenRaw,
  servedBy,
  settle,
  spawnFs,
  startAs,
  steadyLoad,
  useCleanup,
  waitFor,
  waitForState,
} from './helpers.js';

// A silent peer keeps its socket open and says nothing: the kernel still completes handshakes and
// ACKs bytes, so only heartbeats can tell it from a slow one.
const HB = 200;
const c = useCleanup();

describe('a function server that goes silent with its socket open', () => {
  it('SIGSTOP: is marked unavailable within a few heartbeats, loses no idempotent call, and is re-admitted after SIGCONT', async () => {
    const { as, port, controlPort } = await startAs(c, { heartbeatMs: HB, connectTimeoutMs: 500, reconnectBaseMs: 50, reconnectCapMs: 300 });
    const args = ['--as', `${HOST}:${controlPort}`, '--port', '0', '--plugins', 'echo', '--heartbeat-ms', String(HB), '--refresh-ms', '200'];
    const a = spawnFs(c, 'fs-a', args);
    spawnFs(c, 'fs-b', args);
    await Promise.all([waitForState(as, 'fs-a', 'available', 10_000), waitForState(as, 'fs-b', 'available', 10_000)]);

    const client = await connectClient(c, port);
    const load = steadyLoad(6, (i) =>
      client.call(ECHO, { i }, { timeoutMs: 5000 }).then((v) => {
        if ((v as { i: number }).i !== i) throw new Error(`call ${i} got the answer of another call: ${JSON.stringify(v)}`);
      }),
    );
    c.defer(() => load.stop());
    await waitFor(() => servedBy(as, 'fs-a') > 20 && servedBy(as, 'fs-b') > 20, 'both FSs to serve traffic');

    const unavailable = waitForState(as, 'fs-a', 'unavailable', 3000);
    const frozenAt = performance.now();
    process.kill(a.pid, 'SIGSTOP');
    const info = await unavailable;
    const detectMs = performance.now() - frozenAt;
    // Dubbo's rule: dead after three silent periods, so between two and four periods after the last byte.
    expect(detectMs).toBeGreaterThanOrEqual(2 * HB);
    expect(detectMs).toBeLessThan(1500);
    // Calls were pending on the frozen FS when it was declared dead (the 'fs-state' snapshot precedes their re-send).
    expect(info.inflight).toBeGreaterThan(0);

    // The other FS carries everything meanwhile.
    const bBefore = servedBy(as, 'fs-b');
    await waitFor(() => servedBy(as, 'fs-b') > bBefore + 50, 'fs-b to keep serving');
    expect(load.ok()).toBeGreaterThan(0);

    const resumedAt = performance.now();
    process.kill(a.pid, 'SIGCONT');
    await waitForState(as, 'fs-a', 'available', 5000);
    const readmitMs = performance.now() - resumedAt;
    expect(readmitMs).toBeLessThan(3000);
    const aBefore = servedBy(as, 'fs-a');
    await waitFor(() => servedBy(as, 'fs-a') > aBefore + 20, 'fs-a to get traffic again', 3000);

    const result = await load.stop();
    expect(result.errors).toEqual([]);
    expect(result.ok).toBeGreaterThan(100);
    console.info(`SIGSTOP detected in ${detectMs.toFixed(0)} ms (${info.inflight} calls pending on it), re-admitted ${readmitMs.toFixed(0)} ms after SIGCONT`);
  });

  it('a peer that accepts and then never reads or writes never becomes available, and its key fails fast with UNAVAILABLE', async () => {
    const { as, port } = await startAs(c, { heartbeatMs: HB, connectTimeoutMs: 300, ejectAfterFailures: 2, reconnectBaseMs: 50, reconnectCapMs: 200 });
    let accepted = 0;
    const mute = await listenRaw(c, 0, (s) => {
      accepted++;
      s.pause(); // hold it open, read nothing, write nothing
    });
    const states: FsState[] = [];
    as.on('fs-state', (i) => {
      if (i.id === 'mute') states.push(i.state);
    });
    as.addFunctionServer({ host: HOST, port: mute.port, name: 'mute', services: [{ key: 4040, idempotent: true }] });
    const client = await connectClient(c, port);

    // While the DESCRIBE handshake is still pending: no answer to wait for, so UNAVAILABLE at once.
    const early = await settle(client.call(4040, {}, { timeoutMs: 5000 }));
    expect(fsInfo(as, 'mute')?.state).toBe('connecting');
    expect(early.ok).toBe(false);
    expect(early.ok ? undefined : early.error).toBeInstanceOf(UnavailableError);

    const t0 = performance.now();
    await waitForState(as, 'mute', 'unavailable', 3000);
    expect(accepted).toBeGreaterThanOrEqual(2); // it was dialled, and the TCP handshakes succeeded
    expect(performance.now() - t0).toBeLessThan(2000);

    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const r = await settle(client.call(4040, { i }, { timeoutMs: 5000 }));
      expect(r.ok).toBe(false);
      expect(r.ok ? undefined : r.error).toBeInstanceOf(UnavailableError);
      expect(r.ok ? 0 : r.error.status).toBe(30);
      expect(r.at - started).toBeLessThan(200);
    }
    // Probing goes on, but a handshake that never completes never admits it.
    await waitFor(() => accepted >= 4, 'more probes of the mute peer', 3000);
    expect(states).not.toContain('available');
  });

  it('a busy FS (event loop 90% busy) is loaded, not dead: it stays available for ten heartbeat periods', async () => {
    const { as, port, controlPort } = await startAs(c, { heartbeatMs: HB, loadRefreshMs: 200 });
    const states: FsState[] = [];
    as.on('fs-state', (i) => {
      if (i.id === 'fs-busy') states.push(i.state);
    });
    spawnFs(c, 'fs-busy', ['--as', `${HOST}:${controlPort}`, '--port', '0', '--plugins', 'echo', '--heartbeat-ms', String(HB), '--refresh-ms', '200', '--busy', '0.9']);
    await waitForState(as, 'fs-busy', 'available', 10_000);
    const client = await connectClient(c, port);
    const until = performance.now() + 10 * HB;
    let answered = 0;
    while (performance.now() < until) {
      expect(await client.call(ECHO, answered, { timeoutMs: 2000 })).toBe(answered);
      answered++;
      await new Promise((r) => setTimeout(r, 20));
    }
    await waitFor(() => (fsInfo(as, 'fs-busy')?.loadScore ?? 0) > 0.5, 'its LOAD reports to show it busy');
    expect(states).toEqual(['available']);
    expect(answered).toBeGreaterThan(10);
  });
});
