import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../../src/index.js';
import { netnsUnavailable } from '../fixtures/netns.js';
import { createLan, type Lan, type LanProcess } from '../fixtures/netns-bridge.js';
import { DIST_CLI, steadyLoad, waitFor } from './helpers.js';

const why = netnsUnavailable();
const AS_NAMES = ['as-a', 'as-b'] as const;
const FS_NAMES = ['fs-1', 'fs-2', 'fs-3'] as const;
const HEARTBEAT_MS = 300;
const TOKEN = 'netns-admin-token-0123456789';

interface FsRow {
  name: string;
  host: string;
  state: string;
  served: number;
}

let lan: Lan | undefined;
let dir: string | undefined;
let client: Client | undefined;

afterEach(async () => {
  // Every process by its PID, then every namespace, veth and the bridge: even when the test failed.
  await client?.close();
  client = undefined;
  await lan?.destroy();
  lan = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function functionServers(l: Lan, as: string): Promise<FsRow[]> {
  const r = await fetch(`http://${l.host(as).address}:7102/functionservers`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(2000) });
  if (!r.ok) throw new Error(`admin of ${as} answered ${r.status}`);
  return (await r.json()) as FsRow[];
}

/** Polls both ASs' registries until `check` holds for each. */
async function waitForBoth(l: Lan, check: (rows: FsRow[]) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last: string | undefined;
  for (;;) {
    try {
      const all = await Promise.all(AS_NAMES.map((a) => functionServers(l, a)));
      last = all.map((rows, i) => `${AS_NAMES[i]}: ${rows.map((f) => `${f.name}@${f.host}=${f.state}`).join(' ')}`).join('; ');
      if (all.every(check)) return;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const stateOf = (rows: FsRow[], name: string): string | undefined => rows.find((f) => f.name === name)?.state;

describe('a cluster across network namespaces (two ASs, three FSs, a spread client)', () => {
  it.skipIf(why)(`FSs and ASs on their own addresses, picked from 0.0.0.0: links cut and restored${why ? ` (skipped: ${why})` : ''}`, async () => {
    const l = (lan = createLan([...AS_NAMES, ...FS_NAMES]));
    dir = mkdtempSync(join(tmpdir(), 'sb-netns-'));
    const secret = join(dir, 'join.secret');
    const token = join(dir, 'admin.token');
    writeFileSync(secret, 'netns-join-secret-0123456789abcdef', { mode: 0o600 });
    writeFileSync(token, TOKEN, { mode: 0o600 });
    const env = { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' };
    const procs: Record<string, LanProcess> = {};
    for (const a of AS_NAMES) {
      procs[a] = l.node(a, [DIST_CLI, 'as', '--host', '0.0.0.0', '--port', '7100', '--control-port', '7101', '--admin-port', '7102', '--admin-host', '0.0.0.0', '--admin-token-file', token,
        '--join-secret-file', secret, '--heartbeat-ms', String(HEARTBEAT_MS), '--reconnect-cap-ms', '300', '--load-refresh-ms', '200'], { env });
    }
    await Promise.all(AS_NAMES.map((a) => procs[a].waitForLog('application server listening')));
    const controls = AS_NAMES.map((a) => `${l.host(a).address}:7101`).join(',');
    for (const f of FS_NAMES) {
      procs[f] = l.node(f, [DIST_CLI, 'fs', '--name', f, '--host', '0.0.0.0', '--port', '7200', '--as', controls, '--join-secret-file', secret, '--plugins', 'echo',
        '--heartbeat-ms', String(HEARTBEAT_MS), '--refresh-ms', '200', '--reconnect-base-ms', '50', '--reconnect-cap-ms', '300'], { env });
    }
    // Each FS bound 0.0.0.0 with no advertise host: it advertises its namespace's own address.
    for (const f of FS_NAMES) {
      const listening = await procs[f].waitForLog('function server listening');
      expect(listening.host).toBe(l.host(f).address);
    }
    await waitForBoth(l, (rows) => FS_NAMES.every((f) => stateOf(rows, f) === 'available'), 'every FS available on both ASs');
    for (const a of AS_NAMES) for (const row of await functionServers(l, a)) expect(row.host).toBe(l.host(row.name).address);

    // The client runs here and reaches both ASs over the bridge.
    client = await Client.connect({
      endpoints: AS_NAMES.map((a) => ({ host: l.host(a).address, port: 7100 })),
      mode: 'spread',
      heartbeatMs: HEARTBEAT_MS,
      connectTimeoutMs: 2000,
      reconnect: { baseMs: 50, capMs: 300 },
    });
    const c = client;
    await waitFor(() => c.spread?.list().every((a) => a.connected) === true, 'the client on both ASs', 5000);
    const idempotent = (i: number): Promise<unknown> => c.call(2, { ms: 2, value: i }, { idempotent: true, timeoutMs: 6000 });

    // 1. An FS's cable pulled: both ASs mark it unavailable and route around it; plugged back: re-admitted.
    let load = steadyLoad(8, idempotent);
    await waitFor(() => load.ok() >= 100, 'load to run', 5000);
    l.cut('fs-2');
    await waitForBoth(l, (rows) => stateOf(rows, 'fs-2') !== 'available', 'fs-2 unavailable on both ASs');
    const servedWhileCut = (await Promise.all(AS_NAMES.map((a) => functionServers(l, a)))).map((rows) => rows.find((f) => f.name === 'fs-2')?.served ?? 0);
    let ok = load.ok();
    await waitFor(() => load.ok() >= ok + 200, 'load to carry on without fs-2', 10_000);
    const servedAfter = (await Promise.all(AS_NAMES.map((a) => functionServers(l, a)))).map((rows) => rows.find((f) => f.name === 'fs-2')?.served ?? 0);
    expect(servedAfter).toEqual(servedWhileCut);
    l.restore('fs-2');
    await waitForBoth(l, (rows) => FS_NAMES.every((f) => stateOf(rows, f) === 'available'), 'fs-2 re-admitted on both ASs', 15_000);
    ok = load.ok();
    await waitFor(() => load.ok() >= ok + 200, 'load to carry on with fs-2 back', 10_000);
    let result = await load.stop();
    expect(result.errors).toEqual([]);

    // 2. An AS's cable pulled: the client fails over to the other AS, no idempotent call fails.
    const sentB = c.spread?.list()[1].sent ?? 0;
    load = steadyLoad(8, idempotent);
    await waitFor(() => load.ok() >= 100, 'load to run', 5000);
    l.cut('as-b');
    await waitFor(() => c.spread?.list()[1].connected === false, 'the client to drop as-b', 10_000);
    ok = load.ok();
    await waitFor(() => load.ok() >= ok + 300, 'load to carry on over as-a alone', 10_000);
    result = await load.stop();
    expect(result.errors).toEqual([]);
    expect(c.spread?.list()[1].sent ?? 0).toBeGreaterThan(sentB);

    // Plugged back: its FSs come back, the client reconnects and uses it again.
    l.restore('as-b');
    await waitForBoth(l, (rows) => FS_NAMES.every((f) => stateOf(rows, f) === 'available'), 'every FS available on both ASs again', 15_000);
    await waitFor(() => c.spread?.list()[1].connected === true, 'the client back on as-b', 10_000);
    const before = c.spread?.list().map((a) => a.sent) ?? [];
    const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => idempotent(i)));
    expect(answers).toHaveLength(300);
    const after = c.spread?.list().map((a) => a.sent) ?? [];
    expect(after[0] - before[0]).toBeGreaterThan(50);
    expect(after[1] - before[1]).toBeGreaterThan(50);
  }, 90_000);
});
