import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHILD_PLUGIN, HELD_UNTIL_FILE, HOST, SLOW_IDEMPOTENT, WHO, connectClient, fsInfo, settle, spawnFs, startAs, steadyLoad, useCleanup, waitFor, waitForState } from './helpers.js';

// The active FS is a child process killed with SIGKILL (a real crash) and started again under the
// same name; it registers by HELLO. WHO (3003, from child-plugin.mjs) tells which FS answered.
const HB = 200;
const c = useCleanup();

async function whoAnswers(call: (key: number) => Promise<unknown>, n: number): Promise<Map<string, number>> {
  const names = await Promise.all(Array.from({ length: n }, () => call(WHO)));
  const m = new Map<string, number>();
  for (const name of names as string[]) m.set(name, (m.get(name) ?? 0) + 1);
  return m;
}

describe('standby function servers', () => {
  it('take traffic only while no active FS is available, and step back when it returns', async () => {
    const { as, port, controlPort } = await startAs(c, { heartbeatMs: HB, reconnectBaseMs: 50, reconnectCapMs: 300 });
    const args = ['--as', `${HOST}:${controlPort}`, '--port', '0', '--plugins', 'echo', CHILD_PLUGIN, '--heartbeat-ms', String(HB)];
    const active = spawnFs(c, 'fs-active', args);
    spawnFs(c, 'fs-standby', [...args, '--standby']);
    await Promise.all([waitForState(as, 'fs-active', 'available', 10_000), waitForState(as, 'fs-standby', 'available', 10_000)]);
    expect(fsInfo(as, 'fs-standby')?.standby).toBe(true);
    const client = await connectClient(c, port);
    const call = (key: number, body?: unknown): Promise<unknown> => client.call(key, body, { timeoutMs: 5000 });

    // 1. Both available: every call goes to the active one.
    expect(await whoAnswers(call, 30)).toEqual(new Map([['fs-active', 30]]));

    // 2. The active one crashes under idempotent load: the standby takes over, nobody sees an error.
    const load = steadyLoad(4, (i) => (i % 2 === 0 ? call(WHO) : call(SLOW_IDEMPOTENT, { ms: 50, value: i })));
    c.defer(() => load.stop());
    await waitFor(() => load.ok() > 20, 'load to flow');
    active.signal('SIGKILL');
    await waitForState(as, 'fs-active', 'unavailable', 2000);
    const okAtFailover = load.ok();
    await waitFor(() => load.ok() > okAtFailover + 40, 'load to flow through the standby');
    const failover = await load.stop();
    expect(failover.errors).toEqual([]);
    expect(await whoAnswers(call, 10)).toEqual(new Map([['fs-standby', 10]]));

    // 3. A call held in flight on the standby until the test releases it (a file), so it is still
    // running when the active one returns, however long that takes.
    const dir = mkdtempSync(join(tmpdir(), 'sb-standby-'));
    c.defer(() => rmSync(dir, { recursive: true, force: true }));
    const release = join(dir, 'release');
    const slow = settle(client.call(HELD_UNTIL_FILE, { path: release, value: 'finished on standby' }, { timeoutMs: 30_000 }));
    await waitFor(() => (fsInfo(as, 'fs-standby')?.inflight ?? 0) === 1, 'the slow call to be pending on the standby');

    // 4. The active FS restarts under the same name (new port, HELLO): new calls go to it again.
    await active.exited();
    spawnFs(c, 'fs-active', args);
    await waitForState(as, 'fs-active', 'available', 10_000);
    expect(fsInfo(as, 'fs-standby')?.inflight).toBe(1); // still running there
    expect(await whoAnswers(call, 30)).toEqual(new Map([['fs-active', 30]]));

    // 5. The standby's in-flight call finishes OK.
    writeFileSync(release, '');
    const r = await slow;
    expect(r.ok ? r.value : r.error.message).toBe('finished on standby');
    expect(fsInfo(as, 'fs-standby')?.state).toBe('available');
  });
});
