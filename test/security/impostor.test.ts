import { describe, expect, it } from 'vitest';
import { EventKind, Status, encodeResponse, requestIdOf, type Client, type FunctionServerInfo } from '../../src/index.js';
import { ECHO_DELAYED } from '../../src/plugins/samples/echo-plugin.js';
import { expectTrafficUnharmed, runBounded, tally, useHarness, waitFor, waitForAvailable, waitForRegistry } from '../fixtures/cluster.js';
import { WHO_AM_I } from '../fixtures/test-plugins.js';
import { ControlPeer, FakeFs, fsInfo, helloFor, loadOf, settled, startLookalikeFs, steadyBackground, waitForLeft, type Settled } from './registry-fixtures.js';

// Names and endpoints belong to their live holders: a peer on the control port cannot take over,
// park, or mis-describe a function server it is not. Every test keeps a good client calling echo
// throughout and checks its answers at the end.

const h = useHarness();

/** Where `n` who-am-i calls landed. */
async function whoAnswers(c: Client, n: number): Promise<Map<string, number>> {
  const names: string[] = [];
  await runBounded(n, 8, async () => {
    names.push(await c.call<string>(WHO_AM_I, undefined, { timeoutMs: 2000 }));
  });
  return tally(names);
}

function state(id: string): string | undefined {
  return fsInfo(h.as, id)?.state;
}

describe('a HELLO that claims what a live function server holds', () => {
  it("reusing a live FS's name with another endpoint is refused SB_ERR_NAME_TAKEN; the real FS keeps all traffic", async () => {
    const [real] = await h.cluster({}, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    const c = await h.client();
    const before = fsInfo(h.as, 'fs-a') as FunctionServerInfo;
    // A real process elsewhere that says "fs-a" in DESCRIBE but answers who-am-i as "impostor":
    // had the AS believed the HELLO, who-am-i would tell.
    const impostor = await startLookalikeFs(h, 'fs-a', 'impostor');

    const ctl = await ControlPeer.connect(h);
    const answer = await ctl.hello(helloFor('fs-a', impostor.address(), [1, 2, WHO_AM_I]));

    expect(answer.status).toBe(Status.BAD_REQUEST);
    expect(answer.body?.code).toBe('SB_ERR_NAME_TAKEN');
    expect(answer.body?.message).toContain('fs-a');
    expect(h.as.manager.counters.refusedHellos.get('SB_ERR_NAME_TAKEN')).toBe(1);
    // The entry is the one the real FS registered: same endpoint, same control link, still available.
    const after = fsInfo(h.as, 'fs-a') as FunctionServerInfo;
    expect({ port: after.port, registeredFrom: after.registeredFrom, state: after.state }).toEqual({ port: real.address().port, registeredFrom: before.registeredFrom, state: 'available' });
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-a']);
    expect([...(await whoAnswers(c, 60)).entries()]).toEqual([['fs-a', 60]]);
    expect(impostor.connectionCount).toBe(0); // never dialled
    expect(ctl.isClosed).toBe(false); // refused, not cut off: it may try again with another name
    await expectTrafficUnharmed(bg);
  });

  it("a new name with a live FS's endpoint is refused SB_ERR_ENDPOINT_TAKEN; the real FS's service list is unchanged", async () => {
    const [real] = await h.cluster({}, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    const c = await h.client();
    const keysBefore = fsInfo(h.as, 'fs-a')?.serviceKeys;
    const joined: string[] = [];
    h.as.on('fs-joined', (i) => joined.push(i.id));

    const ctl = await ControlPeer.connect(h);
    const answer = await ctl.hello(helloFor('fs-evil', real.address(), [1, 4242]));

    expect(answer.status).toBe(Status.BAD_REQUEST);
    expect(answer.body?.code).toBe('SB_ERR_ENDPOINT_TAKEN');
    expect(answer.body?.message).toContain('fs-a');
    expect(h.as.manager.counters.refusedHellos.get('SB_ERR_ENDPOINT_TAKEN')).toBe(1);
    expect(joined).toEqual([]);
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-a']);
    expect(fsInfo(h.as, 'fs-a')?.serviceKeys).toEqual(keysBefore);
    expect(keysBefore).toEqual([1, 2, WHO_AM_I]);
    await expect(c.call(4242, {})).rejects.toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND' });
    await expectTrafficUnharmed(bg);
  });
});

describe('a HELLO naming an FS added by address', () => {
  it('cannot take it over: not demote it to standby, not park it with DRAIN, not speak for its load', async () => {
    await h.cluster({ strategy: 'round-robin' }, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    const c = await h.client();
    const b = await h.startFs({ name: 'fs-b', register: false });
    // Added by the operator, by address: its id is host:port, and its DESCRIBE answer says "fs-b", active.
    const id = h.as.addFunctionServer({ host: '127.0.0.1', port: b.address().port }).id;
    await waitForAvailable(h.as, 2);
    expect(fsInfo(h.as, id)).toMatchObject({ name: 'fs-b', standby: false, source: 'manual' });

    // Any process on this host can send this: the entry's id and endpoint, and standby.
    const ctl = await ControlPeer.connect(h);
    const answer = await ctl.hello({ ...helloFor(id, b.address(), [1, WHO_AM_I]), standby: true });
    const drained = await ctl.request(EventKind.DRAIN, {});
    ctl.send(EventKind.LOAD, loadOf(1));
    expect(drained.status).toBe(Status.OK);

    expect(fsInfo(h.as, id)).toMatchObject({ state: 'available', standby: false });
    expect(answer).toMatchObject({ status: Status.BAD_REQUEST, body: { code: 'SB_ERR_NAME_TAKEN' } });
    await waitFor(() => h.as.manager.counters.droppedLoads.get('not-registered') === 1, "the LOAD dropped as 'not-registered'");
    expect(fsInfo(h.as, id)?.load).toBeUndefined();
    expect((await whoAnswers(c, 40)).get('fs-b')).toBeGreaterThan(5);
    await expectTrafficUnharmed(bg);
  });
});

describe('DRAIN and LOAD from a link that does not hold the FS', () => {
  it('a control connection registers one FS: a HELLO for a second name on it is refused and changes nothing; its DRAIN still parks the first', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const x1 = await FakeFs.start(h, { name: 'x1', services: [{ key: 77 }] });
    const x2 = await FakeFs.start(h, { name: 'x2', services: [{ key: 78 }] });
    const ctl = await ControlPeer.connect(h);
    expect((await ctl.hello(helloFor('x1', x1.endpoint, [77]))).status).toBe(Status.OK);
    const second = await ctl.hello(helloFor('x2', x2.endpoint, [78]));
    expect(second.status).toBe(Status.BAD_REQUEST);
    expect(second.body).toMatchObject({ code: 'SB_ERR_BAD_REQUEST', message: expect.stringContaining('registers one FS') });
    expect(h.as.manager.counters.refusedHellos.get('SB_ERR_BAD_REQUEST')).toBe(1);
    expect(h.as.listFunctionServers().map((f) => f.id).sort()).toEqual(['fs-a', 'x1']);
    expect(x2.accepted).toBe(0); // never dialled
    expect(ctl.isClosed).toBe(false);
    // Its own name again is a refresh, not a second FS.
    expect((await ctl.hello(helloFor('x1', x1.endpoint, [77]))).status).toBe(Status.OK);
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'x1')?.state === 'available', 'x1 available');
    expect((await ctl.request(EventKind.DRAIN, {})).status).toBe(Status.OK);
    expect(state('x1')).toBe('draining');
  });

  it('DRAIN on a link that registered nothing (or another FS) does not park a live FS', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    const c = await h.client();

    // A link that never registered: its DRAIN is acknowledged and changes nothing.
    const stranger = await ControlPeer.connect(h);
    const ack = await stranger.request(EventKind.DRAIN, {});
    expect(ack.status).toBe(Status.OK);
    expect(state('fs-a')).toBe('available');

    // A link that registered another FS: its DRAIN parks that FS only.
    const other = await FakeFs.start(h, { name: 'fs-other', services: [{ key: 77 }] });
    const ctl = await ControlPeer.connect(h);
    expect((await ctl.hello(helloFor('fs-other', other.endpoint, [77]))).status).toBe(Status.OK);
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-other')?.state === 'available', 'fs-other available');
    expect((await ctl.request(EventKind.DRAIN, {})).status).toBe(Status.OK);
    expect(state('fs-other')).toBe('draining');
    expect(state('fs-a')).toBe('available');
    expect([...(await whoAnswers(c, 30)).entries()]).toEqual([['fs-a', 30]]);
    await expectTrafficUnharmed(bg);
  });

  it("LOAD from a link that does not hold the entry is dropped ('not-registered'); LOADs faster than loadRefreshMs/4 are dropped ('too-often')", async () => {
    await h.cluster({ loadRefreshMs: 1000 }, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    const dropped = h.as.manager.counters.droppedLoads;
    await waitForRegistry(h.as, (l) => l[0].load !== undefined, 'a LOAD from fs-a');

    // An unregistered link says fs-a... or anyone... is idle: nobody's load changes.
    const stranger = await ControlPeer.connect(h);
    stranger.send(EventKind.LOAD, loadOf(0));
    stranger.send(EventKind.LOAD, loadOf(1));
    await waitFor(() => dropped.get('not-registered') === 2, "two 'not-registered' drops");
    expect(fsInfo(h.as, 'fs-a')?.load?.elu).toBe(0.1);

    // A link whose HELLO was refused holds nothing either.
    expect((await stranger.hello(helloFor('fs-a', { host: '127.0.0.1', port: 1 }))).body?.code).toBe('SB_ERR_NAME_TAKEN');
    stranger.send(EventKind.LOAD, loadOf(1));
    await waitFor(() => dropped.get('not-registered') === 3, "a third 'not-registered' drop");
    expect(fsInfo(h.as, 'fs-a')?.load?.elu).toBe(0.1);

    // An FS that registered itself, reporting five times in a row: the first report is believed,
    // the next four (closer together than 1000 / 4 ms) are dropped.
    const fake = await FakeFs.start(h, { name: 'fs-chatty', services: [{ key: 77 }] });
    const ctl = await ControlPeer.connect(h);
    expect((await ctl.hello(helloFor('fs-chatty', fake.endpoint, [77]))).status).toBe(Status.OK);
    for (const elu of [0.2, 0.9, 0.9, 0.9, 0.9]) ctl.send(EventKind.LOAD, loadOf(elu));
    await waitFor(() => dropped.get('too-often') === 4, "four 'too-often' drops");
    expect(fsInfo(h.as, 'fs-chatty')?.load?.elu).toBe(0.2);
    expect(dropped.get('not-registered')).toBe(3);

    // A real FS whose refresh period is far shorter than the AS's: most of its reports are dropped,
    // and those believed are at least a quarter period apart.
    await h.startFs({ name: 'fs-fast', refreshMs: 20 });
    const accepted: number[] = [];
    const watch = setInterval(() => {
      const at = h.as.manager.get('fs-fast')?.loadReceivedAt ?? 0;
      if (at > 0 && at !== accepted.at(-1)) accepted.push(at);
    }, 5);
    h.defer(() => clearInterval(watch));
    const tooOften = dropped.get('too-often') ?? 0;
    await waitFor(() => (dropped.get('too-often') ?? 0) >= tooOften + 20, "twenty more 'too-often' drops", 3000);
    clearInterval(watch);
    for (let i = 1; i < accepted.length; i++) expect(accepted[i] - accepted[i - 1]).toBeGreaterThanOrEqual(250);
    await expectTrafficUnharmed(bg);
  });
});

describe('a HELLO naming the endpoint of a real FS that did not register', () => {
  it('is dialled, DESCRIBE gives the real name, the bogus entry is removed and its control link closed; the real FS is never used under the false name', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    const c = await h.client();
    const real = await h.startFs({ name: 'fs-real', register: false });
    const left = waitForLeft(h.as, 'fs-bogus');
    const states: string[] = [];
    h.as.on('fs-state', (i) => {
      if (i.id === 'fs-bogus') states.push(i.state);
    });

    const ctl = await ControlPeer.connect(h);
    const answer = await ctl.hello(helloFor('fs-bogus', real.address(), [WHO_AM_I]));
    // Taken on trust for now: nothing else holds that name or endpoint...
    expect(answer.status).toBe(Status.OK);
    expect(answer.body?.fsId).toBe('fs-bogus');
    // ...until the endpoint answers DESCRIBE as someone else.
    expect(await left).toMatch(/answers as fs-real/);
    expect(await ctl.waitClosed()).toBe('remote');
    expect(h.as.closedConnections().control.get('protocol')).toBe(1);
    expect(h.as.manager.counters.refusedHellos.get('SB_ERR_ENDPOINT_MISMATCH')).toBe(1);
    expect(states).toEqual([]); // never available, not even for a moment
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-a']);
    expect([...(await whoAnswers(c, 40)).entries()]).toEqual([['fs-a', 40]]);
    await waitFor(() => real.connectionCount === 0, 'the AS to close its connection to fs-real');
    await expectTrafficUnharmed(bg);
  });
});

describe('restarts keep working', () => {
  it('an FS stopped and started again under the same name is admitted again', async () => {
    const [, old] = await h.cluster({}, [{ name: 'fs-stable' }, { name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    const oldPort = old.address().port;
    const left = waitForLeft(h.as, 'fs-a');
    await old.stop();
    expect(await left).toBe('drained');

    const fresh = await h.startFs({ name: 'fs-a' });
    await waitForAvailable(h.as, 2);
    const e = fsInfo(h.as, 'fs-a') as FunctionServerInfo;
    expect(e.port).toBe(fresh.address().port);
    expect(e.port).not.toBe(oldPort);
    expect(h.as.manager.counters.refusedHellos.size).toBe(0);
    await expectTrafficUnharmed(bg);
  });

  it('an FS whose process died without DRAIN is replaced by a new process with the same name on another port', async () => {
    await h.cluster({}, [{ name: 'fs-stable' }]);
    const bg = await steadyBackground(h);
    const c = await h.client();
    // The old process: registered by its own control link, then gone at once (no DRAIN).
    const dead = await FakeFs.start(h, { name: 'fs-c', services: [{ key: WHO_AM_I, idempotent: true }], onRequest: () => undefined });
    const ctl = await ControlPeer.connect(h);
    expect((await ctl.hello(helloFor('fs-c', dead.endpoint, [{ key: WHO_AM_I, idempotent: true }]))).status).toBe(Status.OK);
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-c')?.state === 'available', 'the old fs-c available');
    await ctl.destroy();
    await dead.stop();
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-c')?.state === 'unavailable', 'the old fs-c unavailable');

    const fresh = await startLookalikeFs(h, 'fs-c', 'fs-c (new)', { applicationServer: { host: '127.0.0.1', port: h.controlPort } });
    await fresh.whenRegistered();
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-c')?.state === 'available' && l.find((f) => f.id === 'fs-c')?.port === fresh.address().port, 'the new fs-c available');
    expect(h.as.manager.counters.refusedHellos.get('SB_ERR_NAME_TAKEN')).toBeUndefined();
    expect((await whoAnswers(c, 60)).get('fs-c (new)')).toBeGreaterThan(0);
    await expectTrafficUnharmed(bg);
  });

  it('a rolling restart: the old FS drains, the new one (same name, another port) is admitted, and the old one finishes its in-flight requests', async () => {
    const [, old] = await h.cluster({}, [{ name: 'fs-stable' }, { name: 'fs-r', drainTimeoutMs: 4000 }]);
    const bg = await steadyBackground(h);
    const c = await h.client();
    // Non-idempotent delayed calls pinned on the old fs-r: they must be answered by it, not re-sent.
    const slow: Promise<Settled>[] = [];
    for (let i = 0; old.inflight < 4 && i < 200; i++) {
      slow.push(settled(c.call(ECHO_DELAYED, { ms: 700, value: i }, { timeoutMs: 4000 })));
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => old.inflight >= 4, 'four delayed calls in flight on the old fs-r');
    const left = waitForLeft(h.as, 'fs-r');
    const stopping = old.stop();
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-r')?.state === 'draining', 'the old fs-r draining');

    const fresh = await h.startFs({ name: 'fs-r' });
    expect(await left).toMatch(/replaced/);
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-r')?.state === 'available' && l.find((f) => f.id === 'fs-r')?.port === fresh.address().port, 'the new fs-r available');
    expect(old.inflight).toBeGreaterThan(0); // still running on the old process, which is out of the registry

    const answers = await Promise.all(slow);
    expect(answers.flatMap((a) => (a.ok ? [] : [a.error.message]))).toEqual([]);
    expect(answers.map((a) => (a.ok ? a.value : undefined))).toEqual(answers.map((_, i) => i));
    await stopping;
    expect(old.inflight).toBe(0);
    expect(h.as.manager.counters.refusedHellos.size).toBe(0);
    await expectTrafficUnharmed(bg);
  });

  it("a late DRAIN on the replaced process's control link does not park its successor", async () => {
    await h.cluster({}, [{ name: 'fs-stable' }]);
    const bg = await steadyBackground(h);
    const c = await h.client();
    // The old fs-r, registered by its own control link, holding one request so that it is retired
    // (kept until it answers) rather than closed when its successor registers.
    const held: Buffer[] = [];
    const old = await FakeFs.start(h, { name: 'fs-r', services: [{ key: ECHO_DELAYED }], onRequest: (f) => held.push(f) });
    const ctl = await ControlPeer.connect(h);
    expect((await ctl.hello(helloFor('fs-r', old.endpoint, [ECHO_DELAYED]))).status).toBe(Status.OK);
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-r')?.state === 'available', 'the old fs-r available');
    const pending: Promise<Settled>[] = [];
    for (let i = 0; held.length === 0 && i < 200; i++) {
      pending.push(settled(c.call(ECHO_DELAYED, { ms: 0, value: i }, { timeoutMs: 4000 })));
      await new Promise((r) => setTimeout(r, 2));
    }
    await waitFor(() => held.length === 1, 'a request held by the old fs-r');
    // FunctionServer.stop sends DRAIN on its pool connections first, then on its control link:
    // here the successor's HELLO lands between the two.
    old.drainAll();
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-r')?.state === 'draining', 'the old fs-r draining');
    const left = waitForLeft(h.as, 'fs-r');
    const fresh = await h.startFs({ name: 'fs-r' });
    expect(await left).toMatch(/replaced/);
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-r')?.port === fresh.address().port && l.find((f) => f.id === 'fs-r')?.state === 'available', 'the new fs-r available');

    // The old process's control-link DRAIN: it speaks for the old process only.
    expect((await ctl.request(EventKind.DRAIN, {})).status).toBe(Status.OK);
    expect(state('fs-r')).toBe('available');
    expect(fsInfo(h.as, 'fs-r')?.port).toBe(fresh.address().port);

    for (const conn of old.conns) conn.send(encodeResponse(requestIdOf(held[0]), Status.OK, 'late but whole', ECHO_DELAYED));
    const results = await Promise.all(pending);
    expect(results.flatMap((r) => (r.ok ? [] : [r.error.message]))).toEqual([]);
    await expectTrafficUnharmed(bg);
  });

  it("a late DRAIN on the replaced process's pool connection does not park its successor", async () => {
    await h.cluster({}, [{ name: 'fs-stable' }]);
    const bg = await steadyBackground(h);
    const c = await h.client();
    // The old fs-r: registered by its control link; it holds one request and answers it when told.
    const held: Buffer[] = [];
    const old = await FakeFs.start(h, { name: 'fs-r', services: [{ key: ECHO_DELAYED }], onRequest: (f) => held.push(f) });
    const ctl = await ControlPeer.connect(h);
    expect((await ctl.hello(helloFor('fs-r', old.endpoint, [ECHO_DELAYED]))).status).toBe(Status.OK);
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-r')?.state === 'available', 'the old fs-r available');
    // fs-stable serves key 2 too; send until one lands on the old fs-r.
    const pending: Promise<Settled>[] = [];
    for (let i = 0; held.length === 0 && i < 200; i++) {
      pending.push(settled(c.call(ECHO_DELAYED, { ms: 0, value: i }, { timeoutMs: 4000 })));
      await new Promise((r) => setTimeout(r, 2));
    }
    await waitFor(() => held.length === 1, 'a request held by the old fs-r');
    expect((await ctl.request(EventKind.DRAIN, {})).status).toBe(Status.OK);
    expect(state('fs-r')).toBe('draining');

    const left = waitForLeft(h.as, 'fs-r');
    const fresh = await h.startFs({ name: 'fs-r' });
    expect(await left).toMatch(/replaced/);
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-r')?.port === fresh.address().port && l.find((f) => f.id === 'fs-r')?.state === 'available', 'the new fs-r available');

    // The old process, still finishing, reports its load on its control link: it is nobody's now.
    ctl.send(EventKind.LOAD, loadOf(1));
    await waitFor(() => h.as.manager.counters.droppedLoads.get('not-registered') === 1, "the old process's LOAD dropped as 'not-registered'");
    expect(fsInfo(h.as, 'fs-r')?.load?.elu).not.toBe(1);
    // And says DRAIN on its pool connection (again, or late).
    old.drainAll();
    // Then answers what it held: its connection was kept for that.
    const f = held[0];
    for (const conn of old.conns) conn.send(encodeResponse(requestIdOf(f), Status.OK, 'late but whole', ECHO_DELAYED));
    const results = await Promise.all(pending);
    expect(results.flatMap((r) => (r.ok ? [] : [r.error.message]))).toEqual([]);
    expect(results.map((r) => (r.ok ? r.value : undefined))).toContain('late but whole');
    // The retired pool closed once idle; the successor was never parked.
    await waitFor(() => old.conns.size === 0, 'the AS to close its connection to the old fs-r');
    expect(state('fs-r')).toBe('available');
    expect(fsInfo(h.as, 'fs-r')?.port).toBe(fresh.address().port);
    await expectTrafficUnharmed(bg);
  });
});
