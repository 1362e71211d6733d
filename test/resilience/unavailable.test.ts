import { describe, expect, it, vi } from 'vitest';
import { ECHO } from '../../src/plugins/samples/echo-plugin.js';
import type { FunctionServerInfo } from '../../src/index.js';
import { freePort } from '../fixtures/ports.js';
import { HOST, connectClient, fsInfo, listenRaw, spawnFs, startAs, startFs, useCleanup, waitForState } from './helpers.js';

const c = useCleanup();

/**
 * Lets real I/O run (setImmediate is not faked) until `cond` holds; fails after `maxMs` of real
 * time. `cond` false forever just lets I/O settle for `maxMs`.
 */
async function settleIo(cond: () => boolean, what: string, maxMs = 3000): Promise<void> {
  const until = performance.now() + maxMs;
  while (!cond()) {
    if (performance.now() > until) {
      if (what === 'nothing') return;
      throw new Error(`timed out after ${maxMs} ms of real time waiting for ${what}`);
    }
    await new Promise((r) => setImmediate(r));
  }
}
const BASE = 40;
const CAP = 200;
const EJECT = 3;

describe('the unavailable list', () => {
  it('ejects after ejectAfterFailures dials, probes one at a time with capped backoff, and re-admits without a request', async () => {
    const { as } = await startAs(c, { heartbeatMs: 200, reconnectBaseMs: BASE, reconnectCapMs: CAP, ejectAfterFailures: EJECT, connectTimeoutMs: 500 });
    // A listener that accepts each dial and drops it at once: a failed dial we can count and time.
    // The clock (setTimeout and Date) is fake and the sockets real: each retry timer fires only
    // when the test advances to it, so every gap between dials is the backoff delay exactly, however
    // busy the machine.
    const attempts: number[] = [];
    let open = 0;
    let maxOpen = 0;
    const refuser = await listenRaw(c, 0, (s) => {
      attempts.push(Date.now());
      maxOpen = Math.max(maxOpen, ++open);
      s.on('close', () => open--);
      setImmediate(() => s.destroy());
    });
    let atEject = -1;
    as.on('fs-state', (i) => {
      if (i.id === 'flaky' && i.state === 'unavailable' && atEject < 0) atEject = attempts.length;
    });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      as.addFunctionServer({ host: HOST, port: refuser.port, name: 'flaky' });
      const pool = as.manager.get('flaky')?.pool;
      if (pool === undefined) throw new Error('flaky has no pool');
      for (let n = 1; n <= 12; n++) {
        // Dial n was accepted and dropped, and the AS saw it fail: its retry timer is now the next timer.
        await settleIo(() => attempts.length === n && pool.consecutiveFailures === n, `dial ${n} to fail`);
        expect(attempts).toHaveLength(n); // one dial at a time: nothing more until the timer fires
        if (n < 12) await vi.advanceTimersToNextTimerAsync();
      }
      expect(atEject).toBe(EJECT);
      const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
      for (const [i, gap] of gaps.entries()) {
        const step = Math.min(CAP, BASE * 2 ** i);
        expect(gap, `gap ${i}`).toBeGreaterThanOrEqual(Math.floor(step / 2));
        expect(gap, `gap ${i}`).toBeLessThanOrEqual(step);
      }
      expect(Math.max(...gaps.slice(6))).toBeGreaterThan(CAP / 2); // it reached the cap
      expect(maxOpen).toBe(1); // one dial in flight at a time

      // Now a real FS listens on that port: the next probe alone re-admits it.
      await new Promise<void>((r) => refuser.server.close(() => r()));
      for (const s of refuser.sockets) s.destroy();
      await startFs(c, 'flaky-fs', undefined, { port: refuser.port, heartbeatMs: 200 });
      await vi.advanceTimersToNextTimerAsync();
      await settleIo(() => fsInfo(as, 'flaky')?.state === 'available', 'flaky to be re-admitted');
      expect(fsInfo(as, 'flaky')?.serviceKeys).toContain(ECHO); // learnt from DESCRIBE
    } finally {
      vi.useRealTimers();
    }
  });

  it('stops probing an FS once it is removed', async () => {
    const { as } = await startAs(c, { heartbeatMs: 200, reconnectBaseMs: BASE, reconnectCapMs: CAP, ejectAfterFailures: EJECT });
    const port = await freePort();
    // On a fake clock from the start, so that the pool's retry timers are fake too and "no more
    // probes" is checked over ten cap periods without waiting for them.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      as.addFunctionServer({ host: HOST, port, name: 'gone' });
      for (let n = 1; fsInfo(as, 'gone')?.state !== 'unavailable'; n++) {
        if (n > EJECT) throw new Error(`still ${fsInfo(as, 'gone')?.state} after ${EJECT} failed dials`);
        await settleIo(() => as.manager.get('gone')?.pool.consecutiveFailures === n, `dial ${n} to fail`);
        if (fsInfo(as, 'gone')?.state !== 'unavailable') await vi.advanceTimersToNextTimerAsync();
      }
      expect(vi.getTimerCount()).toBeGreaterThan(0); // a probe is due
      expect(as.removeFunctionServer('gone')).toBe(true);
      expect(fsInfo(as, 'gone')).toBeUndefined();
      let dials = 0;
      await listenRaw(c, port, () => dials++);
      await vi.advanceTimersByTimeAsync(CAP * 10);
      await settleIo(() => false, 'nothing', 50);
      expect(dials).toBe(0);
    } finally {
      vi.useRealTimers();
    }
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
