import { describe, expect, it } from 'vitest';
import { ChannelClosedError, Client } from '../../src/index.js';
import { CHILD_PLUGIN, HOST, SLOW_IDEMPOTENT, WHO, fsInfo, settle, spawnFs, startAs, useCleanup, waitFor, waitForState } from './helpers.js';

// Director mode under a real crash: FS child processes killed with SIGKILL while a direct client
// has calls pending on them. The AS carries none of these calls; the client's router does the work.
const HB = 200;
const ECHO_DELAYED = 2;
const c = useCleanup();

async function directCluster(names: string[]) {
  const { as, port, controlPort } = await startAs(c, { heartbeatMs: HB, reconnectBaseMs: 50, reconnectCapMs: 300 });
  const args = ['--as', `${HOST}:${controlPort}`, '--port', '0', '--plugins', 'echo', CHILD_PLUGIN, '--heartbeat-ms', String(HB)];
  const procs = names.map((n) => spawnFs(c, n, args));
  await Promise.all(names.map((n) => waitForState(as, n, 'available', 10_000)));
  const client = await Client.connect({ port, heartbeatMs: HB, mode: 'direct' });
  c.defer(() => client.close());
  const addr = (id: string): string => {
    const f = fsInfo(as, id);
    return `${f?.host}:${f?.port}`;
  };
  return { as, client, procs, addr, router: client.direct as NonNullable<Client['direct']> };
}

describe('director mode when an FS dies with calls pending on it', () => {
  it('re-sends the idempotent ones to the other FS at once, and they succeed; the AS relays nothing', async () => {
    const { as, client, procs, addr, router } = await directCluster(['fs-x', 'fs-y']);
    expect(new Set(await Promise.all(Array.from({ length: 20 }, () => client.call(WHO))))).toEqual(new Set(['fs-x', 'fs-y']));
    const calls = Array.from({ length: 12 }, (_, i) => settle(client.call(SLOW_IDEMPOTENT, { ms: 400, value: i }, { timeoutMs: 5000, idempotent: true })));
    await waitFor(() => router.pendingOn(addr('fs-x')) > 0 && router.pendingOn(addr('fs-y')) > 0, 'calls pending on both FSs');
    const pendingOnX = router.pendingOn(addr('fs-x'));
    procs[0].signal('SIGKILL');
    const results = await Promise.all(calls);
    expect(results.map((r) => (r.ok ? r.value : r.error.message))).toEqual(Array.from({ length: 12 }, (_, i) => i));
    // Each orphan was sent once more (to fs-y), not left to its 5 s deadline.
    expect(router.resent).toBe(pendingOnX);
    expect(router.viaAs).toBe(0);
    expect(as.dispatcher.relayedAnswers.reduce((a, n) => a + n, 0)).toBe(0);
    // New calls avoid the dead FS without waiting for the AS to notice.
    expect(new Set(await Promise.all(Array.from({ length: 10 }, () => client.call(WHO))))).toEqual(new Set(['fs-y']));
  });

  it('fails the non-idempotent ones with CHANNEL_CLOSED at once, long before their deadline', async () => {
    const { procs, addr, router, client } = await directCluster(['fs-k']);
    // echo.delayed (key 2) does not declare itself idempotent; SLOW_IDEMPOTENT does, and LOOKUP says so (re-sent whatever the call says).
    const calls = Array.from({ length: 5 }, (_, i) => settle(client.call(ECHO_DELAYED, { ms: 2000, value: i }, { timeoutMs: 5000 })));
    await waitFor(() => router.pendingOn(addr('fs-k')) === 5, 'five calls pending on fs-k');
    procs[0].signal('SIGKILL');
    const results = await Promise.all(calls);
    for (const r of results) {
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toBeInstanceOf(ChannelClosedError);
    }
    // CHANNEL_CLOSED, not TIMEOUT: told by the lost connection, not by the 5 s deadline.
    expect(router.resent).toBe(0);
  });
});
