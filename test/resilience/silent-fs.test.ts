import { pino } from 'pino';
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
    // The AS's log tells why it dropped the frozen FS's pool connection.
    const logged: { msg?: string; fs?: string; reason?: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logged.push(JSON.parse(line) as (typeof logged)[number]) });
    const { as, port, controlPort } = await startAs(c, { heartbeatMs: HB, connectTimeoutMs: 500, reconnectBaseMs: 50, reconnectCapMs: 300, logger });
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
    // Dubbo's rule: dead after three silent periods, so at least two periods after the last byte.
    // The rule that fired is read from the AS's log rather than guessed from a time window.
    expect(detectMs).toBeGreaterThanOrEqual(2 * HB);
    const downs = logged.filter((l) => l.msg === 'pool connection to function server closed' && l.fs === 'fs-a');
    expect(downs.map((l) => l.reason)).toEqual(['heartbeat']);
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
    let acceptedAtUnavailable = -1;
    as.on('fs-state', (i) => {
      if (i.id !== 'mute') return;
      states.push(i.state);
      if (i.state === 'unavailable' && acceptedAtUnavailable < 0) acceptedAtUnavailable = accepted;
    });
    as.addFunctionServer({ host: HOST, port: mute.port, name: 'mute', services: [{ key: 4040, idempotent: true }] });
    const client = await connectClient(c, port);

    // While the DESCRIBE handshake is still pending: no answer to wait for, so UNAVAILABLE at once.
    const early = await settle(client.call(4040, {}, { timeoutMs: 5000 }));
    expect(fsInfo(as, 'mute')?.state).toBe('connecting');
    expect(early.ok).toBe(false);
    expect(early.ok ? undefined : early.error).toBeInstanceOf(UnavailableError);

    await waitForState(as, 'mute', 'unavailable', 3000);
    // Unavailable after exactly ejectAfterFailures (2) dials whose TCP handshakes succeeded and whose
    // DESCRIBE was never answered.
    expect(acceptedAtUnavailable).toBe(2);

    for (let i = 0; i < 5; i++) {
      const before = as.dispatcher.localAnswers.get(30) ?? 0;
      const r = await settle(client.call(4040, { i }, { timeoutMs: 5000 }));
      expect(r.ok).toBe(false);
      expect(r.ok ? undefined : r.error).toBeInstanceOf(UnavailableError);
      expect(r.ok ? 0 : r.error.status).toBe(30);
      // Fast is told by who answered: the AS, at once, from its registry (a call it had waited on
      // would have ended in TIMEOUT at 5 s).
      expect((as.dispatcher.localAnswers.get(30) ?? 0) - before).toBe(1);
    }
    expect(as.dispatcher.localAnswers.get(40) ?? 0).toBe(0);
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
