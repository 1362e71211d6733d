import { describe, expect, it } from 'vitest';
import {
  ChannelClosedError,
  DeadlineExceededError,
  Status,
  decodeBody,
  encodeRequest,
  encodeResponse,
  isEvent,
  requestIdOf,
  serviceKeyOf,
  statusOf,
  type ApplicationServer,
  type ApplicationServerOptions,
  type FrameConnection,
  type FsState,
  type SchedulingStrategy,
} from '../../src/index.js';
import { useHarness, waitFor, waitForAvailable } from '../fixtures/cluster.js';
import { LATENCY_BOUNDS_MS } from '../../src/application-server/routing/latency.js';
import { FakeFs, HOST, failure, settled } from '../security/registry-fixtures.js';

// Re-sends (Dispatcher.orphaned) and hedges (Dispatcher.#sendHedge), with FSs made of FakeFs so
// that each one's behaviour is exact: one that closes its connection on every request, one that
// swallows requests, one that answers, one that answers when told. Calls carry a body marker
// ({ call }) so the FSs' logs tell which copy of which call went where.
const h = useHarness();
const IDEMPOTENT = 51;
const PLAIN = 52;
const SERVICES = [
  { key: IDEMPOTENT, idempotent: true },
  { key: PLAIN, idempotent: false },
];

/** A scheduler that always chooses the FS named A when it may: the worst case for "never the same FS again". */
const preferA: SchedulingStrategy = {
  name: 'prefer-a',
  pick: (candidates) => candidates.find((c) => c.id === 'A') ?? candidates[0],
};

type Behaviour = 'close' | 'answer' | 'swallow';

function onRequestFor(b: Behaviour): ((frame: Buffer, conn: FrameConnection) => void) | undefined {
  if (b === 'close') return (_f, conn) => conn.destroy('local');
  if (b === 'answer') return (f, conn) => conn.send(encodeResponse(requestIdOf(f), Status.OK, decodeBody(f), serviceKeyOf(f)));
  return undefined; // a black hole: reads, never answers, never closes
}

/** An AS with FakeFs FSs named as given, all available. */
async function cluster(asOpts: ApplicationServerOptions, fss: Record<string, Behaviour>): Promise<{ as: ApplicationServer; fakes: Record<string, FakeFs> }> {
  // Timeouts of the black hole must not get it ejected halfway through a test.
  const as = await h.startAs({ outlier: { consecutiveFailures: 1000 }, ...asOpts });
  const fakes: Record<string, FakeFs> = {};
  for (const [name, b] of Object.entries(fss)) {
    fakes[name] = await FakeFs.start(h, { name, services: SERVICES, onRequest: onRequestFor(b) });
    as.addFunctionServer({ host: HOST, port: fakes[name].port, name });
  }
  await waitForAvailable(as, Object.keys(fss).length);
  return { as, fakes };
}

/** The `call` markers of the requests an FS received (of `key`). */
function markers(fake: FakeFs, key = IDEMPOTENT): number[] {
  return fake.requests.filter((f) => serviceKeyOf(f) === key).map((f) => (decodeBody(f) as { call: number }).call);
}

/** One counter of every FS, by id. */
function perFs(as: ApplicationServer, field: 'served' | 'failures'): Record<string, number> {
  return Object.fromEntries(as.listFunctionServers().map((f) => [f.id, f[field]]));
}

function count(xs: readonly number[], x: number): number {
  return xs.filter((y) => y === x).length;
}

describe('re-sends after a lost connection', () => {
  for (const maxAttempts of [2, 3]) {
    it(`sends an idempotent request maxAttempts (${maxAttempts}) times in all, then answers CHANNEL_CLOSED`, async () => {
      const { as, fakes } = await cluster({ maxAttempts }, { A: 'close', B: 'close', C: 'close' });
      const client = await h.client();
      const all = (): number[] => Object.values(fakes).flatMap((f) => markers(f));
      for (let call = 1; call <= 3; call++) {
        await waitForAvailable(as, 3); // every FS back after the last call's failures
        const resentBefore = as.dispatcher.resent;
        const closedBefore = as.dispatcher.localAnswers.get(Status.CHANNEL_CLOSED) ?? 0;
        const err = await failure(client.call(IDEMPOTENT, { call }, { timeoutMs: 5000 }));
        expect(err).toBeInstanceOf(ChannelClosedError);
        expect(err.status).toBe(Status.CHANNEL_CLOSED);
        expect(err.code).toBe('SB_ERR_CHANNEL_CLOSED');
        expect(count(all(), call), `copies of call ${call} the FSs received`).toBe(maxAttempts);
        expect(as.dispatcher.resent - resentBefore).toBe(maxAttempts - 1);
        expect((as.dispatcher.localAnswers.get(Status.CHANNEL_CLOSED) ?? 0) - closedBefore).toBe(1);
      }
      expect(all()).toHaveLength(3 * maxAttempts);
    });
  }

  it('never re-sends a non-idempotent request', async () => {
    const { as, fakes } = await cluster({ maxAttempts: 3 }, { A: 'close', B: 'answer' });
    const client = await h.client();
    for (let call = 1; call <= 10; call++) {
      await waitForAvailable(as, 2);
      const r = await settled(client.call(PLAIN, { call }, { timeoutMs: 5000 }));
      const atA = count(markers(fakes.A, PLAIN), call);
      const atB = count(markers(fakes.B, PLAIN), call);
      expect(atA + atB).toBe(1); // sent once, wherever it went
      if (atA === 1) expect(r.ok ? 'answered' : r.error).toBeInstanceOf(ChannelClosedError);
      else expect(r).toEqual({ ok: true, value: { call } });
    }
    expect(as.dispatcher.resent).toBe(0);
  });

  it('never sends a re-send back to the FS whose connection just failed, even when it is still available', async () => {
    // Two connections per FS: when one of A's connections dies, A stays available on the other, so
    // only the exclusion keeps the re-send (and a scheduler that always prefers A) away from it.
    const { as, fakes } = await cluster({ poolSize: 2, strategy: preferA, maxAttempts: 3 }, { A: 'close', B: 'answer' });
    const aStates: FsState[] = [];
    as.on('fs-state', (i) => {
      if (i.id === 'A') aStates.push(i.state);
    });
    const a = as.manager.get('A');
    const client = await h.client();
    const N = 10;
    for (let call = 1; call <= N; call++) {
      await waitFor(() => a?.pool.readyCount === 2, "A's two connections to be up");
      expect(await client.call(IDEMPOTENT, { call }, { timeoutMs: 5000 })).toEqual({ call });
      expect(count(markers(fakes.A), call), `call ${call} at A`).toBe(1);
      expect(count(markers(fakes.B), call), `call ${call} at B`).toBe(1);
    }
    expect(aStates).toEqual([]); // A never left 'available': it was a candidate for every re-send
    expect(markers(fakes.A)).toHaveLength(N);
    expect(as.dispatcher.resent).toBe(N);
  });

  it('with the default scheduler: every call first sent to the failing FS is re-sent once, elsewhere, and succeeds', async () => {
    const { as, fakes } = await cluster({ poolSize: 2, maxAttempts: 3 }, { A: 'close', B: 'answer' });
    const a = as.manager.get('A');
    const client = await h.client();
    const N = 30;
    for (let call = 1; call <= N; call++) {
      await waitFor(() => a?.pool.readyCount === 2, "A's two connections to be up");
      expect(await client.call(IDEMPOTENT, { call }, { timeoutMs: 5000 })).toEqual({ call });
    }
    const atA = markers(fakes.A);
    const atB = markers(fakes.B);
    for (let call = 1; call <= N; call++) {
      expect(count(atA, call), `call ${call} at A`).toBeLessThanOrEqual(1);
      expect(count(atB, call), `call ${call} at B`).toBe(1);
    }
    expect(atA.length).toBeGreaterThan(0); // the random choice did send some to A first
    expect(as.dispatcher.resent).toBe(atA.length);
  });
});

describe('hedged requests', () => {
  it('sends a slow idempotent call to a second FS after half its budget; it succeeds there, well before its deadline', async () => {
    const { as, fakes } = await cluster({ strategy: preferA }, { A: 'swallow', B: 'answer' });
    const client = await h.client();
    const N = 4;
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => client.call(IDEMPOTENT, { call: i + 1 }, { timeoutMs: 1000 }).then((v) => ({ v, ms: performance.now() - t0 }))),
    );
    expect(results.map((r) => r.v)).toEqual(Array.from({ length: N }, (_, i) => ({ call: i + 1 })));
    // Not before half the budget (the hedge time); the answer itself proves it came before the deadline.
    for (const r of results) expect(r.ms).toBeGreaterThanOrEqual(490);
    expect(as.dispatcher.hedged).toBe(N);
    expect(as.dispatcher.resent).toBe(0);
    for (let call = 1; call <= N; call++) {
      // One copy each: the hedge went to B, never back to A (the FS that has the first copy).
      expect(count(markers(fakes.A), call), `call ${call} at A`).toBe(1);
      expect(count(markers(fakes.B), call), `call ${call} at B`).toBe(1);
    }
  });

  for (const [what, opts] of [
    ['hedgeAfterRatio 0', { hedgeAfterRatio: 0 }],
    ['maxAttempts 1 (a hedge is a send)', { maxAttempts: 1 }],
  ] as const) {
    it(`with ${what} the same calls wait on the first FS and time out`, async () => {
      const { as, fakes } = await cluster({ strategy: preferA, ...opts }, { A: 'swallow', B: 'answer' });
      const client = await h.client();
      const errs = await Promise.all(Array.from({ length: 4 }, (_, i) => failure(client.call(IDEMPOTENT, { call: i + 1 }, { timeoutMs: 1000 }))));
      for (const e of errs) {
        expect(e).toBeInstanceOf(DeadlineExceededError);
        expect(e.status).toBe(Status.TIMEOUT);
      }
      expect(as.dispatcher.hedged).toBe(0);
      expect(markers(fakes.A)).toHaveLength(4);
      expect(fakes.B.requests).toHaveLength(0);
      // The AS's own TIMEOUTs are timed too: four requests of about a second, in the histogram.
      const [[key, counts]] = [...as.dispatcher.latency.entries()];
      expect(key).toBe(IDEMPOTENT);
      expect(counts[LATENCY_BOUNDS_MS.indexOf(1000)] + counts[LATENCY_BOUNDS_MS.indexOf(2500)]).toBe(4);
    });
  }

  it('never hedges a non-idempotent call', async () => {
    const { as, fakes } = await cluster({ strategy: preferA }, { A: 'swallow', B: 'answer' });
    const client = await h.client();
    const errs = await Promise.all(Array.from({ length: 4 }, (_, i) => failure(client.call(PLAIN, { call: i + 1 }, { timeoutMs: 1000 }))));
    for (const e of errs) expect(e).toBeInstanceOf(DeadlineExceededError);
    expect(as.dispatcher.hedged).toBe(0);
    expect(markers(fakes.A, PLAIN)).toHaveLength(4);
    expect(fakes.B.requests).toHaveLength(0);
  });

  it('relays exactly one answer per call: the copy that answers second is dropped', async () => {
    // Both FSs hold what they get until told to answer; the test decides which copy answers first.
    const held: Record<string, { frame: Buffer; conn: FrameConnection }[]> = { A: [], B: [] };
    const as = await h.startAs({ strategy: preferA, hedgeAfterRatio: 0.1, outlier: { consecutiveFailures: 1000 } });
    const fakes: Record<string, FakeFs> = {};
    for (const name of ['A', 'B']) {
      fakes[name] = await FakeFs.start(h, { name, services: SERVICES, onRequest: (frame, conn) => held[name].push({ frame, conn }) });
      as.addFunctionServer({ host: HOST, port: fakes[name].port, name });
    }
    await waitForAvailable(as, 2);
    const answerAll = (name: string): void => {
      for (const { frame, conn } of held[name].splice(0)) conn.send(encodeResponse(requestIdOf(frame), Status.OK, { from: name, ...(decodeBody(frame) as object) }, serviceKeyOf(frame)));
    };
    const raw = await h.raw();
    const answers = (): Buffer[] => raw.frames.filter((f) => !isEvent(f));
    const N = 5;
    let id = 0;
    for (const [firstToAnswer, second] of [
      ['A', 'B'], // the first copy's FS answers first
      ['B', 'A'], // the hedge's FS answers first
    ]) {
      const ids = Array.from({ length: N }, () => ++id);
      const relayedBefore = as.dispatcher.relayedAnswers[Status.OK];
      const hedgedBefore = as.dispatcher.hedged;
      const losersBefore = as.dispatcher.hedgeLosers;
      raw.write(Buffer.concat(ids.map((i) => encodeRequest(i, IDEMPOTENT, { call: i }, { budgetMs: 3000 }))));
      // 10% of the 3 s budget: each call is hedged to B while A still holds it.
      await waitFor(() => held.A.length === N && held.B.length === N, 'every call to be held by A and hedged to B');
      expect(as.dispatcher.hedged - hedgedBefore).toBe(N);
      const answeredBefore = answers().length;
      answerAll(firstToAnswer);
      await waitFor(() => answers().length === answeredBefore + N, `the answers from ${firstToAnswer}`);
      answerAll(second);
      // The AS has read the second answers too (and dropped them) before the probe below is sent.
      await waitFor(() => as.dispatcher.hedgeLosers === losersBefore + N, 'the AS to read the second answers');
      // Only the answers relayed count as relayed: the dropped ones are hedge losers.
      expect(as.dispatcher.relayedAnswers[Status.OK]).toBe(relayedBefore + N);
      // A probe the AS answers itself: on the client connection it comes after anything relayed before it.
      raw.write(encodeRequest(1_000_000 + id, 999_999, {}));
      await waitFor(() => answers().some((f) => requestIdOf(f) === 1_000_000 + id), 'the probe answer');
      const got = answers().slice(answeredBefore);
      expect(got).toHaveLength(N + 1);
      expect(requestIdOf(got[N])).toBe(1_000_000 + id);
      expect(statusOf(got[N])).toBe(Status.SERVICE_NOT_FOUND);
      const byId = got.slice(0, N).sort((x, y) => requestIdOf(x) - requestIdOf(y));
      expect(byId.map((f) => [requestIdOf(f), statusOf(f), decodeBody(f)])).toEqual(ids.map((i) => [i, Status.OK, { from: firstToAnswer, call: i }]));
    }
    // One copy of each call at each FS.
    const all = Array.from({ length: 2 * N }, (_, i) => i + 1);
    expect(markers(fakes.A).sort((x, y) => x - y)).toEqual(all);
    expect(markers(fakes.B).sort((x, y) => x - y)).toEqual(all);
    // A dropped OK is not "served" either: each FS served the calls it answered first.
    expect(perFs(as, 'served')).toEqual({ A: N, B: N });
  });

  it("a hedge copy's timeout counts against no FS: it had only what was left of the budget", async () => {
    const N = 4;
    // A answers each first send at 600 ms of its 1000 ms budget, after the hedge (at 500 ms) went to B, which never answers.
    const slow = (frame: Buffer, conn: FrameConnection): void => void setTimeout(() => conn.send(encodeResponse(requestIdOf(frame), Status.OK, decodeBody(frame), serviceKeyOf(frame))), 600);
    const as = await h.startAs({ strategy: preferA, outlier: { consecutiveFailures: 1000, minTimeoutMs: 100 } });
    const a = await FakeFs.start(h, { name: 'A', services: SERVICES, onRequest: slow });
    const b = await FakeFs.start(h, { name: 'B', services: SERVICES });
    as.addFunctionServer({ host: HOST, port: a.port, name: 'A' });
    as.addFunctionServer({ host: HOST, port: b.port, name: 'B' });
    await waitForAvailable(as, 2);
    const client = await h.client();
    const calls = Array.from({ length: N }, (_, i) => client.call(IDEMPOTENT, { call: i + 1 }, { timeoutMs: 1000 }));
    expect(await Promise.all(calls)).toEqual(Array.from({ length: N }, (_, i) => ({ call: i + 1 })));
    expect(as.dispatcher.hedged).toBe(N);
    // B's copies reach their deadline unanswered after A's answers won: dropped, and no failure of B's.
    await waitFor(() => as.dispatcher.hedgeLosers === N, "B's copies to reach their deadline");
    expect(perFs(as, 'failures')).toEqual({ A: 0, B: 0 });
    expect(as.dispatcher.relayedAnswers[Status.OK]).toBe(N);
    expect(as.dispatcher.localAnswers.get(Status.TIMEOUT) ?? 0).toBe(0);
  });

  it("a first send's timeout still counts when the hedge copy answered: a black hole is still caught", async () => {
    const N = 4;
    const { as } = await cluster({ strategy: preferA, outlier: { consecutiveFailures: 1000, minTimeoutMs: 100 } }, { A: 'swallow', B: 'answer' });
    const client = await h.client();
    await Promise.all(Array.from({ length: N }, (_, i) => client.call(IDEMPOTENT, { call: i + 1 }, { timeoutMs: 1000 })));
    await waitFor(() => as.dispatcher.hedgeLosers === N, "A's first sends to reach their deadline");
    expect(perFs(as, 'failures')).toEqual({ A: N, B: 0 });
  });
});
