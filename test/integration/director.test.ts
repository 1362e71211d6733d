import { describe, expect, it, vi } from 'vitest';
import {
  Client,
  EventKind,
  Status,
  decodeBody,
  OFFSET,
  encodeBody,
  encodeErrorResponse,
  encodeEventRequest,
  encodeExtension,
  encodeEventResponse,
  encodeRequest,
  encodeResponse,
  eventKindOf,
  isEvent,
  requestIdOf,
  statusOf,
  signTicket,
  ticketProof,
  newNonce,
} from '../../src/index.js';
import type { CallSpec } from '../../src/client/call-table.js';
import { DirectRouter, type DirectHost } from '../../src/client/direct.js';
import { useHarness, waitFor, type RawSocket } from '../fixtures/cluster.js';
import { handMadeFs, recordingFs } from '../fixtures/hand-made-fs.js';
import { WHO_AM_I } from '../fixtures/test-plugins.js';

const h = useHarness();
const SECRET = 'director-join-secret-0123456789';
const ECHO = 1;

/** An AS and FSs sharing a join secret, LOAD every 100 ms. */
async function securedCluster(names: string[], asOpts: Parameters<typeof h.cluster>[0] = {}): Promise<void> {
  await h.cluster(
    { joinSecret: SECRET, loadRefreshMs: 100, ...asOpts },
    names.map((name) => ({ name, joinSecret: SECRET, refreshMs: 100 })),
  );
}

/** A direct router whose AS is a stand-in: LOOKUP answered by `lookup`, calls that fall back answered 'answered through the AS'. Closed at teardown. */
function routerWith(lookup: DirectHost['lookup'], connectTimeoutMs = 1000): DirectRouter {
  const router = new DirectRouter({ lookup, viaAs: async () => 'answered through the AS' }, { heartbeatMs: 0, connectTimeoutMs });
  h.defer(() => router.close());
  return router;
}

/** A call of the echo service with this body, not marked idempotent. */
function echoSpec(body: unknown): CallSpec {
  return { serviceKey: ECHO, poolType: 0, body: encodeBody(body), extension: undefined, idempotent: false };
}

const relayed = (): number => h.as.dispatcher.relayedAnswers.reduce((a, n) => a + n, 0);

/** Echo calls one after another, 20 ms apart, for `ms`; each answer checked. Returns how many. */
async function echoFor(c: Client, ms: number): Promise<number> {
  const until = Date.now() + ms;
  let n = 0;
  while (Date.now() < until) {
    expect(await c.call(ECHO, n)).toBe(n);
    n++;
    await new Promise((r) => setTimeout(r, 20));
  }
  return n;
}

/** Reads frames until one that is not a heartbeat. */
async function nextNonHeartbeat(raw: RawSocket): Promise<Buffer> {
  for (;;) {
    const f = await raw.nextFrame();
    if (!(isEvent(f) && eventKindOf(f) === EventKind.HEARTBEAT)) return f;
  }
}

describe('director mode', () => {
  it('calls go straight to the FSs: the AS relays none, yet counts the leases and sees the direct traffic in LOAD', async () => {
    await securedCluster(['fs-a', 'fs-b']);
    const c = await h.client({ mode: 'direct', secret: undefined });
    const before = relayed();
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => c.call(ECHO, { i }, { idempotent: true })));
    expect(answers).toEqual(Array.from({ length: 200 }, (_, i) => ({ i })));
    expect(relayed()).toBe(before);
    expect(c.direct?.direct).toBe(200);
    expect(c.direct?.viaAs).toBe(0);
    // Both FSs took some: the client chose between them by weight and its own in-flight count.
    const who = new Set(await Promise.all(Array.from({ length: 50 }, () => c.call(WHO_AM_I, {}) as Promise<string>)));
    expect(who).toEqual(new Set(['fs-a', 'fs-b']));
    expect(h.as.director.lookups).toBe(2); // one per key, then leases cover the rest
    await waitFor(() => h.as.listFunctionServers().every((f) => f.direct.requests > 0), 'both FSs to report direct requests in LOAD');
    for (const f of h.as.listFunctionServers()) expect(f.direct.leases).toBe(1);
    // LOOKUP tells whether the service declares itself idempotent (echo does, echo.delayed, key 2, does not).
    expect((await c.lookup(ECHO)).idempotent).toBe(true);
    expect((await c.lookup(2)).idempotent).toBe(false);
  });

  it("a director client's AS link, which carries only LOOKUP renewals, is not closed as idle", async () => {
    await securedCluster(['fs-a'], { directLeaseMs: 200, clientIdleTimeoutMs: 300 });
    const c = await h.client({ mode: 'direct' });
    let disconnects = 0;
    c.on('disconnected', () => disconnects++);
    // Direct calls for four idle timeouts: the AS sees no request on the link, only renewals.
    await echoFor(c, 1200);
    expect(relayed()).toBe(0);
    expect(h.as.director.lookups).toBeGreaterThanOrEqual(5);
    expect(disconnects).toBe(0);
    expect(c.connected).toBe(true);
    expect(c.direct?.viaAs).toBe(0);
  });

  it('renews the lease in the background before it ends, so calls never wait for LOOKUP again', async () => {
    await securedCluster(['fs-a'], { directLeaseMs: 400 });
    const c = await h.client({ mode: 'direct' });
    await c.call(ECHO, 'first');
    const lookups = h.as.director.lookups;
    // Calls for a second and a half: about three leases' worth, each renewed at half its time.
    const n = await echoFor(c, 1500);
    expect(h.as.director.lookups - lookups).toBeGreaterThanOrEqual(3);
    expect(relayed()).toBe(0);
    expect(c.direct?.direct).toBe(n + 1);
  });

  it('falls back to the AS when the key has no FS it can reach, and answers LOOKUP errors clearly', async () => {
    await securedCluster(['fs-a']);
    const c = await h.client({ mode: 'direct' });
    await expect(c.lookup(424242)).rejects.toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND' });
    // The same key through call(): LOOKUP fails, so the AS path answers (SERVICE_NOT_FOUND there too).
    await expect(c.call(424242, {})).rejects.toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND' });
    expect(c.direct?.viaAs).toBe(1);
  });
});

describe('tickets: an FS takes a direct client only with what the AS signed', () => {
  async function rawToFs(): Promise<{ raw: RawSocket; nonce: Buffer }> {
    const fs = h.as.listFunctionServers()[0];
    const raw = await h.raw(fs.port);
    const challenge = await nextNonHeartbeat(raw);
    expect(eventKindOf(challenge)).toBe(EventKind.CHALLENGE);
    return { raw, nonce: Buffer.from((decodeBody(challenge) as { nonce: Uint8Array }).nonce) };
  }

  it('a ticket from LOOKUP, proved with its session key, admits the client for its key only; other keys are refused per request', async () => {
    await securedCluster(['fs-a']);
    const c = await h.client();
    const { ticket } = await c.lookup(ECHO);
    expect(ticket).toBeDefined();
    const t = ticket as NonNullable<typeof ticket>;
    const { raw, nonce } = await rawToFs();
    const mine = newNonce();
    raw.write(encodeEventRequest(EventKind.TICKET, 1, { body: t.body, mac: t.mac, nonce: mine, proof: ticketProof(t.key, 'dialer', nonce, mine) }, true));
    const answer = await nextNonHeartbeat(raw);
    expect(statusOf(answer)).toBe(Status.OK);
    const reply = decodeBody(answer) as { proof: Uint8Array; keys: number[] };
    // The FS proved it holds the join secret too.
    expect(Buffer.from(reply.proof).equals(ticketProof(t.key, 'listener', nonce, mine))).toBe(true);
    expect(reply.keys).toEqual([ECHO]);
    raw.write(encodeRequest(1, ECHO, 'allowed'));
    const ok = await nextNonHeartbeat(raw);
    expect([requestIdOf(ok), statusOf(ok), decodeBody(ok)]).toEqual([1, Status.OK, 'allowed']);
    raw.write(encodeRequest(2, WHO_AM_I, {}));
    const refused = await nextNonHeartbeat(raw);
    expect([requestIdOf(refused), statusOf(refused)]).toEqual([2, Status.UNAUTHORIZED]);
    expect(decodeBody(refused)).toMatchObject({ code: 'SB_ERR_TICKET_SCOPE' });
    // The connection goes on.
    raw.write(encodeRequest(3, ECHO, 'still'));
    expect(decodeBody(await nextNonHeartbeat(raw))).toBe('still');
  });

  it.each([
    ['a forged mac', 'SB_ERR_TICKET_INVALID', (t: Ticket) => ({ ...t, mac: Buffer.alloc(32, 7) })],
    ['the right ticket without its session key', 'SB_ERR_TICKET_INVALID', (t: Ticket) => ({ ...t, key: Buffer.alloc(32, 1) })],
    ['a ticket signed with another secret', 'SB_ERR_TICKET_INVALID', () => ({ ...signTicket(Buffer.from('another-secret-0123456789'), { client: 'x', keys: [ECHO], poolType: 0, exp: Date.now() + 60_000 }) })],
    ['an expired ticket', 'SB_ERR_TICKET_EXPIRED', () => ({ ...signTicket(Buffer.from(SECRET), { client: 'x', keys: [ECHO], poolType: 0, exp: Date.now() - 1 }) })],
  ])('%s is refused and the connection closed (%s)', async (_what, code, forge) => {
    await securedCluster(['fs-a']);
    const c = await h.client();
    const t = forge((await c.lookup(ECHO)).ticket as Ticket);
    const { raw, nonce } = await rawToFs();
    const mine = newNonce();
    raw.write(encodeEventRequest(EventKind.TICKET, 1, { body: t.body, mac: t.mac, nonce: mine, proof: ticketProof(t.key, 'dialer', nonce, mine) }, true));
    const refusal = await nextNonHeartbeat(raw);
    expect([requestIdOf(refusal), statusOf(refusal)]).toEqual([0, Status.UNAUTHORIZED]);
    expect(decodeBody(refusal)).toMatchObject({ code });
    await raw.closed;
  });

  it('a ticket for another pool type is not for this FS (7 is refused, 0 means any); a renewal for it changes nothing', async () => {
    await securedCluster(['fs-a']); // pool type 0
    const sign = (poolType: number, key = ECHO): Ticket => signTicket(Buffer.from(SECRET), { client: 'x', keys: [key], poolType, exp: Date.now() + 60_000 });
    const present = (raw: RawSocket, nonce: Buffer, t: Ticket, id: number): void => {
      const mine = newNonce();
      raw.write(encodeEventRequest(EventKind.TICKET, id, { body: t.body, mac: t.mac, nonce: mine, proof: ticketProof(t.key, 'dialer', nonce, mine) }, true));
    };
    const first = await rawToFs();
    present(first.raw, first.nonce, sign(7), 1);
    const refusal = await nextNonHeartbeat(first.raw);
    expect([requestIdOf(refusal), statusOf(refusal)]).toEqual([0, Status.UNAUTHORIZED]);
    expect(decodeBody(refusal)).toMatchObject({ code: 'SB_ERR_TICKET_INVALID', message: expect.stringContaining('pool type 7') });
    await first.raw.closed;

    const { raw, nonce } = await rawToFs();
    present(raw, nonce, sign(0), 1);
    expect(statusOf(await nextNonHeartbeat(raw))).toBe(Status.OK);
    present(raw, nonce, sign(7, WHO_AM_I), 2);
    const renewal = await nextNonHeartbeat(raw);
    expect([requestIdOf(renewal), statusOf(renewal)]).toEqual([2, Status.UNAUTHORIZED]);
    expect(decodeBody(renewal)).toMatchObject({ code: 'SB_ERR_TICKET_INVALID' });
    raw.write(encodeRequest(3, WHO_AM_I, {}));
    expect(decodeBody(await nextNonHeartbeat(raw))).toMatchObject({ code: 'SB_ERR_TICKET_SCOPE' });
  });

  it('an admitted direct client may not DESCRIBE: it learns its keys from its ticket, not the FS’s whole table', async () => {
    await securedCluster(['fs-a']);
    const t = (await (await h.client()).lookup(ECHO)).ticket as Ticket;
    const { raw, nonce } = await rawToFs();
    const mine = newNonce();
    raw.write(encodeEventRequest(EventKind.TICKET, 1, { body: t.body, mac: t.mac, nonce: mine, proof: ticketProof(t.key, 'dialer', nonce, mine) }, true));
    expect(statusOf(await nextNonHeartbeat(raw))).toBe(Status.OK);
    raw.write(encodeEventRequest(EventKind.DESCRIBE, 2, {}, true));
    const answer = await nextNonHeartbeat(raw);
    expect([eventKindOf(answer), requestIdOf(answer), statusOf(answer)]).toEqual([EventKind.DESCRIBE, 2, Status.BAD_REQUEST]);
    expect(decodeBody(answer)).not.toHaveProperty('services');
    // Still a direct connection, held to its ticket.
    raw.write(encodeRequest(3, WHO_AM_I, {}));
    expect(decodeBody(await nextNonHeartbeat(raw))).toMatchObject({ code: 'SB_ERR_TICKET_SCOPE' });
    raw.write(encodeRequest(4, ECHO, 'still'));
    expect(decodeBody(await nextNonHeartbeat(raw))).toBe('still');
  });

  it('a request before any proof is refused and the connection closed: direct mode does not undo the join secret', async () => {
    await securedCluster(['fs-a']);
    const { raw } = await rawToFs();
    raw.write(encodeRequest(1, ECHO, 'sneaky'));
    const refusal = await nextNonHeartbeat(raw);
    expect(decodeBody(refusal)).toMatchObject({ code: 'SB_ERR_AUTH_REQUIRED' });
    await raw.closed;
  });

  it('the SDK will not send a call to an "FS" that cannot prove the join secret: it goes through the AS instead', async () => {
    // An impostor on the FS's endpoint: it asks for a ticket, takes it, and answers with a made-up proof.
    const received: Buffer[] = [];
    const impostor = await handMadeFs({}, (f, s) => {
      if (isEvent(f) && eventKindOf(f) === EventKind.TICKET) s.write(encodeEventResponse(EventKind.TICKET, requestIdOf(f), { proof: Buffer.alloc(32, 9), keys: [ECHO], expiresAt: Date.now() + 60_000 }));
      else if (!isEvent(f)) received.push(Buffer.from(f));
    }, (s) => s.write(encodeEventRequest(EventKind.CHALLENGE, 0, { v: 1, realm: 'join', nonce: newNonce(), mechanisms: ['hmac-sha256'] }, false)));
    h.defer(() => impostor.close());
    const ticket = signTicket(Buffer.from(SECRET), { client: 'c', keys: [ECHO], poolType: 0, exp: Date.now() + 60_000 });
    const router = routerWith(async () => ({ endpoints: [{ id: 'fs-a', host: '127.0.0.1', port: impostor.port, weight: 1000 }], leaseMs: 10_000, ticket }));
    const spec = echoSpec('secret payload');
    expect(await router.call(spec, 2000)).toBe('answered through the AS');
    expect(router.viaAs).toBe(1);
    expect(received).toEqual([]);
  });
});

type Ticket = { body: Uint8Array; mac: Uint8Array; key: Uint8Array; expiresAt: number };

describe('LOOKUP on the wire', () => {
  it('is refused with BAD_REQUEST when malformed, and answers NOT_ACTIVE-free on a lone AS', async () => {
    await securedCluster(['fs-a']);
    const raw = await h.raw();
    raw.write(encodeEventRequest(EventKind.LOOKUP, 5, { key: 'one' }, true));
    const bad = await nextNonHeartbeat(raw);
    expect([requestIdOf(bad), statusOf(bad)]).toEqual([5, Status.BAD_REQUEST]);
    raw.write(encodeEventRequest(EventKind.LOOKUP, 6, { key: ECHO }, true));
    const good = await nextNonHeartbeat(raw);
    expect(statusOf(good)).toBe(Status.OK);
    const body = decodeBody(good) as { endpoints: { id: string; weight: number }[]; leaseMs: number; ticket: Ticket };
    expect(body.endpoints.map((e) => e.id)).toEqual(['fs-a']);
    expect(body.leaseMs).toBe(10_000);
    expect(body.ticket.expiresAt).toBeGreaterThan(Date.now() + 10_000);
    expect(Client).toBeDefined();
  });

  it("a closed connection's leases are given back at once: opening connections to ask LOOKUP cannot pile up leases", async () => {
    await securedCluster(['fs-a']);
    const leases = (): number => h.as.listFunctionServers()[0].direct.leases;
    const raws = await Promise.all([1, 2, 3].map(() => h.raw()));
    for (const [i, raw] of raws.entries()) raw.write(encodeEventRequest(EventKind.LOOKUP, 10 + i, { key: ECHO }, true));
    await Promise.all(raws.map(async (raw) => expect(statusOf(await nextNonHeartbeat(raw))).toBe(Status.OK)));
    expect(leases()).toBe(3);
    raws[0].destroy();
    raws[1].destroy();
    await waitFor(() => leases() === 1, 'the two closed connections to give back their leases (well before the 10 s lease ends)');
  });
});

describe('the direct router before its first LOOKUP answer', () => {
  it("a call waits for the key's first LOOKUP no longer than its own deadline; a later call takes the answer when it comes", async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    h.defer(() => vi.useRealTimers());
    let answer: (reply: { endpoints: never[]; leaseMs: number }) => void = () => undefined;
    const lookups: number[] = [];
    const router = routerWith((key) => {
      lookups.push(key);
      return new Promise((r) => (answer = r));
    });
    const spec = echoSpec('x');
    let outcome: unknown;
    router.call(spec, 300).then(
      (v) => (outcome = v),
      (e: unknown) => (outcome = e),
    );
    await vi.advanceTimersByTimeAsync(299);
    expect(outcome).toBeUndefined();
    await vi.advanceTimersByTimeAsync(2);
    expect(outcome).toMatchObject({ code: 'SB_ERR_TIMEOUT', message: expect.stringContaining('did not answer LOOKUP for service 1') });
    // The LOOKUP was not dropped: a second call joins it and goes on when the answer (no FS) comes.
    const second = router.call(spec, 5000);
    answer({ endpoints: [], leaseMs: 1000 });
    expect(await second).toBe('answered through the AS');
    expect(lookups).toEqual([ECHO]);
  });
});

describe('the direct router without its AS', () => {
  it('holds a LOOKUP answer for its whole lease while renewals fail, and drops it only after two idle leases', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    h.defer(() => vi.useRealTimers());
    let lookups = 0;
    // The first LOOKUP is answered; then the AS is gone.
    const router = routerWith(async () => {
      if (lookups++ === 0) return { endpoints: [], leaseMs: 10_000 };
      throw new Error('no application server could be reached');
    });
    const spec = echoSpec('x');
    await router.call(spec, 1000);
    expect(router.leases).toBe(1);
    // Renewals from half the lease on, one a second, all failing: the answer stands to its end.
    await vi.advanceTimersByTimeAsync(9_900);
    expect(lookups).toBeGreaterThan(4);
    expect(router.leases).toBe(1);
    // Unused for two leases (20 s from its last call), it is dropped.
    await vi.advanceTimersByTimeAsync(10_300);
    expect(router.leases).toBe(0);
  });
});

describe('the direct router on one FS connection', () => {
  it('gives up a call the FS never answers, and never reuses its id until the late answer comes', async () => {
    const ids: number[] = [];
    let first: number | undefined;
    const fs = await handMadeFs({}, (f, s) => {
      if (isEvent(f)) return;
      const id = requestIdOf(f);
      ids.push(id);
      if (first === undefined) {
        first = id; // held: no answer until the next request
        return;
      }
      // The late answer to the first call, then the answer to this one, in one write.
      s.write(Buffer.concat([encodeResponse(first, Status.OK, 'late answer to the first call'), encodeResponse(id, Status.OK, 'answer to the second call')]));
    });
    h.defer(() => fs.close());
    const router = routerWith(async () => ({ endpoints: [{ id: 'fs-a', host: '127.0.0.1', port: fs.port, weight: 1000 }], leaseMs: 60_000 }));
    const spec = echoSpec;
    // Given up a grace period past its 50 ms deadline, by the router's own sweep.
    await expect(router.call(spec('first'), 50)).rejects.toMatchObject({ code: 'SB_ERR_TIMEOUT' });
    expect(await router.call(spec('second'), 2000)).toBe('answer to the second call');
    expect(ids).toHaveLength(2);
    expect(ids[1]).not.toBe(ids[0]);
  });
});

describe('the direct router and what the FS reads', () => {
  /** A hand-made FS that records the request frames it gets and echoes their bodies. */
  async function echoedFs(): Promise<{ port: number; frames: Buffer[] }> {
    const fs = await recordingFs({}, () => 'echoed');
    h.defer(() => fs.close());
    return fs;
  }
  const keyed = (): CallSpec => ({ ...echoSpec('keyed'), extension: encodeExtension({ routingKey: Buffer.from('user-7') }) });

  it('sends an FS that LOOKUP says reads only version 1 its requests without the extension block; others get the block', async () => {
    const old = await echoedFs();
    const current = await echoedFs();
    const toOld = routerWith(async () => ({ endpoints: [{ id: 'old', host: '127.0.0.1', port: old.port, weight: 1000, versions: [1] }], leaseMs: 60_000 }));
    const toCurrent = routerWith(async () => ({ endpoints: [{ id: 'new', host: '127.0.0.1', port: current.port, weight: 1000 }], leaseMs: 60_000 }));
    expect(await toOld.call(keyed(), 2000)).toBe('echoed');
    expect(await toCurrent.call(keyed(), 2000)).toBe('echoed');
    // A version-1 frame whose body is the call's body alone: an older FS reads it, and does not close.
    expect(old.frames.map((f) => f[OFFSET.version])).toEqual([1]);
    expect(decodeBody(old.frames[0])).toBe('keyed');
    expect(current.frames.map((f) => f[OFFSET.version])).toEqual([2]);
    expect(toOld.viaAs + toCurrent.viaAs).toBe(0);
  });

  it("fails the calls on a connection the FS refused (an id-0 error before it closes) with the FS's error, not CHANNEL_CLOSED", async () => {
    let held = 0;
    const fs = await handMadeFs({}, (f, s) => {
      if (isEvent(f)) return;
      // The first request is held; the second is refused for the whole connection, as a frame error is.
      if (++held < 2) return;
      s.write(encodeErrorResponse(0, Status.BAD_REQUEST, 'SB_ERR_BAD_VERSION', 'version 2 is not read here'));
      s.end();
    });
    h.defer(() => fs.close());
    const router = routerWith(async () => ({ endpoints: [{ id: 'fs-a', host: '127.0.0.1', port: fs.port, weight: 1000 }], leaseMs: 60_000 }));
    const first = router.call(echoSpec('first'), 2000);
    await waitFor(() => held === 1, 'the first call to reach the FS');
    const second = router.call(echoSpec('second'), 2000);
    await expect(first).rejects.toMatchObject({ code: 'SB_ERR_BAD_VERSION', message: 'version 2 is not read here' });
    await expect(second).rejects.toMatchObject({ code: 'SB_ERR_BAD_VERSION' });
  });
});

describe('the direct router while an FS connection is not ready', () => {
  const ticket = { body: new Uint8Array(8), mac: new Uint8Array(32), key: new Uint8Array(32), expiresAt: Date.now() + 60_000 };

  it('an "FS" that takes the TCP connection but never sends CHALLENGE: a call ends at its deadline, and the link is given up after connectTimeoutMs, so later calls go through the AS', async () => {
    // Accepts, reads, never speaks: a frozen FS whose kernel still completes the handshake looks the same.
    const mute = await handMadeFs({});
    h.defer(() => mute.close());
    const router = routerWith(async () => ({ endpoints: [{ id: 'fs-mute', host: '127.0.0.1', port: mute.port, weight: 1000 }], leaseMs: 60_000, ticket }), 1500);
    const spec = echoSpec('x');
    const started = Date.now();
    await expect(router.call(spec, 200)).rejects.toMatchObject({ code: 'SB_ERR_TIMEOUT', message: expect.stringContaining('was not ready before the deadline') });
    // Ended by its own deadline (and the 100 ms sweep), not by the connect timeout.
    expect(Date.now() - started).toBeLessThan(1500);
    expect(mute.sockets).toHaveLength(1);
    // This one waits on the same link; the handshake's time runs out, and it was never sent: to the AS.
    expect(await router.call(spec, 10_000)).toBe('answered through the AS');
    expect(router.viaAs).toBe(1);
    expect(router.connections).toBe(0);
  });

  it('a call the LOOKUP answer calls idempotent is re-sent to the next FS when its FS is lost, even when the call did not say so; without that word it fails', async () => {
    // fs-a closes the connection on the first request it reads; fs-b answers.
    const lost = await handMadeFs({}, (f, s) => {
      if (!isEvent(f)) s.destroy();
    });
    const answers = await handMadeFs({}, (f, s) => {
      if (!isEvent(f)) s.write(encodeResponse(requestIdOf(f), Status.OK, 'from fs-b'));
    });
    h.defer(() => lost.close());
    h.defer(() => answers.close());
    // fs-a's weight makes it the first choice of two.
    const routerFor = (idempotent: boolean | undefined): DirectRouter =>
      routerWith(async () => ({
        endpoints: [
          { id: 'fs-a', host: '127.0.0.1', port: lost.port, weight: 65535 },
          { id: 'fs-b', host: '127.0.0.1', port: answers.port, weight: 1 },
        ],
        leaseMs: 60_000,
        ...(idempotent === undefined ? {} : { idempotent }),
      }));
    const spec = echoSpec('x');
    const declared = routerFor(true);
    expect(await declared.call(spec, 5000)).toBe('from fs-b');
    expect(declared.resent).toBe(1);
    // An older AS says nothing: the call's own word decides, and it said no.
    const silent = routerFor(undefined);
    await expect(silent.call(spec, 5000)).rejects.toMatchObject({ code: 'SB_ERR_CHANNEL_CLOSED' });
    expect(silent.resent).toBe(0);
  });
});
