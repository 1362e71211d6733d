import { describe, expect, it } from 'vitest';
import { ECHO, ECHO_DELAYED } from '../../src/plugins/samples/echo-plugin.js';
import { Client, OverloadedError, Status, encodeRequest, requestIdOf, statusOf, type ApplicationServerOptions, type LoadSampler } from '../../src/index.js';
import { RawPeer, connectClient, fsInfo, settle, startAs, startFs, useCleanup, waitFor, waitForState, withTimeout } from './helpers.js';

const HB = 200;
const c = useCleanup();

async function oneFs(asOpts: ApplicationServerOptions, fsMaxInflight?: number) {
  const { as, port, controlPort } = await startAs(c, { heartbeatMs: HB, ...asOpts });
  const fs = await startFs(c, 'fs-o', controlPort, { heartbeatMs: HB, maxInflight: fsMaxInflight });
  await waitForState(as, 'fs-o', 'available');
  return { as, port, fs };
}

/** Six slow calls at once; returns how each ended. */
async function sixAtOnce(client: Client) {
  return Promise.all(Array.from({ length: 6 }, (_, i) => settle(client.call(ECHO_DELAYED, { ms: 200, value: i }, { timeoutMs: 5000 }))));
}

function expectFiveOkThenOverloaded(results: Awaited<ReturnType<typeof sixAtOnce>>): void {
  expect(results.slice(0, 5).map((r) => (r.ok ? r.value : r.error.message))).toEqual([0, 1, 2, 3, 4]);
  const sixth = results[5];
  expect(sixth.ok).toBe(false);
  if (sixth.ok) return;
  expect(sixth.error).toBeInstanceOf(OverloadedError);
  expect(sixth.error.status).toBe(Status.OVERLOADED);
}

describe('overload limits', () => {
  it('maxInflightPerClient: the sixth concurrent call on a connection is refused OVERLOADED, the first five succeed', async () => {
    const { port } = await oneFs({ maxInflightPerClient: 5 });
    const client = await connectClient(c, port);
    expectFiveOkThenOverloaded(await sixAtOnce(client));
    // The limit is per connection: another client is not affected, and the first recovers once answered.
    const other = await connectClient(c, port);
    expect(await other.call(ECHO, 'x')).toBe('x');
    expect(await client.call(ECHO, 'y')).toBe('y');
  });

  it('maxInflightPerFs: the AS refuses a call beyond the FS limit with OVERLOADED', async () => {
    const { port } = await oneFs({ maxInflightPerFs: 5 });
    const client = await connectClient(c, port);
    expectFiveOkThenOverloaded(await sixAtOnce(client));
  });

  it('FS maxInflight: the FS itself answers OVERLOADED beyond its limit', async () => {
    const { as, port } = await oneFs({}, 5);
    const client = await connectClient(c, port);
    expectFiveOkThenOverloaded(await sixAtOnce(client));
    expect(as.dispatcher.localAnswers.get(Status.OVERLOADED) ?? 0).toBe(0); // the answer came from the FS, not the AS
  });

  it('FS maxOneWayInflight: slow one-way requests take at most half the slots; the rest are dropped and two-way calls still run', async () => {
    const { port, fs } = await oneFs({}, 10);
    const client = await connectClient(c, port);
    // Twenty slow one-way requests: five run (half of maxInflight 10), fifteen are dropped.
    for (let i = 0; i < 20; i++) client.send(ECHO_DELAYED, { ms: 2000, value: i });
    await waitFor(() => fs.inflight === 5 && fs.oneWayDropped === 15, 'five one-way requests running, fifteen dropped');
    // Two-way callers keep the other half.
    const calls = await Promise.all(Array.from({ length: 5 }, (_, i) => settle(client.call(ECHO_DELAYED, { ms: 50, value: i }, { timeoutMs: 5000 }))));
    expect(calls.map((r) => (r.ok ? r.value : r.error.message))).toEqual([0, 1, 2, 3, 4]);
  });

  it('maxInflightPerFs: refuses only when every compatible FS is full, not when the one it picked is', async () => {
    const steady = (elu: number): LoadSampler => ({ sample: (inflight) => ({ cpu: elu, elu, rssBytes: 5e7, heapUsedBytes: 2e7, memory: 0.05, inflight }) });
    const { as, port, controlPort } = await startAs(c, { heartbeatMs: HB, maxInflightPerFs: 3, loadRefreshMs: 100 });
    await startFs(c, 'fs-idle', controlPort, { heartbeatMs: HB, refreshMs: 100, monitor: steady(0) });
    await startFs(c, 'fs-busy', controlPort, { heartbeatMs: HB, refreshMs: 100, monitor: steady(1) });
    await Promise.all([waitForState(as, 'fs-idle', 'available'), waitForState(as, 'fs-busy', 'available')]);
    await waitFor(() => fsInfo(as, 'fs-busy')?.loadScore === 1 && fsInfo(as, 'fs-idle')?.loadAgeMs !== undefined, 'both load reports');
    const client = await connectClient(c, port);
    // Cost (in flight + 1) x (1 + 4 x load): fs-busy costs 5; fs-idle 1, 2, 3 takes calls 0-2, then at its limit
    // still costs 4 < 5, so it is picked for calls 3-5 and they are refused while fs-busy has nothing in flight.
    const results = await sixAtOnce(client);
    expect(results.map((r) => (r.ok ? r.value : r.error.message))).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('maxConnections: a third connection gets one OVERLOADED frame with request id 0 and is closed; the first two keep working', async () => {
    const { as, port } = await oneFs({ maxConnections: 2 });
    const first = await connectClient(c, port);
    const second = await connectClient(c, port);
    await waitFor(() => as.clientConnections === 2, 'the AS to hold two client connections');
    const third = await RawPeer.connect(c, port);
    await third.closed;
    expect(third.frames).toHaveLength(1);
    expect(requestIdOf(third.frames[0])).toBe(0);
    expect(statusOf(third.frames[0])).toBe(Status.OVERLOADED);
    expect(await first.call(ECHO, 1)).toBe(1);
    expect(await second.call(ECHO, 2)).toBe(2);
    expect(as.clientConnections).toBe(2);
  });

  it('Client.connect to an AS at maxConnections fails with the clear OverloadedError the AS sent', async () => {
    const { port } = await oneFs({ maxConnections: 1 });
    await connectClient(c, port);
    // TCP accepts before the AS decides; connect() waits for its first heartbeat answer, and gets the refusal instead.
    const r = await settle(connectClient(c, port));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toBeInstanceOf(OverloadedError);
    expect(r.error.message).toMatch(/maxConnections/);
  });
});

describe('hostile clients', () => {
  it('a client that sends half a header and then trickles the rest is closed by the read timeout alone; others are served meanwhile', async () => {
    const { as, port } = await oneFs({});
    const readTimeoutMs = Math.max(1000, 3 * HB); // the AS's stalled-frame timeout
    const client = await connectClient(c, port);
    const stalled = await RawPeer.connect(c, port);
    // 14 header bytes and a 300-byte body still to come, one byte per 100 ms: 30 s to finish.
    // Bytes arrive in every heartbeat period, so the heartbeat rule never finds this peer silent
    // (it cannot answer pings instead: a pong's bytes would become the rest of its frame); only
    // the stalled-frame rule, which trickled bytes do not extend, can close it.
    const frame = encodeRequest(1, ECHO, 'x'.repeat(300));
    const t0 = performance.now();
    stalled.socket.write(frame.subarray(0, 10));
    c.defer(stalled.trickle(frame.subarray(10), 100));
    const closedAfter = stalled.closed.then(() => performance.now() - t0);
    for (let i = 0; i < 5; i++) expect(await client.call(ECHO, i)).toBe(i);
    // Closed at readTimeoutMs after the first byte (the upper bound is only for a busy machine).
    const after = await withTimeout(closedAfter, readTimeoutMs + 1500, 'the AS to close the stalled client');
    expect(after).toBeGreaterThanOrEqual(readTimeoutMs - 50);
    const closed = as.closedConnections().client;
    expect(closed.get('read-timeout')).toBe(1);
    expect(closed.get('heartbeat')).toBe(0);
    expect(stalled.socket.bytesWritten).toBeLessThan(frame.length); // the frame never finished
    expect(stalled.traffic()).toEqual([]);
    expect(await client.call(ECHO, 'still here')).toBe('still here');
  });
});
