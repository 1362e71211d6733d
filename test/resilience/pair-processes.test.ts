import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, type Endpoint } from '../../src/index.js';
import { waitFor } from '../fixtures/wait.js';
import { CHILD_PLUGIN, LoggedProcess, pairLoad } from '../fixtures/pair-procs.js';
import { freePorts } from '../fixtures/ports.js';

/*
 * The pair as real processes (the built CLI), stopped by PID: kill -9 and SIGSTOP/SIGCONT the
 * active under steady load from an SDK client given both endpoints (idempotent calls), and restart
 * the old active with and without --preempt. Advert 100 ms: the standby (priority 100) takes over
 * 3 × 100 + 156/256 × 100 ≈ 361 ms after the last advert it heard.
 */

const HOST = '127.0.0.1';
const ADVERT_MS = 100;
const HB = 250;
const SLOW_IDEMPOTENT = 3001;
const WHO = 3003;

const started: LoggedProcess[] = [];
const closers: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await Promise.all(started.splice(0).map((p) => p.stop('SIGKILL')));
});

interface Lab {
  dir: string;
  ports: { a: AsPorts; b: AsPorts };
  startAs(n: 'a' | 'b', extra?: string[]): LoggedProcess;
}

interface AsPorts {
  client: number;
  control: number;
  pair: number;
}

async function lab(): Promise<Lab> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-pair-procs-'));
  closers.push(() => rmSync(dir, { recursive: true, force: true }));
  const secret = join(dir, 'pair.secret');
  writeFileSync(secret, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
  const { tcp, udp } = await freePorts(4, 2);
  const ports = { a: { client: tcp[0], control: tcp[1], pair: udp[0] }, b: { client: tcp[2], control: tcp[3], pair: udp[1] } };
  const other = { a: 'b', b: 'a' } as const;
  return {
    dir,
    ports,
    startAs(n, extra = []) {
      const p = ports[n];
      const as = LoggedProcess.cli(`as-${n}`, [
        'as', '--port', `${p.client}`, '--control-port', `${p.control}`,
        '--pair-port', `${p.pair}`, '--pair-peer', `${HOST}:${ports[other[n]].pair}`, '--pair-secret-file', secret,
        '--priority', n === 'a' ? '150' : '100', '--advert-ms', `${ADVERT_MS}`,
        '--heartbeat-ms', `${HB}`, '--reconnect-cap-ms', '300', '--log-level', 'info', ...extra,
      ]);
      started.push(as);
      return as;
    },
  };
}

/** The pair (a active, b standby), one FS registered with both and available on both. */
async function pairWithFs(l: Lab): Promise<{ a: LoggedProcess; b: LoggedProcess; fs: LoggedProcess }> {
  const a = l.startAs('a');
  const b = l.startAs('b');
  await Promise.all([a.waitRole('active'), b.waitRole('standby')]);
  const fs = LoggedProcess.cli('fs-1', [
    'fs', '--as', `${HOST}:${l.ports.a.control},${HOST}:${l.ports.b.control}`, '--host', HOST, '--port', '0',
    '--plugins', 'echo', CHILD_PLUGIN, '--name', 'fs-1', '--heartbeat-ms', `${HB}`, '--log-level', 'info',
  ]);
  started.push(fs);
  const available = (as: LoggedProcess): Promise<unknown> => as.waitLine((x) => x.msg === 'function server is available' && x.fs === 'fs-1', 'fs-1 to be available');
  await Promise.all([available(a), available(b)]);
  return { a, b, fs };
}

async function connect(l: Lab): Promise<Client> {
  const endpoints: Endpoint[] = [
    { host: HOST, port: l.ports.a.client },
    { host: HOST, port: l.ports.b.client },
  ];
  const client = await Client.connect({ endpoints, heartbeatMs: HB, reconnect: { baseMs: 20, capMs: 200 } });
  closers.push(() => client.close());
  // Warm up: the first call proves the FS is reachable through the active.
  await client.call(WHO, {}, { timeoutMs: 3000, idempotent: true });
  return client;
}

describe('an AS pair of processes under client load', () => {
  it('kill -9 the active: the standby takes over within 1 s with no idempotent failure; the old active, restarted, stays standby (no preemption)', async () => {
    const l = await lab();
    const { a, b } = await pairWithFs(l);
    const client = await connect(l);
    const traffic = pairLoad(client, SLOW_IDEMPOTENT, 3000);
    closers.push(() => traffic.stop());
    await waitFor(() => traffic.answers.length >= 100, 'load through a', 10_000);

    const killedAt = Date.now();
    a.signal('SIGKILL');
    const up = await b.waitRole('active', killedAt, 5000);
    const takeover = (up.line.time as number) - killedAt;
    expect(up.line.reason).toMatch(/no advert from the active/);
    expect(up.line.epoch).toBe(2);
    await waitFor(() => traffic.answers.filter((x) => x.t > up.at && x.port === l.ports.b.client).length >= 100, 'load through b', 10_000);
    const lastFromA = traffic.answers.filter((x) => x.t <= killedAt).at(-1)?.t ?? killedAt;
    const firstFromB = traffic.answers.find((x) => x.t > killedAt && x.port === l.ports.b.client)?.t ?? NaN;
    console.log(`kill -9 the active: b active ${takeover} ms after the kill (its log clock); client gap ${firstFromB - lastFromA} ms; ${traffic.answers.length} answers, ${traffic.errors.length} failures`);
    expect(takeover).toBeLessThan(1000);
    expect(traffic.errors).toEqual([]);

    // The old active returns: b keeps the role (no preemption), and the load never notices.
    const back = Date.now();
    const a2 = l.startAs('a');
    const settled = await a2.waitRole('standby', back, 10_000);
    expect(settled.line).toMatchObject({ from: 'initial', epoch: 2 });
    await a2.waitLine((x) => x.msg === 'function server is available' && x.fs === 'fs-1', 'fs-1 to register with the restarted a');
    const served = traffic.answers.length;
    await waitFor(() => traffic.answers.length >= served + 100, 'load after the restart', 10_000);
    await traffic.stop();
    expect(b.roles(back)).toEqual([]);
    expect(a2.roles()).toHaveLength(1);
    expect(traffic.answers.filter((x) => x.t > back).every((x) => x.port === l.ports.b.client)).toBe(true);
    expect(traffic.errors).toEqual([]);
  });

  it('--preempt: the restarted higher-priority AS takes the role back, and no call fails for it', async () => {
    const l = await lab();
    const { a, b } = await pairWithFs(l);
    const client = await connect(l);
    const traffic = pairLoad(client, SLOW_IDEMPOTENT, 3000);
    closers.push(() => traffic.stop());
    await waitFor(() => traffic.answers.length >= 50, 'load through a', 10_000);
    const killedAt = Date.now();
    a.signal('SIGKILL');
    const up = await b.waitRole('active', killedAt, 5000);
    await waitFor(() => traffic.answers.filter((x) => x.t > up.at).length >= 50, 'load through b', 10_000);
    expect(traffic.errors).toEqual([]);

    const again = Date.now();
    const a2 = l.startAs('a', ['--preempt']);
    const [a2Up, bDown] = await Promise.all([a2.waitRole('active', again, 10_000), b.waitRole('standby', again, 10_000)]);
    // b yields to the preempting a: at once as a negotiates, or when a takes the role and advertises it.
    expect(bDown.line.reason).toMatch(/preempts with priority 150|designated standby by sibling|split brain: sibling .* outranks/);
    expect(a2Up.line.epoch).toBe(3);
    expect(bDown.line.epoch).toBe(3);
    await waitFor(() => traffic.answers.filter((x) => x.t > bDown.at && x.port === l.ports.a.client).length >= 50, 'load through the returned a', 10_000);
    await traffic.stop();
    const fsBack = a2.linesSince(0, (x) => x.msg === 'function server is available')[0];
    const firstThroughA2 = traffic.answers.find((x) => x.t > again && x.port === l.ports.a.client)?.t ?? NaN;
    const kinds = [...new Set(traffic.errors.map((e) => e.replace(/^call \d+: /, '').split(':')[0]))];
    console.log(
      `preempt: a active ${(a2Up.line.time as number) - again} ms after its restart; fs-1 available on it ${fsBack ? (fsBack.line.time as number) - (a2Up.line.time as number) : 'never'} ms after it took the role; ` +
        `first answer through it ${firstThroughA2 - (a2Up.line.time as number)} ms after; ${traffic.errors.length} calls failed (${kinds.join(', ')})`,
    );
    expect(traffic.errors.slice(0, 3)).toEqual([]);
  });

  it('SIGSTOP the active: the standby takes over; SIGCONT: the woken one steps down within about an advert, and there is never a second active after that', async () => {
    const l = await lab();
    const { a, b } = await pairWithFs(l);
    const client = await connect(l);
    const traffic = pairLoad(client, SLOW_IDEMPOTENT, 3000);
    closers.push(() => traffic.stop());
    await waitFor(() => traffic.answers.length >= 100, 'load through a', 10_000);

    const frozenAt = Date.now();
    a.signal('SIGSTOP');
    const up = await b.waitRole('active', frozenAt, 5000);
    const takeover = (up.line.time as number) - frozenAt;
    expect(up.line.epoch).toBe(2);
    await waitFor(() => traffic.answers.filter((x) => x.t > up.at && x.port === l.ports.b.client).length >= 100, 'load through b', 10_000);

    const wokeAt = Date.now();
    a.signal('SIGCONT');
    const down = await a.waitRole('standby', wokeAt, 5000);
    const stepDown = (down.line.time as number) - wokeAt;
    expect(down.line.epoch).toBe(2);
    expect(down.line.reason).toMatch(/split brain|designated standby/);
    // The woken one is the one that yields: b never leaves the role.
    await waitFor(() => traffic.answers.filter((x) => x.t > down.at).length >= 100, 'load after the wake-up', 10_000);
    await traffic.stop();
    console.log(`SIGSTOP the active: b active ${takeover} ms after; SIGCONT: a standby ${stepDown} ms after the wake-up; ${traffic.answers.length} answers, ${traffic.errors.length} failures`);
    expect(takeover).toBeLessThan(1000);
    expect(stepDown).toBeLessThanOrEqual(ADVERT_MS + 150);
    expect(b.roles(up.at)).toHaveLength(1); // only its takeover
    expect(a.roles(wokeAt).map((r) => r.to)).toEqual(['standby']);
    expect(traffic.errors).toEqual([]);
  });
});
