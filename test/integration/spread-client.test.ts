import { describe, expect, it } from 'vitest';
import { ApplicationServer, ChannelClosedError, Client, Status, type FunctionServer } from '../../src/index.js';
import { HOST, settle, startAs, startFs, steadyLoad, useCleanup, waitFor, type Cleanup } from '../resilience/helpers.js';
import { waitForAvailable } from '../fixtures/cluster.js';

const c = useCleanup();

/** Two ASs, and two FSs that register with both. */
async function twoAs(cl: Cleanup): Promise<{ as: ApplicationServer[]; ports: { port: number; controlPort: number }[]; fss: FunctionServer[] }> {
  const a = await startAs(cl, { heartbeatMs: 200, reconnectCapMs: 200 });
  const b = await startAs(cl, { heartbeatMs: 200, reconnectCapMs: 200 });
  const applicationServers = [a, b].map((x) => ({ host: HOST, port: x.controlPort }));
  const fss = await Promise.all(['fs-1', 'fs-2'].map((n) => startFs(cl, n, undefined, { applicationServers, heartbeatMs: 200, reconnectBaseMs: 50, reconnectCapMs: 200 })));
  await Promise.all([waitForAvailable(a.as, 2), waitForAvailable(b.as, 2)]);
  return { as: [a.as, b.as], ports: [a, b], fss };
}

async function spreadClient(cl: Cleanup, ports: { port: number }[]): Promise<Client> {
  const client = await Client.connect({ endpoints: ports.map((p) => ({ host: HOST, port: p.port })), mode: 'spread', heartbeatMs: 200, reconnect: { baseMs: 50, capMs: 200 } });
  cl.defer(() => client.close());
  return client;
}

const servedOn = (as: ApplicationServer): number => as.listFunctionServers().reduce((n, f) => n + f.served, 0);

describe('client spread mode', () => {
  it('spreads calls over every AS, each by its own in-flight count', async () => {
    const { as, ports } = await twoAs(c);
    const client = await spreadClient(c, ports);
    await waitFor(() => client.spread?.list().every((a) => a.connected) === true, 'both ASs connected');
    const answers = await Promise.all(Array.from({ length: 400 }, (_, i) => client.call(1, { i })));
    expect(answers).toHaveLength(400);
    const [sentA, sentB] = client.spread?.list().map((a) => a.sent) ?? [];
    expect(sentA + sentB).toBe(400);
    expect(sentA).toBeGreaterThan(100);
    expect(sentB).toBeGreaterThan(100);
    expect(servedOn(as[0])).toBe(sentA);
    expect(servedOn(as[1])).toBe(sentB);
    expect(client.inflight).toBe(0);
  });

  it('an AS stopped under load: idempotent calls all succeed on the other, non-idempotent ones pending on it fail with CHANNEL_CLOSED; restarted, it gets calls again', async () => {
    const { as, ports } = await twoAs(c);
    const client = await spreadClient(c, ports);
    await waitFor(() => client.spread?.list().every((a) => a.connected) === true, 'both ASs connected');
    const events: string[] = [];
    client.on('connected', (e) => events.push(`connected ${e.endpoint.port}`));
    client.on('disconnected', (e) => events.push(`disconnected ${e.endpoint.port}`));
    const load = steadyLoad(8, (i) => client.call(2, { ms: 5, value: i }, { idempotent: true, timeoutMs: 3000 }));
    await waitFor(() => load.ok() >= 200, 'idempotent load to run');
    // Non-idempotent calls that take long enough to be pending on both ASs when one stops.
    const slow = Array.from({ length: 20 }, (_, i) => settle(client.call(2, { ms: 400, value: i }, { timeoutMs: 3000 })));
    await waitFor(() => (client.spread?.list()[1].inflight ?? 0) >= 10, 'slow calls on AS b');
    const sentBefore = client.spread?.list()[1].sent ?? 0;
    await as[1].stop();
    const okAtStop = load.ok();
    await waitFor(() => load.ok() >= okAtStop + 300, 'idempotent load to carry on over AS a');
    const result = await load.stop();
    expect(result.errors).toEqual([]);
    const outcomes = await Promise.all(slow);
    const failed = outcomes.filter((o) => !o.ok);
    // Those on the lost AS fail with CHANNEL_CLOSED; those on the other are answered.
    expect(failed.length).toBeGreaterThan(0);
    expect(outcomes.length - failed.length).toBeGreaterThan(0);
    for (const f of failed) expect(f.ok === false && f.error).toBeInstanceOf(ChannelClosedError);
    expect(client.spread?.list()[1].movedAway).toBeGreaterThan(0);
    expect(client.spread?.list()[1].connected).toBe(false);

    // The same ports again: the FSs register, the client reconnects in the background and uses it.
    const again = new ApplicationServer({ port: ports[1].port, controlPort: ports[1].controlPort, heartbeatMs: 200, reconnectCapMs: 200, clientDrainTimeoutMs: 0 });
    await again.start();
    c.defer(() => again.stop());
    await waitForAvailable(again, 2, 5000);
    await waitFor(() => client.spread?.list()[1].connected === true, 'the client to reconnect to the restarted AS', 5000);
    await Promise.all(Array.from({ length: 200 }, (_, i) => client.call(1, { i }, { idempotent: true })));
    expect((client.spread?.list()[1].sent ?? 0) - sentBefore).toBeGreaterThan(50);
    expect(servedOn(again)).toBeGreaterThan(50);
    expect(servedOn(as[0])).toBeGreaterThan(0);
    // The spread client reported losing AS b and having it again.
    expect(events[0]).toBe(`disconnected ${ports[1].port}`);
    expect(events).toContain(`connected ${ports[1].port}`);
    expect(events.some((e) => e.endsWith(String(ports[0].port)))).toBe(false);
  });

  it('an AS restarted with no FS back yet answers UNAVAILABLE during its start-up grace, not SERVICE_NOT_FOUND: spread calls go to the other AS', async () => {
    const { as, ports } = await twoAs(c);
    await as[1].stop();
    // Back on its client port, but on a new control port: its FSs have not found it yet.
    const restarted = new ApplicationServer({ port: ports[1].port, controlPort: 0, heartbeatMs: 200, clientDrainTimeoutMs: 0 });
    await restarted.start();
    c.defer(() => restarted.stop());
    const client = await spreadClient(c, ports);
    await waitFor(() => client.spread?.list().every((a) => a.connected) === true, 'both ASs connected');
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => client.call(1, i, { idempotent: false })));
    expect(answers).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(restarted.dispatcher.localAnswers.get(Status.UNAVAILABLE) ?? 0).toBeGreaterThan(0);
    expect(restarted.dispatcher.localAnswers.get(Status.SERVICE_NOT_FOUND) ?? 0).toBe(0);
    // A director-mode client's LOOKUP and a RESOLVE of a name get the same answer in the grace.
    const alone = await Client.connect({ port: ports[1].port });
    c.defer(() => alone.close());
    await expect(alone.lookup(1)).rejects.toMatchObject({ code: 'SB_ERR_UNAVAILABLE' });
    await expect(alone.resolve('echo.echo')).rejects.toMatchObject({ code: 'SB_ERR_UNAVAILABLE' });
    // Once the grace is over, an unknown key (or name) is not found.
    const after = new ApplicationServer({ port: 0, controlPort: 0, startupGraceMs: 0 });
    await after.start();
    c.defer(() => after.stop());
    const lone = await Client.connect({ port: after.ports.port });
    c.defer(() => lone.close());
    await expect(lone.call(1, 'x')).rejects.toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND' });
    await expect(lone.lookup(1)).rejects.toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND' });
    await expect(lone.resolve('echo.echo')).rejects.toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND' });
  });

  it('a call an AS answers SB_ERR_UNAVAILABLE (it has no FS ready) goes to another AS, idempotent or not', async () => {
    const { as, ports } = await twoAs(c);
    const client = await spreadClient(c, ports);
    await waitFor(() => client.spread?.list().every((a) => a.connected) === true, 'both ASs connected');
    // The second AS has no FS to send to, as one that just restarted before its FSs are back.
    for (const f of as[1].listFunctionServers()) expect(as[1].drain(f.id)).toBe(true);
    const before = servedOn(as[0]);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => client.call(1, i, { idempotent: false })));
    expect(answers).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(servedOn(as[0]) - before).toBe(40);
    const [a, b] = client.spread?.list() ?? [];
    expect(b.movedAway).toBeGreaterThan(0);
    expect(b.movedAway).toBe(b.sent);
    expect(a.movedAway).toBe(0);
    // With no AS left that could take it, the caller gets the refusal itself.
    for (const f of as[0].listFunctionServers()) as[0].drain(f.id);
    await expect(client.call(1, 'x')).rejects.toMatchObject({ code: 'SB_ERR_UNAVAILABLE' });
  });

  it('waits for an AS that is down at start and uses it once it is up', async () => {
    const { ports } = await twoAs(c);
    const c2 = await startAs(c, {});
    const dead = c2.port;
    await c2.as.stop();
    const client = await spreadClient(c, [ports[0], { port: dead }]);
    expect(client.spread?.list().map((a) => a.connected)).toEqual([true, false]);
    expect(await client.call(1, 'x')).toBe('x');
    const late = new ApplicationServer({ port: dead, controlPort: 0 });
    await late.start();
    c.defer(() => late.stop());
    await waitFor(() => client.spread?.list()[1].connected === true, 'the late AS to be dialled again', 5000);
  });

  it('fails to connect when no AS answers', async () => {
    const a = await startAs(c, {});
    const port = a.port;
    await a.as.stop();
    await expect(Client.connect({ endpoints: [{ host: HOST, port }], mode: 'spread', connectTimeoutMs: 500 })).rejects.toThrow(/cannot connect/);
  });
});
