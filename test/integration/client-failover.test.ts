import { createServer, Socket, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  ApplicationServer,
  ChannelClosedError,
  Client,
  DeadlineExceededError,
  FunctionServer,
  NotActiveError,
  OverloadedError,
  Status,
  type Endpoint,
  type SwitchboardError,
} from '../../src/index.js';
import { EventKind, FrameParser, encodeEventResponse, encodeResponse, eventKindOf, isEvent, isRequest, requestIdOf } from '../../src/protocol/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { waitFor, withTimeout } from '../fixtures/wait.js';
import {
  COUNT_IDEMPOTENT,
  COUNT_ONCE,
  Counts,
  HOST,
  freeTcpPort,
  pairClient,
  startPair,
  startPairFs,
  startStoppedOnce,
  usePairCleanup,
  waitAvailable,
  type PairCleanup,
} from '../fixtures/pair-cluster.js';

/*
 * The client SDK following an AS pair, and reconnecting on its own: NOT_ACTIVE redirects, failover
 * when the active stops, re-sending idempotent calls, calls that wait for a connection (bounded by
 * their deadline and by maxQueued), reconnect: false, and the backoff between dials.
 */

const at = (port: number): Endpoint => ({ host: HOST, port });

type ClientEvent = { kind: 'connected' | 'disconnected' | 'failover'; at: number; [k: string]: unknown };

function recordEvents(client: Client): ClientEvent[] {
  const seen: ClientEvent[] = [];
  client.on('connected', (e) => seen.push({ kind: 'connected', at: performance.now(), ...e }));
  client.on('disconnected', (e) => seen.push({ kind: 'disconnected', at: performance.now(), ...e }));
  client.on('failover', (e) => seen.push({ kind: 'failover', at: performance.now(), ...e }));
  return seen;
}

async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: SwitchboardError }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error: error as SwitchboardError };
  }
}

/** A plain AS (no pair) on fixed ports, with an FS added by address and available before its client port opens. */
async function asWithFs(c: PairCleanup, port: number, fsPort: number): Promise<ApplicationServer> {
  const as = new ApplicationServer({ port, controlPort: 0, reconnectBaseMs: 20, reconnectCapMs: 200, clientDrainTimeoutMs: 0 });
  as.addFunctionServer({ host: HOST, port: fsPort, name: 'fs-by-address' });
  // The pool dials before start(): no client can arrive before the FS is there.
  await waitAvailable(as, 'fs-by-address', 5000);
  return startStoppedOnce(c, as);
}

async function lonelyFs(c: PairCleanup): Promise<FunctionServer> {
  const fs = new FunctionServer({ name: 'fs-by-address', plugins: [EchoPlugin], drainTimeoutMs: 200 });
  await fs.start();
  c.defer(() => fs.stop());
  return fs;
}

/** A pair (a active, b standby) with one FS, fs-1, available on both; with standbyKnowsActive, b can name a in NOT_ACTIVE. */
async function pairWithFs(c: PairCleanup, o: { standbyKnowsActive?: boolean } = {}): Promise<{ a: ApplicationServer; b: ApplicationServer; counts: Counts }> {
  const { a, b } = await startPair(c);
  const counts = new Counts();
  await startPairFs(c, 'fs-1', [a, b], counts);
  await Promise.all([waitAvailable(a, 'fs-1'), waitAvailable(b, 'fs-1')]);
  if (o.standbyKnowsActive) await waitFor(() => b.pairStatus()?.sibling?.clientEndpoint !== undefined, 'the standby to know where the active serves');
  return { a, b, counts };
}

/** Records when this process dials `port` (every net.connect goes through Socket.prototype.connect). */
function recordDials(c: PairCleanup, port: number): number[] {
  const dials: number[] = [];
  const original = Socket.prototype.connect;
  Socket.prototype.connect = function (this: Socket, ...args: unknown[]) {
    const first = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0];
    if (first !== null && typeof first === 'object' && (first as { port?: unknown }).port === port) dials.push(performance.now());
    return (original as (...a: unknown[]) => Socket).apply(this, args);
  } as typeof original;
  c.defer(() => {
    Socket.prototype.connect = original;
  });
  return dials;
}

/**
 * A hand-made "AS" on port 0: answers heartbeats (unless `mute`), and every request with `answer`
 * (none: no answer). Counts the connections it takes.
 */
async function fakeAs(c: PairCleanup, o: { mute?: boolean; answer?: (id: number) => Buffer } = {}): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    const parser = new FrameParser({
      onFrame: (f) => {
        if (o.mute) return;
        if (isEvent(f)) {
          if (isRequest(f) && eventKindOf(f) === EventKind.HEARTBEAT) s.write(encodeEventResponse(EventKind.HEARTBEAT, requestIdOf(f), undefined));
          return;
        }
        if (o.answer) s.write(o.answer(requestIdOf(f)));
      },
      onError: () => s.destroy(),
    });
    s.on('data', (d: Buffer) => parser.push(d));
  });
  await new Promise<void>((r) => server.listen(0, HOST, () => r()));
  c.defer(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as { port: number }).port, connections: () => connections };
}

describe('a client whose AS is there but cannot serve', () => {
  const c = usePairCleanup();

  it('an AS that answers NOT_ACTIVE naming no active (its pair has none): moves back off after one round, and the call fails at its deadline saying so', async () => {
    const notActive = (id: number): Buffer => encodeResponse(id, Status.NOT_ACTIVE, { code: 'SB_ERR_NOT_ACTIVE', message: 'this application server is not the active of its pair' });
    const as = await fakeAs(c, { answer: notActive });
    const client = await pairClient(c, { endpoints: [at(as.port)], reconnect: { baseMs: 100, capMs: 1000 } });
    const r = await settle(client.call(1, 'x', { timeoutMs: 2000 }));
    expect(r.ok).toBe(false);
    expect((r as { error: SwitchboardError }).error).toMatchObject({ code: 'SB_ERR_TIMEOUT', message: expect.stringContaining('answered NOT_ACTIVE and named no active') });
    // Backoff from 100 ms, at most 250 ms between moves, over 2 s: a dozen connections, not one per round trip.
    expect(as.connections()).toBeGreaterThan(2);
    expect(as.connections()).toBeLessThan(25);
  });

  it('while every AS answers NOT_ACTIVE the client polls a few times a second, so it reaches a new active within a poll, not after a long backoff', async () => {
    let activeSince = 0;
    const answer = (id: number): Buffer =>
      activeSince > 0 ? encodeResponse(id, Status.OK, 'served') : encodeResponse(id, Status.NOT_ACTIVE, { code: 'SB_ERR_NOT_ACTIVE', message: 'this application server is not the active of its pair' });
    const as = await fakeAs(c, { answer });
    // The SDK's default backoff (100 ms doubling to 5 s) would by now wait a second or more between moves.
    const client = await pairClient(c, { endpoints: [at(as.port)], reconnect: { baseMs: 100, capMs: 5000 } });
    const flip = setTimeout(() => (activeSince = performance.now()), 2500);
    c.defer(() => clearTimeout(flip));
    expect(await client.call(1, 'x', { timeoutMs: 8000 })).toBe('served');
    expect(performance.now() - activeSince).toBeLessThan(700);
    // About four connections a second while it waited.
    expect(as.connections()).toBeLessThan(20);
  });

  it('connect() passes over an endpoint that takes the connection but never answers a heartbeat (a frozen AS) for the next one', async () => {
    const frozen = await fakeAs(c, { mute: true });
    const alive = await fakeAs(c);
    const started = performance.now();
    const client = await pairClient(c, { endpoints: [at(frozen.port), at(alive.port)], connectTimeoutMs: 400 });
    expect(client.endpoint).toEqual(at(alive.port));
    expect(client.connected).toBe(true);
    expect(frozen.connections()).toBe(1);
    expect(performance.now() - started).toBeGreaterThanOrEqual(390);
    // Alone, the frozen one is refused with a ConnectError that says what it saw.
    await expect(Client.connect({ endpoints: [at(frozen.port)], connectTimeoutMs: 300 })).rejects.toMatchObject({ code: 'SB_ERR_CONNECT', message: expect.stringContaining('did not answer a heartbeat') });
  });
});

describe('a client given both ASs of a pair', () => {
  const c = usePairCleanup();

  it('listing the standby first: connects there, is answered NOT_ACTIVE, moves to the active (failover) and the call runs once', async () => {
    const { a, b, counts } = await pairWithFs(c, { standbyKnowsActive: true });
    const client = await pairClient(c, { endpoints: [at(b.ports.port), at(a.ports.port)] });
    expect(client.endpoint).toEqual(at(b.ports.port));
    const events = recordEvents(client);

    const answer = await client.call(COUNT_ONCE, { tag: 'first' }, { timeoutMs: 3000 });
    expect(answer).toEqual({ tag: 'first', runs: 1, fs: 'fs-1' });
    expect(counts.of('first')).toBe(1);
    expect(b.dispatcher.localAnswers.get(Status.NOT_ACTIVE)).toBe(1);
    expect(client.endpoint).toEqual(at(a.ports.port));
    // The standby's connection, left once its one call came back, is reported gone too (its close
    // and the new connection race; failover always follows connected).
    const seen = events.map(({ at: _, ...e }) => e);
    expect(seen.filter((e) => e.kind !== 'disconnected')).toEqual([
      { kind: 'connected', endpoint: at(a.ports.port) },
      { kind: 'failover', from: at(b.ports.port), to: at(a.ports.port), reason: 'the AS answered NOT_ACTIVE' },
    ]);
    await waitFor(() => events.some((e) => e.kind === 'disconnected'), 'the standby connection to be reported closed');
    expect(events.filter((e) => e.kind === 'disconnected').map(({ at: _, ...e }) => e)).toEqual([{ kind: 'disconnected', endpoint: at(b.ports.port), reason: 'the AS answered NOT_ACTIVE' }]);
    // Later calls go straight to the active.
    expect(await client.call(COUNT_ONCE, { tag: 'second' }, { timeoutMs: 3000 })).toMatchObject({ runs: 1 });
    expect(b.dispatcher.localAnswers.get(Status.NOT_ACTIVE)).toBe(1);
  });

  it('with followRedirects: false and only the standby listed, a call fails at once with NotActiveError naming the active, and did not run', async () => {
    const { a, b, counts } = await pairWithFs(c, { standbyKnowsActive: true });
    const client = await pairClient(c, { endpoints: [at(b.ports.port)], followRedirects: false });
    const r = await settle(client.call(COUNT_ONCE, { tag: 'pinned' }, { timeoutMs: 5000 }));
    expect(r.ok).toBe(false);
    const err = (r as { error: SwitchboardError }).error;
    expect(err).toBeInstanceOf(NotActiveError);
    expect((err as NotActiveError).active).toEqual(at(a.ports.port));
    expect(counts.of('pinned')).toBe(0);
    // A second call is told the same way, and the client never went to the active.
    await expect(client.call(COUNT_ONCE, { tag: 'pinned' }, { timeoutMs: 5000 })).rejects.toBeInstanceOf(NotActiveError);
    expect(a.dispatcher.relayedAnswers.reduce((x, n) => x + n, 0)).toBe(0);
  });

  it('when the active stops, reconnects to the new active by itself: idempotent calls in flight are sent again and succeed, the others fail with CHANNEL_CLOSED', async () => {
    const { a, b, counts } = await pairWithFs(c);
    const client = await pairClient(c, { endpoints: [at(a.ports.port), at(b.ports.port)] });
    const events = recordEvents(client);

    const idempotent = [1, 2, 3].map((i) => settle(client.call(COUNT_IDEMPOTENT, { tag: `idem-${i}`, ms: 400 }, { timeoutMs: 5000, idempotent: true })));
    const once = [1, 2, 3].map((i) => settle(client.call(COUNT_ONCE, { tag: `once-${i}`, ms: 400 }, { timeoutMs: 5000 })));
    await waitFor(() => counts.total === 6, 'the six calls to reach the FS through a');
    await a.stop();

    for (const r of await Promise.all(idempotent)) {
      expect(r.ok, r.ok ? '' : r.error.message).toBe(true);
    }
    for (const [i, r] of (await Promise.all(once)).entries()) {
      expect(r.ok).toBe(false);
      const e = (r as { error: SwitchboardError }).error;
      expect(e).toBeInstanceOf(ChannelClosedError);
      expect(e.code).toBe('SB_ERR_CHANNEL_CLOSED');
      expect(e.status).toBe(Status.CHANNEL_CLOSED);
      expect(counts.of(`once-${i + 1}`)).toBe(1);
    }
    // Each idempotent call ran on a (answer lost) and again through b.
    for (const i of [1, 2, 3]) expect(counts.of(`idem-${i}`)).toBe(2);
    expect(b.role).toBe('active');
    expect(client.endpoint).toEqual(at(b.ports.port));
    expect(events.map(({ at: _, ...e }) => e)).toEqual([
      { kind: 'disconnected', endpoint: at(a.ports.port), reason: expect.any(String) },
      { kind: 'connected', endpoint: at(b.ports.port) },
      { kind: 'failover', from: at(a.ports.port), to: at(b.ports.port), reason: 'connection lost' },
    ]);
    expect(await client.call(COUNT_ONCE, { tag: 'after' }, { timeoutMs: 3000 })).toMatchObject({ runs: 1 });
  });
});

describe('a client while no AS is up', () => {
  const c = usePairCleanup();

  it('single endpoint: a call made while the AS is down waits, and succeeds once it is back on the same port', async () => {
    const fs = await lonelyFs(c);
    const port = await freeTcpPort();
    const first = await asWithFs(c, port, fs.address().port);
    const client = await pairClient(c, { port });
    const events = recordEvents(client);
    expect(await client.call(1, 'before')).toBe('before');

    const lost = new Promise((r) => client.once('disconnected', r));
    await first.stop();
    await withTimeout(lost, 3000, 'the client to see the loss');
    const waiting = settle(client.call(1, 'waited', { timeoutMs: 8000 }));
    expect(client.connected).toBe(false);
    expect(client.inflight).toBe(1);

    await asWithFs(c, port, fs.address().port);
    const r = await waiting;
    expect(r).toEqual({ ok: true, value: 'waited' });
    expect(events.map((e) => e.kind)).toEqual(['disconnected', 'connected']);
    expect(client.endpoint).toEqual(at(port));
  });

  it('a waiting call fails with TIMEOUT "no application server could be reached" when none comes: it never waits forever', async () => {
    const fs = await lonelyFs(c);
    const port = await freeTcpPort();
    const as = await asWithFs(c, port, fs.address().port);
    const client = await pairClient(c, { port });
    const lost = new Promise((r) => client.once('disconnected', r));
    await as.stop();
    await withTimeout(lost, 3000, 'the client to see the loss');
    const t0 = performance.now();
    const r = await settle(client.call(1, 'nobody', { timeoutMs: 400 }));
    const waited = performance.now() - t0;
    console.log(`a queued call with a 400 ms deadline failed after ${waited.toFixed(0)} ms`);
    expect(r.ok).toBe(false);
    const e = (r as { error: SwitchboardError }).error;
    expect(e).toBeInstanceOf(DeadlineExceededError);
    expect(e.code).toBe('SB_ERR_TIMEOUT');
    expect(e.status).toBe(Status.TIMEOUT);
    expect(e.message).toMatch(/no application server could be reached/);
    expect(waited).toBeGreaterThanOrEqual(390);
    expect(waited).toBeLessThan(400 + 1000 + 1000);
    expect(client.inflight).toBe(0);
  });

  // docs/pair.md §5: "Calls made while no connection is up wait for one, at most until their
  // deadline." A queued call gets the 1 s grace meant for a silent AS on top (bug: see the report).
  it('a waiting call fails at its own deadline, not a grace second later', async () => {
    const fs = await lonelyFs(c);
    const port = await freeTcpPort();
    const as = await asWithFs(c, port, fs.address().port);
    const client = await pairClient(c, { port });
    const lost = new Promise((r) => client.once('disconnected', r));
    await as.stop();
    await withTimeout(lost, 3000, 'the client to see the loss');
    const t0 = performance.now();
    const r = await settle(client.call(1, 'nobody', { timeoutMs: 400 }));
    expect(r.ok).toBe(false);
    expect(performance.now() - t0).toBeLessThan(400 + 400);
  });

  it('maxQueued bounds the calls that wait: beyond it a call fails at once with OVERLOADED; the waiting ones succeed when the AS is back', async () => {
    const fs = await lonelyFs(c);
    const port = await freeTcpPort();
    const first = await asWithFs(c, port, fs.address().port);
    const client = await pairClient(c, { port, maxQueued: 2 });
    const lost = new Promise((r) => client.once('disconnected', r));
    await first.stop();
    await withTimeout(lost, 3000, 'the client to see the loss');
    const queued = [settle(client.call(1, 'q1', { timeoutMs: 8000 })), settle(client.call(1, 'q2', { timeoutMs: 8000 }))];
    const t0 = performance.now();
    const third = await settle(client.call(1, 'q3', { timeoutMs: 8000 }));
    expect(performance.now() - t0).toBeLessThan(100);
    expect(third.ok).toBe(false);
    const e = (third as { error: SwitchboardError }).error;
    expect(e).toBeInstanceOf(OverloadedError);
    expect(e.code).toBe('SB_ERR_OVERLOADED');
    expect(e.message).toMatch(/2 calls already wait/);
    await asWithFs(c, port, fs.address().port);
    expect(await Promise.all(queued)).toEqual([
      { ok: true, value: 'q1' },
      { ok: true, value: 'q2' },
    ]);
  });

  it('reconnect: false keeps the old behaviour: every pending call fails with CHANNEL_CLOSED, later calls fail at once, and it never dials again', async () => {
    const fs = await lonelyFs(c);
    const port = await freeTcpPort();
    const first = await asWithFs(c, port, fs.address().port);
    const client = await pairClient(c, { port, reconnect: false });
    const events = recordEvents(client);
    const pending = [
      settle(client.call(2, { ms: 2000, value: 'slow' }, { timeoutMs: 5000 })),
      settle(client.call(2, { ms: 2000, value: 'slow' }, { timeoutMs: 5000, idempotent: true })),
    ];
    await waitFor(() => first.listFunctionServers()[0]?.inflight === 2, 'the two calls to reach the FS');
    const dials = recordDials(c, port);
    await first.stop();
    for (const r of await Promise.all(pending)) {
      expect(r.ok).toBe(false);
      expect((r as { error: SwitchboardError }).error).toBeInstanceOf(ChannelClosedError);
    }
    const second = await asWithFs(c, port, fs.address().port);
    const later = await settle(client.call(1, 'later', { timeoutMs: 2000 }));
    expect(later.ok).toBe(false);
    expect((later as { error: SwitchboardError }).error).toBeInstanceOf(ChannelClosedError);
    expect((later as { error: SwitchboardError }).error.message).toMatch(/reconnection is off/);
    expect(client.connected).toBe(false);
    expect(second.clientConnections).toBe(0);
    expect(dials).toEqual([]);
    expect(events.map((e) => e.kind)).toEqual(['disconnected']);
  });

  it('backs off between dials to a closed port, with jitter and a cap', async () => {
    const fs = await lonelyFs(c);
    const port = await freeTcpPort();
    const as = await asWithFs(c, port, fs.address().port);
    const baseMs = 10;
    const capMs = 80;
    const client = await pairClient(c, { port, reconnect: { baseMs, capMs } });
    const dials = recordDials(c, port);
    const lost = new Promise((r) => client.once('disconnected', r));
    await as.stop();
    await withTimeout(lost, 3000, 'the loss');
    const t0 = performance.now();
    await waitFor(() => performance.now() - t0 >= 1500, 'a 1.5 s window', 3000, 50);
    const window = dials.filter((t) => t - t0 <= 1500);
    const gaps = window.slice(1).map((t, i) => t - window[i]);
    console.log(`dials to a closed port in 1.5 s: ${window.length}; gaps (ms): ${gaps.map((g) => g.toFixed(0)).join(' ')}`);
    // Base 10 ms doubling to the 80 ms cap: 5-10, 10-20, 20-40, 40-80, then 40-80 for good.
    // Without the cap there would be ~8 dials; without backoff, thousands.
    expect(window.length).toBeGreaterThanOrEqual(12);
    expect(window.length).toBeLessThanOrEqual(45);
    const capped = gaps.slice(5);
    const sorted = [...capped].sort((x, y) => x - y);
    // The cap: the typical gap stays at or below it (no doubling past 80).
    expect(sorted[Math.floor(sorted.length / 2)]).toBeLessThanOrEqual(capMs + 10);
    // The jitter: half the step is random, so many gaps are clearly shorter than the cap (a timer
    // never fires early: without jitter, none would be)...
    expect(capped.filter((g) => g < capMs - 5).length).toBeGreaterThanOrEqual(capped.length / 3);
    // ...and none shorter than the fixed half.
    expect(Math.min(...capped)).toBeGreaterThanOrEqual(capMs / 2 - 2);
    expect(client.connected).toBe(false);
  });

  // An endpoint that accepts and closes at once (an AS at maxConnections answers OVERLOADED and
  // closes; a dying one, or a proxy with no backend, just closes) must be dialled with backoff too.
  it('keeps backing off when an endpoint accepts each connection and closes it at once', async () => {
    const fs = await lonelyFs(c);
    const port = await freeTcpPort();
    const as = await asWithFs(c, port, fs.address().port);
    const client = await pairClient(c, { port, reconnect: { baseMs: 10, capMs: 80 } });
    const lost = new Promise((r) => client.once('disconnected', r));
    await as.stop();
    await withTimeout(lost, 3000, 'the loss');
    let accepted = 0;
    const slammer: Server = createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((r) => slammer.listen(port, HOST, () => r()));
    c.defer(() => new Promise<void>((r) => slammer.close(() => r())));
    const t0 = performance.now();
    await waitFor(() => performance.now() - t0 >= 1000, 'a 1 s window', 3000, 50);
    const n = accepted;
    console.log(`connections to an endpoint that closes at once, in 1 s: ${n}`);
    await client.close();
    // With the 80 ms cap: at most ~25 in a second.
    expect(n).toBeLessThanOrEqual(40);
  });
});
