import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AsState, ApplicationServer, ConfigError, Head, Status, decodeBody, encodePairMessage, encodeRequest, requestIdOf, statusOf, type PairMessage, type PairStatus } from '../../src/index.js';
import { createMetrics } from '../../src/application-server/admin/metrics.js';
import { RawSocket } from '../fixtures/raw-socket.js';
import { waitFor } from '../fixtures/wait.js';
import {
  COUNT_ONCE,
  Counts,
  HOST,
  PAIR_SECRET,
  adminGet,
  adminPost,
  freeTcpPort,
  freeUdpPort,
  roleLog,
  startAdmin,
  startPair,
  startPairAs,
  startPairFs,
  udpSocket,
  usePairCleanup,
  waitAvailable,
  waitRole,
  waitSibling,
} from '../fixtures/pair-cluster.js';

/*
 * The AS pair in one process: two ASs on 127.0.0.1 negotiating over real UDP with a shared secret
 * (advert 50 ms unless a test says otherwise). Every wait is on a 'role' or 'sibling' event, a
 * counter or a file, never on a clock.
 */

const DIST_CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const DROP_REASONS = ['short', 'frame-head', 'version', 'tag', 'malformed', 'replay', 'clock', 'stranger', 'self'];

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DIST_CLI, ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code as number) : 0;
      resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
    });
  });
}

/** A pair datagram as the sibling would send it (signed with `secret`), for the tests that forge. */
function datagram(m: Partial<PairMessage> & Pick<PairMessage, 'head'>, secret: Buffer = PAIR_SECRET): Buffer {
  return encodePairMessage(
    {
      state: AsState.ACTIVE,
      id: 1,
      nodeId: 'abcdefabcdef0001',
      priority: 255,
      preempt: true,
      epoch: 1000,
      seq: BigInt(Date.now()) * 1000n,
      data: {},
      ...m,
    },
    secret,
  );
}

const dropped = (as: ApplicationServer, reason: string): number => as.pairStatus()?.datagrams.dropped[reason] ?? 0;

describe('an AS pair on 127.0.0.1 (real UDP, shared secret)', () => {
  const c = usePairCleanup();

  it('negotiates: the higher priority becomes active and designates the other standby, both in epoch 1', async () => {
    const { a, b } = await startPair(c);
    expect(roleLog.get(a)).toEqual([{ from: 'initial', to: 'active', reason: 'won the negotiation', epoch: 1 }]);
    expect(roleLog.get(b)).toHaveLength(1);
    expect(roleLog.get(b)?.[0]).toMatchObject({ from: 'initial', to: 'standby', epoch: 1 });
    expect(roleLog.get(b)?.[0].reason).toMatch(new RegExp(`sibling ${a.pairStatus()?.nodeId}`));
    expect(a.role).toBe('active');
    expect(b.role).toBe('standby');
    expect(a.pairStatus()?.epoch).toBe(1);
    expect(b.pairStatus()?.epoch).toBe(1);
    // Without an FS the active is not ready either, but for its own reason.
    expect(a.notReadyReason()).toBe('no function server available');
    expect(b.notReadyReason()).toBe('not the active of its pair');
  });

  it('with equal priorities the tokens decide: exactly one active, the other standby, both in epoch 1', async () => {
    const [pa, pb] = [await freeUdpPort(), await freeUdpPort()];
    const pair = { negotiationTimeoutMs: 3000 };
    const [x, y] = await Promise.all([startPairAs(c, { pairPort: pa, peerPort: pb, pair }), startPairAs(c, { pairPort: pb, peerPort: pa, pair })]);
    await waitFor(() => [x.role, y.role].sort().join() === 'active,standby', 'one active and one standby', 3000);
    const [winner, loser] = x.role === 'active' ? [x, y] : [y, x];
    expect(roleLog.get(winner)).toEqual([{ from: 'initial', to: 'active', reason: 'won the negotiation', epoch: 1 }]);
    expect(roleLog.get(loser)).toMatchObject([{ from: 'initial', to: 'standby', epoch: 1 }]);
  });

  it('FSs register with both ASs (pool connections from both); the active serves, the standby answers NOT_ACTIVE naming the active and drops one-way requests', async () => {
    const { a, b } = await startPair(c);
    const counts = new Counts();
    const fs = await startPairFs(c, 'fs-both', [a, b], counts);
    await Promise.all([waitAvailable(a, 'fs-both'), waitAvailable(b, 'fs-both')]);
    expect(fs.registeredWith).toBe(2);
    await waitFor(() => fs.connectionCount === 2, 'a pool connection from each AS');
    await waitFor(() => b.pairStatus()?.sibling?.clientEndpoint !== undefined, 'the standby to learn where the active serves clients');

    const toB = await RawSocket.connect(b.ports.port);
    c.defer(() => toB.destroy());
    toB.write(encodeRequest(7, COUNT_ONCE, { tag: 'standby-two-way' }, { budgetMs: 2000 }));
    const refused = await toB.nextFrame();
    expect(requestIdOf(refused)).toBe(7);
    expect(statusOf(refused)).toBe(Status.NOT_ACTIVE);
    expect(statusOf(refused)).toBe(100);
    const body = decodeBody(refused) as { code: string; message: string; active: { host: string; port: number } };
    expect(body.code).toBe('SB_ERR_NOT_ACTIVE');
    expect(body.active).toEqual({ host: HOST, port: a.ports.port });
    expect(body.message).toContain(`${HOST}:${a.ports.port}`);

    // A one-way request gets nothing: the next frame answers the two-way request sent after it.
    const notActiveBefore = b.dispatcher.localAnswers.get(Status.NOT_ACTIVE) ?? 0;
    toB.write(encodeRequest(0, COUNT_ONCE, { tag: 'standby-one-way' }, { twoWay: false }));
    toB.write(encodeRequest(8, COUNT_ONCE, { tag: 'standby-two-way' }, { budgetMs: 2000 }));
    const next = await toB.nextFrame();
    expect(requestIdOf(next)).toBe(8);
    expect(statusOf(next)).toBe(Status.NOT_ACTIVE);
    expect(b.dispatcher.localAnswers.get(Status.NOT_ACTIVE)).toBe(notActiveBefore + 2);

    // The active serves the same requests, two-way and one-way.
    const toA = await RawSocket.connect(a.ports.port);
    c.defer(() => toA.destroy());
    toA.write(encodeRequest(0, COUNT_ONCE, { tag: 'active-one-way' }, { twoWay: false }));
    toA.write(encodeRequest(9, COUNT_ONCE, { tag: 'active-two-way' }, { budgetMs: 2000 }));
    const served = await toA.nextFrame();
    expect(requestIdOf(served)).toBe(9);
    expect(statusOf(served)).toBe(Status.OK);
    expect(decodeBody(served)).toEqual({ tag: 'active-two-way', runs: 1, fs: 'fs-both' });
    await waitFor(() => counts.of('active-one-way') === 1, 'the one-way request on the active to run');
    // Nothing the standby was sent ever ran.
    expect(counts.of('standby-two-way')).toBe(0);
    expect(counts.of('standby-one-way')).toBe(0);
    expect(b.listFunctionServers()[0].served).toBe(0);
  });

  it('/readyz, GET /pair, POST /pair/designate and the status and pair designate commands (child processes, exit codes) swap the roles back and forth', async () => {
    const { a, b } = await startPair(c);
    const counts = new Counts();
    await startPairFs(c, 'fs-admin', [a, b], counts);
    await Promise.all([waitAvailable(a, 'fs-admin'), waitAvailable(b, 'fs-admin')]);
    const [adminA, adminB] = await Promise.all([startAdmin(c, a), startAdmin(c, b)]);
    await waitFor(() => a.pairStatus()?.siblingOnline === true && b.pairStatus()?.siblingOnline === true, 'each AS to see its sibling online');

    expect(await adminGet(adminA, '/readyz')).toEqual({ status: 200, body: { ready: true } });
    expect(await adminGet(adminB, '/readyz')).toEqual({ status: 503, body: { ready: false, reason: 'not the active of its pair' } });

    const pa = await adminGet<PairStatus>(adminA, '/pair');
    const pb = await adminGet<PairStatus>(adminB, '/pair');
    expect(pa.status).toBe(200);
    expect(pa.body).toMatchObject({ role: 'active', epoch: 1, priority: 150, siblingOnline: true, sibling: { nodeId: pb.body.nodeId, role: 'standby', priority: 100, epoch: 1 } });
    expect(pb.body).toMatchObject({ role: 'standby', epoch: 1, priority: 100, siblingOnline: true, sibling: { nodeId: pa.body.nodeId, role: 'active', priority: 150, epoch: 1, clientEndpoint: { host: HOST, port: a.ports.port } } });
    expect(pa.body.nodeId).toMatch(/^[0-9a-f]{16}$/);
    for (const p of [pa.body, pb.body]) {
      expect(p.datagrams.sent).toBeGreaterThan(0);
      expect(p.datagrams.received).toBeGreaterThan(0);
      expect(Object.keys(p.datagrams.dropped).sort()).toEqual([...DROP_REASONS].sort());
      expect(Object.values(p.datagrams.dropped).every((n) => n === 0)).toBe(true);
    }

    // HTTP: b takes the active role; a is told to step down.
    expect((await adminPost(adminB, '/pair/designate', '{"role":"sideways"}')).status).toBe(400);
    const aDown = waitRole(a, 'standby');
    const designated = await adminPost(adminB, '/pair/designate', '{"role":"active"}');
    expect(designated.status).toBe(200);
    expect(designated.body).toMatchObject({ role: 'active', epoch: 2 });
    expect(await aDown).toMatchObject({ to: 'standby', epoch: 2 });
    expect((await adminGet(adminB, '/readyz')).status).toBe(200);
    expect(await adminGet(adminA, '/readyz')).toEqual({ status: 503, body: { ready: false, reason: 'not the active of its pair' } });

    // The CLI: a takes it back.
    const bDown = waitRole(b, 'standby');
    const back = await cli(['pair', 'designate', 'active', '--admin', `${HOST}:${adminA}`]);
    expect(back).toMatchObject({ code: 0, stdout: 'this AS is now active (epoch 3)\n' });
    expect(await bDown).toMatchObject({ epoch: 3 });

    const [statusA, statusB, wrongRole, unreachable] = await Promise.all([
      cli(['status', '--json', '--admin', `${HOST}:${adminA}`]),
      cli(['status', '--json', '--admin', `${HOST}:${adminB}`]),
      cli(['pair', 'designate', 'sideways', '--admin', `${HOST}:${adminA}`]),
      freeTcpPort().then((p) => cli(['status', '--admin', `${HOST}:${p}`])),
    ]);
    expect(statusA.code, statusA.stdout + statusA.stderr).toBe(0);
    const sa = JSON.parse(statusA.stdout) as { ready: { ready: boolean }; pair: { role: string; epoch: number }; functionServers: { name: string; state: string }[] };
    expect(sa.ready.ready).toBe(true);
    expect(sa.pair).toMatchObject({ role: 'active', epoch: 3 });
    expect(sa.functionServers.map((f) => [f.name, f.state])).toEqual([['fs-admin', 'available']]);
    expect(statusB.code).toBe(5); // not ready: the standby
    const sb = JSON.parse(statusB.stdout) as { ready: { ready: boolean; reason: string }; pair: { role: string; epoch: number } };
    expect(sb.ready).toEqual({ ready: false, reason: 'not the active of its pair' });
    expect(sb.pair).toMatchObject({ role: 'standby', epoch: 3 });
    expect(wrongRole.code).toBe(1);
    expect(wrongRole.stderr).toMatch(/role must be active or standby/);
    expect(unreachable.code).toBe(4);
    expect(unreachable.stderr).toMatch(/cannot reach the admin port/);
    expect(a.role).toBe('active');
    expect(b.role).toBe('standby');
  });

  it('stop() of the active hands over at once: the standby takes over far sooner than its down interval', async () => {
    // Advert 300 ms: b's down interval is 3 × 300 + 156/256 × 300 ≈ 1083 ms.
    const { a, b } = await startPair(c, { pair: { advertMs: 300 } });
    await waitFor(() => b.pairStatus()?.sibling?.role === 'active', 'b to have heard an advert');
    const up = waitRole(b, 'active', 3000, 'b');
    const t0 = performance.now();
    await a.stop();
    const e = await up;
    const takeover = e.at - t0;
    console.log(`hand-over on stop(): b active ${takeover.toFixed(1)} ms after a.stop() began (down interval 1083 ms)`);
    expect(e.reason).toMatch(/handed over \(priority 0\)/);
    expect(e.epoch).toBe(2);
    expect(takeover).toBeLessThan(300);
  });

  it('a stopping active finishes what is in flight, and answers a new request NOT_ACTIVE (not UNAVAILABLE), so a client moves to the sibling', async () => {
    const { a, b } = await startPair(c, { a: { as: { clientDrainTimeoutMs: 5000 } } });
    const counts = new Counts();
    await startPairFs(c, 'fs-both', [a, b], counts);
    await Promise.all([waitAvailable(a, 'fs-both'), waitAvailable(b, 'fs-both')]);
    await waitFor(() => a.pairStatus()?.sibling !== undefined, 'a to hear b');
    const toA = await RawSocket.connect(a.ports.port);
    c.defer(() => toA.destroy());
    toA.write(encodeRequest(1, COUNT_ONCE, { tag: 'long', ms: 600 }, { budgetMs: 5000 }));
    await waitFor(() => counts.of('long') === 1, 'the long call to run');
    const stopping = a.stop();
    await waitFor(() => a.dispatcher.stopping !== null, 'a to start draining');
    toA.write(encodeRequest(2, COUNT_ONCE, { tag: 'late' }, { budgetMs: 5000 }));
    const first = await toA.nextFrame();
    expect([requestIdOf(first), statusOf(first)]).toEqual([2, Status.NOT_ACTIVE]);
    // The active learns no client endpoint from its standby (only Connected carries one): the
    // answer names none, and a client given both endpoints moves to the other.
    expect(decodeBody(first)).toMatchObject({ code: 'SB_ERR_NOT_ACTIVE' });
    const second = await toA.nextFrame();
    expect([requestIdOf(second), statusOf(second)]).toEqual([1, Status.OK]);
    expect(counts.of('late')).toBe(0);
    await stopping;
  });

  it('refuses to start a pair without a secret unless told insecure; refuses a short secret', () => {
    const peer = { host: HOST, port: 9 };
    expect(() => new ApplicationServer({ pair: { port: 0, peer } })).toThrow(ConfigError);
    expect(() => new ApplicationServer({ pair: { port: 0, peer } })).toThrow(/needs a shared secret/);
    expect(() => new ApplicationServer({ pair: { port: 0, peer, secret: 'short' } })).toThrow(ConfigError);
    expect(() => new ApplicationServer({ pair: { port: 0, peer, insecure: true } })).not.toThrow();
  });

  it('refuses pair options that would run alone: pairMode udp with no pair, pairEtcd without pairMode etcd', () => {
    expect(() => new ApplicationServer({ pairMode: 'udp' })).toThrow(ConfigError);
    expect(() => new ApplicationServer({ pairMode: 'udp' })).toThrow(/pairMode 'udp' needs pair options.*would run alone/);
    const pairEtcd = { endpoints: ['etcd://127.0.0.1:2379'] };
    expect(() => new ApplicationServer({ pairEtcd })).toThrow(/pairEtcd options are read only with pairMode 'etcd'/);
    expect(() => new ApplicationServer({ pairMode: 'udp', pairEtcd, pair: { port: 0, peer: { host: HOST, port: 9 }, insecure: true } })).toThrow(ConfigError);
  });

  it('drops datagrams from any address but the sibling (forged, garbage, replayed) as stranger; no role changes', async () => {
    const { a, b } = await startPair(c);
    const third = await udpSocket(c);
    const forged = (role: number, secret?: Buffer): Buffer => datagram({ head: Head.DESIGNATE, data: { role } }, secret);
    // To each: a valid order signed with the right secret, the same with a wrong one, garbage, a replay.
    for (const [as, role] of [
      [a, AsState.STANDBY],
      [b, AsState.ACTIVE],
    ] as const) {
      const good = forged(role);
      await third.send(good, as.ports.pairPort as number);
      await third.send(forged(role, Buffer.alloc(32, 7)), as.ports.pairPort as number);
      await third.send(Buffer.from('garbage, not a pair datagram'), as.ports.pairPort as number);
      await third.send(good, as.ports.pairPort as number);
    }
    await waitFor(() => dropped(a, 'stranger') === 4 && dropped(b, 'stranger') === 4, 'each AS to drop the four datagrams');
    expect(a.role).toBe('active');
    expect(b.role).toBe('standby');
    expect(a.pairStatus()?.epoch).toBe(1);
    expect(b.pairStatus()?.epoch).toBe(1);
    expect(roleLog.get(a)).toHaveLength(1);
    expect(roleLog.get(b)).toHaveLength(1);
    for (const as of [a, b]) for (const r of DROP_REASONS) if (r !== 'stranger') expect(dropped(as, r), r).toBe(0);
  });

  it('a scripted sibling at the configured address: wrong tag, garbage, short, other version, old clock, own node id and replays are dropped by reason; only a good datagram changes the role', async () => {
    const sibling = await udpSocket(c);
    const port = await freeUdpPort();
    const as = await startPairAs(c, { pairPort: port, peerPort: sibling.port, pair: { negotiationTimeoutMs: 200 } });
    await waitRole(as, 'active', 3000);
    expect(as.pairStatus()?.epoch).toBe(1);
    const self = as.pairStatus()?.nodeId as string;
    const order = (over: Partial<PairMessage> = {}, secret?: Buffer): Buffer => datagram({ head: Head.DESIGNATE, data: { role: AsState.STANDBY }, epoch: 5, ...over }, secret);
    const wrongVersion = order();
    wrongVersion[3] = 2;
    await sibling.send(order({}, Buffer.alloc(32, 9)), port); // tag
    await sibling.send(Buffer.alloc(80, 0), port); // frame-head (long enough to be looked at)
    await sibling.send(Buffer.from([0xff, 0xa5, 0x01, 0x01]), port); // short
    await sibling.send(wrongVersion, port); // version
    await sibling.send(order({ seq: BigInt(Date.now() - 120_000) * 1000n }), port); // clock
    await sibling.send(order({ nodeId: self }), port); // self
    await waitFor(() => ['tag', 'frame-head', 'short', 'version', 'clock', 'self'].every((r) => dropped(as, r) === 1), 'six drops, one per reason');
    expect(as.role).toBe('active');
    expect(as.pairStatus()?.epoch).toBe(1);
    expect(dropped(as, 'stranger')).toBe(0);

    // The positive control: the same order, well made, is obeyed and acknowledged...
    const good = order();
    const down = waitRole(as, 'standby', 2000);
    await sibling.send(good, port);
    expect(await down).toMatchObject({ epoch: 5 });
    await waitFor(() => sibling.received.some((d) => d[1] === Head.RESPONSED), 'a Responsed for the order');
    // ...and its replay is dropped, changing nothing.
    const events = roleLog.get(as)?.length;
    await sibling.send(good, port);
    await waitFor(() => dropped(as, 'replay') === 1, 'the replay to be dropped');
    expect(roleLog.get(as)?.length).toBe(events);

    // A recording of an earlier incarnation of the sibling (another node id, stamped before the
    // order just obeyed) is a replay too, though that node id was never heard.
    await sibling.send(order({ nodeId: 'abcdefabcdef0002', head: Head.DESIGNATE, data: { role: AsState.ACTIVE }, epoch: 9, seq: good.readBigUInt64BE(24) - 1_400_000n }), port);
    await waitFor(() => dropped(as, 'replay') === 2, 'the earlier incarnation to be dropped as a replay');
    expect(as.role).toBe('standby');

    // What an operator scrapes: the role, how often it changed, and the drops by reason.
    const text = await createMetrics(as).metrics();
    expect(text).toContain('switchboard_pair_role{role="standby"} 1');
    expect(text).toContain('switchboard_pair_role{role="active"} 0');
    expect(text).toContain(`switchboard_pair_role_changes_total ${roleLog.get(as)?.length}`);
    for (const reason of ['tag', 'frame-head', 'short', 'version', 'clock', 'self']) expect(text).toContain(`switchboard_pair_datagrams_dropped_total{reason="${reason}"} 1`);
    expect(text).toContain('switchboard_pair_datagrams_dropped_total{reason="replay"} 2');
  });

  it('a third AS with the same secret on another port is dropped as stranger; the roles hold', async () => {
    const { a, b } = await startPair(c);
    // It names a as its peer, outranks it and preempts: were it heard, a would step down.
    const intruder = await startPairAs(c, { pairPort: await freeUdpPort(), peerPort: a.ports.pairPort as number, priority: 255, pair: { preempt: true, negotiationTimeoutMs: 200 } });
    await waitRole(intruder, 'active', 3000, 'the intruder');
    await waitFor(() => dropped(a, 'stranger') >= 5, 'a to drop the intruder five times');
    expect(a.role).toBe('active');
    expect(b.role).toBe('standby');
    expect(a.pairStatus()?.epoch).toBe(1);
    expect(roleLog.get(a)).toHaveLength(1);
    expect(roleLog.get(b)).toHaveLength(1);
    expect(dropped(b, 'stranger')).toBe(0);
  });

  it("'role' and 'sibling' events: the active sees its sibling go offline when the standby stops and online when it returns", async () => {
    const { a, b, pairPorts } = await startPair(c);
    await waitFor(() => a.pairStatus()?.siblingOnline === true, 'a to see b online');
    const offline = waitSibling(a, false);
    await b.stop();
    expect((await offline).reason).toMatch(/adverts unanswered/);
    expect(a.role).toBe('active');
    expect(a.pairStatus()?.siblingOnline).toBe(false);

    const online = waitSibling(a, true);
    const b2 = await startPairAs(c, { pairPort: pairPorts.b, peerPort: pairPorts.a, priority: 100 });
    const e = await waitRole(b2, 'standby', 3000, 'the returning b');
    expect(e).toMatchObject({ from: 'initial', epoch: 1 });
    expect(await online).toMatchObject({ online: true });
    expect(roleLog.get(a)).toHaveLength(1);
  });

  it('runs the notify commands on each change, with the role and epoch in the environment', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-pair-notify-'));
    c.defer(() => rmSync(dir, { recursive: true, force: true }));
    const file = { a: join(dir, 'a.log'), b: join(dir, 'b.log') };
    const notify = (f: string): { onActive: string; onStandby: string } => ({
      onActive: `echo "$SWITCHBOARD_ROLE $SWITCHBOARD_EPOCH" >> '${f}'`,
      onStandby: `echo "$SWITCHBOARD_ROLE $SWITCHBOARD_EPOCH" >> '${f}'`,
    });
    const read = (f: string): string => {
      try {
        return readFileSync(f, 'utf8');
      } catch {
        return '';
      }
    };
    const { a, b } = await startPair(c, { a: { pair: notify(file.a) }, b: { pair: notify(file.b) } });
    await waitFor(() => read(file.a) === 'active 1\n' && read(file.b) === 'standby 1\n', 'the first notify commands');
    const aDown = waitRole(a, 'standby');
    b.designate('active');
    await aDown;
    await waitFor(() => read(file.a) === 'active 1\nstandby 2\n' && read(file.b) === 'standby 1\nactive 2\n', 'the notify commands of the swap', 5000);
    const bDown = waitRole(b, 'standby');
    a.designate('active');
    await bDown;
    await waitFor(() => read(file.a) === 'active 1\nstandby 2\nactive 3\n' && read(file.b) === 'standby 1\nactive 2\nstandby 3\n', 'the notify commands of the swap back', 5000);
  });
});
