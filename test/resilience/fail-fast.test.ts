import { describe, expect, it } from 'vitest';
import { ECHO_DELAYED } from '../../src/plugins/samples/echo-plugin.js';
import { ChannelClosedError, Status } from '../../src/index.js';
import { CHILD_PLUGIN, HOST, SLOW_IDEMPOTENT, WHO, connectClient, fsInfo, settle, spawnFs, startAs, useCleanup, waitFor, waitForState } from './helpers.js';

// The crash is real: FS child processes killed with SIGKILL, so the kernel closes their sockets
// and nothing in the FS gets a say. The idempotent slow service comes from child-plugin.mjs,
// a plain-JS plugin module the CLI loads next to the bundled echo plugin.
const HB = 200;
const c = useCleanup();

async function cluster(names: string[], asOpts: Parameters<typeof startAs>[1] = {}) {
  const { as, port, controlPort } = await startAs(c, { heartbeatMs: HB, reconnectBaseMs: 50, reconnectCapMs: 300, ...asOpts });
  const args = ['--as', `${HOST}:${controlPort}`, '--port', '0', '--plugins', 'echo', CHILD_PLUGIN, '--heartbeat-ms', String(HB)];
  const procs = names.map((n) => spawnFs(c, n, args));
  await Promise.all(names.map((n) => waitForState(as, n, 'available', 10_000)));
  return { as, client: await connectClient(c, port), procs };
}

describe('when an FS dies with requests pending on it', () => {
  it('answers non-idempotent calls CHANNEL_CLOSED at once, long before their deadline', async () => {
    const { as, client, procs } = await cluster(['fs-k']);
    const calls = Array.from({ length: 5 }, (_, i) => settle(client.call(ECHO_DELAYED, { ms: 2000, value: i }, { timeoutMs: 5000 })));
    await waitFor(() => fsInfo(as, 'fs-k')?.inflight === 5, 'five calls pending on fs-k');
    procs[0].signal('SIGKILL');
    const results = await Promise.all(calls);
    // "At once" is told by who answered and why, not by a wall-clock window: the AS itself, from
    // the lost connection's orphans (CHANNEL_CLOSED), not its deadline sweep (TIMEOUT at 5 s).
    for (const r of results) {
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      expect(r.error).toBeInstanceOf(ChannelClosedError);
      expect(r.error.status).toBe(Status.CHANNEL_CLOSED);
    }
    expect(as.dispatcher.localAnswers.get(Status.CHANNEL_CLOSED)).toBe(5);
    expect(as.dispatcher.localAnswers.get(Status.TIMEOUT) ?? 0).toBe(0);
    expect(as.dispatcher.resent).toBe(0);
    await waitForState(as, 'fs-k', 'unavailable', 2000);
  });

  it('re-sends idempotent calls pending on it to another FS, and they succeed', async () => {
    const { as, client, procs } = await cluster(['fs-x', 'fs-y']);
    const whoAnswered = new Set(await Promise.all(Array.from({ length: 20 }, () => client.call(WHO))));
    expect(whoAnswered).toEqual(new Set(['fs-x', 'fs-y']));

    const calls = Array.from({ length: 12 }, (_, i) => settle(client.call(SLOW_IDEMPOTENT, { ms: 400, value: i }, { timeoutMs: 5000 })));
    await waitFor(() => (fsInfo(as, 'fs-x')?.inflight ?? 0) > 0 && (fsInfo(as, 'fs-y')?.inflight ?? 0) > 0, 'calls pending on both FSs');
    const pendingOnX = fsInfo(as, 'fs-x')?.inflight ?? 0;
    const closedBefore = as.dispatcher.localAnswers.get(Status.CHANNEL_CLOSED) ?? 0;
    procs[0].signal('SIGKILL');
    const results = await Promise.all(calls);

    expect(pendingOnX).toBeGreaterThan(0);
    expect(results.map((r) => (r.ok ? r.value : r.error.message))).toEqual(Array.from({ length: 12 }, (_, i) => i));
    // Re-sent from the lost connection's orphans (one more 400 ms run on fs-y), each once: a call
    // left to the 5 s deadline would have failed with TIMEOUT instead of succeeding.
    expect(as.dispatcher.resent).toBe(pendingOnX);
    expect(as.dispatcher.localAnswers.get(Status.TIMEOUT) ?? 0).toBe(0);
    expect(as.dispatcher.localAnswers.get(Status.CHANNEL_CLOSED) ?? 0).toBe(closedBefore);
    expect(fsInfo(as, 'fs-x')?.state).toBe('unavailable');
  });

  it('does not re-send an idempotent call more often than maxAttempts allows', async () => {
    const { as, client, procs } = await cluster(['fs-x', 'fs-y'], { maxAttempts: 1 });
    const calls = Array.from({ length: 12 }, (_, i) => settle(client.call(SLOW_IDEMPOTENT, { ms: 400, value: i }, { timeoutMs: 5000 })));
    await waitFor(() => (fsInfo(as, 'fs-x')?.inflight ?? 0) > 0, 'calls pending on fs-x');
    const pendingOnX = fsInfo(as, 'fs-x')?.inflight ?? 0;
    procs[0].signal('SIGKILL');
    const results = await Promise.all(calls);
    const closed = results.filter((r) => !r.ok && r.error instanceof ChannelClosedError);
    expect(closed).toHaveLength(pendingOnX);
    expect(as.dispatcher.resent).toBe(0); // one send in all: nothing was re-sent
    expect(as.dispatcher.localAnswers.get(Status.CHANNEL_CLOSED)).toBe(pendingOnX);
    expect(as.dispatcher.localAnswers.get(Status.TIMEOUT) ?? 0).toBe(0);
    expect(results.filter((r) => r.ok)).toHaveLength(12 - pendingOnX);
  });
});
