import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AuthError,
  Client,
  EventKind,
  Status,
  decodeBody,
  encodeEventRequest,
  encodeRequest,
  eventKindOf,
  isEvent,
  isRequest,
  requestIdOf,
  statusOf,
  type ClientOptions,
  type FunctionServerInfo,
} from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { proofOf } from '../../src/security/index.js';
import { backgroundEcho, expectTrafficUnharmed, useHarness, waitFor, waitForAvailable, type RawSocket } from '../fixtures/cluster.js';
import { createPeerNamespace, netnsUnavailable, type PeerNamespace } from '../fixtures/netns.js';
import { COUNTED, CountedPlugin, JOIN_SECRET, OTHER_SECRET, captureLogger, counters, resetCounters } from './clients-helpers.js';
import { runNsPeer } from './clients-ns-peer.js';

const h = useHarness();
afterEach(() => resetCounters());

const HOST = '127.0.0.1';

/** The id-0 connection-level refusal every gate sends before it closes: status UNAUTHORIZED and `code`. */
async function expectUnauthorized(raw: RawSocket, code: string): Promise<void> {
  const f = await raw.nextFrame();
  expect(isEvent(f), 'a connection-level error, not an event').toBe(false);
  expect(isRequest(f)).toBe(false);
  expect(requestIdOf(f)).toBe(0);
  expect(statusOf(f)).toBe(Status.UNAUTHORIZED);
  expect((decodeBody(f) as { code: string }).code).toBe(code);
  await raw.waitClosed();
}

/** Reads the CHALLENGE a gated port sends first. */
async function readChallenge(raw: RawSocket, realm: string): Promise<Buffer> {
  const f = await raw.nextFrame();
  expect(isEvent(f) && isRequest(f)).toBe(true);
  expect(eventKindOf(f)).toBe(EventKind.CHALLENGE);
  const body = decodeBody(f) as { v: number; realm: string; nonce: Uint8Array; mechanisms: string[] };
  expect(body).toMatchObject({ v: 1, realm, mechanisms: ['hmac-sha256'] });
  return Buffer.from(body.nonce);
}

/** Answers a CHALLENGE with AUTH computed from `secret`. */
function sendAuth(raw: RawSocket, secret: string, realm: string, listenerNonce: Buffer): Buffer {
  const nonce = randomBytes(32);
  const proof = proofOf(Buffer.from(secret), realm, 'dialer', listenerNonce, nonce);
  raw.write(encodeEventRequest(EventKind.AUTH, 1, { mechanism: 'hmac-sha256', nonce, proof }, true));
  return nonce;
}

function helloBody(name: string, port: number): unknown {
  return { name, poolType: 0, endpoint: { host: HOST, port }, services: [{ key: 1 }] };
}

describe('join secret on the control port and the data port', () => {
  it('an FS with the same secret registers and serves; nothing is refused', async () => {
    const [fs] = await h.cluster({ joinSecret: JOIN_SECRET }, [{ name: 'fs-good', joinSecret: JOIN_SECRET }]);
    const c = await h.client();
    expect(await c.call(1, { hello: 'world' })).toEqual({ hello: 'world' });
    expect(h.as.listFunctionServers().map((f) => [f.id, f.state])).toEqual([['fs-good', 'available']]);
    expect(h.as.closedConnections().control.get('auth')).toBe(0);
    expect(fs.connectionCount).toBe(1); // the AS's pool connection passed the FS's gate
  });

  it('an FS without the secret never registers: its HELLO gets an id-0 SB_ERR_AUTH_REQUIRED', async () => {
    await h.cluster({ joinSecret: JOIN_SECRET }, [{ name: 'fs-good', joinSecret: JOIN_SECRET }]);
    const bg = await h.background();
    const log = captureLogger();
    const joined: string[] = [];
    h.as.on('fs-joined', (i: FunctionServerInfo) => joined.push(i.id));
    const plain = await h.startFs({ name: 'fs-plain', register: false, applicationServer: { host: HOST, port: h.controlPort }, reconnectBaseMs: 20, reconnectCapMs: 100, logger: log.logger });
    let registered = false;
    plain.on('registered', () => (registered = true));
    // It keeps trying, and is refused each time.
    await waitFor(() => (h.as.closedConnections().control.get('auth') ?? 0) >= 3, 'three refused control connections');
    const refusals = log.lines.filter((l) => l.msg === 'the application server refused this function server');
    expect(refusals.length).toBeGreaterThan(0);
    expect(refusals[0]).toMatchObject({ code: 'SB_ERR_AUTH_REQUIRED' });
    expect(registered).toBe(false);
    expect(joined).toEqual([]);
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-good']);

    // The same refusal seen on the wire: CHALLENGE first, then HELLO without proof closes with an id-0 error.
    const raw = await h.raw(h.controlPort);
    await readChallenge(raw, 'join');
    raw.write(encodeEventRequest(EventKind.HELLO, 1, helloBody('fs-raw', 1), true));
    await expectUnauthorized(raw, 'SB_ERR_AUTH_REQUIRED');
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-good']);
    await expectTrafficUnharmed(bg);
  });

  it('an FS with a different secret is refused with SB_ERR_AUTH_FAILED and counted as auth closes', async () => {
    await h.cluster({ joinSecret: JOIN_SECRET }, [{ name: 'fs-good', joinSecret: JOIN_SECRET }]);
    const bg = await h.background();
    const log = captureLogger();
    const before = h.as.closedConnections().control.get('auth') ?? 0;
    const wrong = await h.startFs({ name: 'fs-wrong', register: false, applicationServer: { host: HOST, port: h.controlPort }, joinSecret: OTHER_SECRET, reconnectBaseMs: 20, reconnectCapMs: 100, logger: log.logger });
    let registered = false;
    wrong.on('registered', () => (registered = true));
    await waitFor(() => (h.as.closedConnections().control.get('auth') ?? 0) >= before + 2, 'two refused control connections');
    const failed = log.lines.filter((l) => l.msg === 'the application server and this FS could not prove the join secret to each other');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed[0]).toMatchObject({ code: 'SB_ERR_AUTH_FAILED' });
    expect(registered).toBe(false);
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-good']);

    // On the wire: a proof made with another secret gets an id-0 SB_ERR_AUTH_FAILED.
    const raw = await h.raw(h.controlPort);
    sendAuth(raw, OTHER_SECRET, 'join', await readChallenge(raw, 'join'));
    await expectUnauthorized(raw, 'SB_ERR_AUTH_FAILED');
    await expectTrafficUnharmed(bg);
  });

  it('a stranger on a secret-holding FS data port gets a CHALLENGE; a request or event before proof is refused and no handler runs', async () => {
    const [fs] = await h.cluster({ joinSecret: JOIN_SECRET }, [{ name: 'fs-good', joinSecret: JOIN_SECRET, plugins: [EchoPlugin, CountedPlugin] }]);
    const bg = await h.background();
    const c = await h.client();
    expect(await c.call(COUNTED)).toBe(1); // the service works for callers that come through the AS
    const port = fs.address().port;

    const r1 = await h.raw(port);
    await readChallenge(r1, 'join');
    r1.write(encodeRequest(5, COUNTED, {}));
    await expectUnauthorized(r1, 'SB_ERR_AUTH_REQUIRED');

    const r2 = await h.raw(port);
    await readChallenge(r2, 'join');
    r2.write(encodeRequest(0, COUNTED, {}, { twoWay: false })); // one-way: still not before the proof
    await expectUnauthorized(r2, 'SB_ERR_AUTH_REQUIRED');

    const r3 = await h.raw(port);
    await readChallenge(r3, 'join');
    r3.write(encodeEventRequest(EventKind.DESCRIBE, 1, {}, true)); // not even its service table
    await expectUnauthorized(r3, 'SB_ERR_AUTH_REQUIRED');

    const r4 = await h.raw(port);
    sendAuth(r4, OTHER_SECRET, 'join', await readChallenge(r4, 'join'));
    r4.write(encodeRequest(6, COUNTED, {}));
    await expectUnauthorized(r4, 'SB_ERR_AUTH_FAILED');
    expect(r4.frames.filter((f) => !isEvent(f))).toHaveLength(1); // only the refusal, no answer to the request

    expect(counters.counted).toBe(1);
    await waitFor(() => fs.connectionCount === 1, 'the FS to hold only the AS pool connection');

    // With the right proof the same port serves.
    const r5 = await h.raw(port);
    const listenerNonce = await readChallenge(r5, 'join');
    const myNonce = sendAuth(r5, JOIN_SECRET, 'join', listenerNonce);
    const ok = await r5.nextFrame();
    expect(eventKindOf(ok)).toBe(EventKind.AUTH);
    expect(statusOf(ok)).toBe(Status.OK);
    expect(Buffer.from((decodeBody(ok) as { proof: Uint8Array }).proof)).toEqual(proofOf(Buffer.from(JOIN_SECRET), 'join', 'listener', listenerNonce, myNonce));
    r5.write(encodeRequest(7, COUNTED, {}));
    const answer = await r5.nextFrame();
    expect([requestIdOf(answer), statusOf(answer), decodeBody(answer)]).toEqual([7, Status.OK, 2]);
    await expectTrafficUnharmed(bg);
  });

  it('an AS with the secret never makes an FS without one available: it did not ask for proof', async () => {
    const log = captureLogger();
    await h.cluster({ joinSecret: JOIN_SECRET, authTimeoutMs: 200, reconnectBaseMs: 20, reconnectCapMs: 100, logger: log.logger }, [{ name: 'fs-good', joinSecret: JOIN_SECRET }]);
    const bg = await h.background();
    const plain = await h.startFs({ name: 'fs-plain', register: false, plugins: [EchoPlugin, CountedPlugin] });
    const states: string[] = [];
    h.as.on('fs-state', (i: FunctionServerInfo) => {
      if (i.id === 'fs-plain') states.push(i.state);
    });
    h.as.addFunctionServer({ host: HOST, port: plain.address().port, name: 'fs-plain' });
    const failedDials = (): typeof log.lines => log.lines.filter((l) => l.msg === 'dial to function server failed' && l.fs === 'fs-plain');
    await waitFor(() => failedDials().length >= 3, 'three failed dials to the FS without a secret');
    expect(String(failedDials()[0].err)).toMatch(/did not ask for proof within 200 ms; it has no join secret set/);
    expect(states).not.toContain('available');
    expect(h.as.listFunctionServers().find((f) => f.id === 'fs-plain')?.state).not.toBe('available');
    expect(plain.inflight).toBe(0);
    expect(counters.counted).toBe(0);
    await expectTrafficUnharmed(bg);
  });
});

describe('peers that are not on loopback (network namespace)', () => {
  const reason = netnsUnavailable();
  if (reason) console.warn(`skipping the non-loopback peer tests: ${reason}`);

  /** A namespace torn down after everything the test started in front of it (teardown runs in reverse). */
  function peerNamespace(): PeerNamespace {
    const ns = createPeerNamespace();
    h.defer(() => ns.destroy());
    return ns;
  }

  it.skipIf(reason)('an AS without a secret refuses a control connection from a non-loopback peer; with one, a peer that proves it registers', async () => {
    const ns = peerNamespace();
    const hostAddress = ns.hostAddress;
    // Without a secret: the control port binds the namespace-facing address but takes loopback peers only.
    const as = await h.startAs({ controlHost: hostAddress });
    const fs = await h.startFs({ name: 'fs-local', register: false });
    as.addFunctionServer({ host: HOST, port: fs.address().port, name: 'fs-local' });
    await waitForAvailable(as, 1);
    const bg = await h.background();
    const refused = await runNsPeer(ns, { HOST: hostAddress, PORT: h.controlPort, ACT: 'hello', NAME: 'ns-fs' });
    expect(refused.local).toBe(ns.nsAddress);
    expect(refused.first).toMatchObject({ requestId: 0, status: Status.UNAUTHORIZED, code: 'SB_ERR_AUTH_REQUIRED', event: false });
    expect(refused.closedAfterRefusal).toBe(true);
    expect(as.closedConnections().control.get('auth')).toBe(1);
    expect(as.listFunctionServers().map((f) => f.id)).toEqual(['fs-local']);
    await expectTrafficUnharmed(bg);
    await as.stop();

    // With a join secret the same peer proves it and its HELLO is taken.
    const as2 = await h.startAs({ controlHost: hostAddress, joinSecret: JOIN_SECRET });
    const accepted = await runNsPeer(ns, { HOST: hostAddress, PORT: h.controlPort, SECRET: JOIN_SECRET, ACT: 'hello', NAME: 'ns-fs' });
    expect(accepted.challenge).toMatchObject({ kind: EventKind.CHALLENGE, event: true, realm: 'join' });
    expect(accepted.auth).toMatchObject({ status: Status.OK, kind: EventKind.AUTH, listenerProved: true });
    expect(accepted.first).toMatchObject({ requestId: 1, status: Status.OK, kind: EventKind.HELLO, event: true, name: 'ns-fs' });
    expect(as2.listFunctionServers().find((f) => f.id === 'ns-fs')).toMatchObject({ source: 'hello' });
    // ... and one with the wrong secret is not.
    const wrong = await runNsPeer(ns, { HOST: hostAddress, PORT: h.controlPort, SECRET: OTHER_SECRET, ACT: 'hello', NAME: 'ns-fs-2' });
    expect(wrong.auth).toMatchObject({ status: Status.UNAUTHORIZED, code: 'SB_ERR_AUTH_FAILED', listenerProved: false });
    expect(as2.closedConnections().control.get('auth')).toBe(1);
    expect(as2.listFunctionServers().map((f) => f.id)).toEqual(['ns-fs']);
  });

  it.skipIf(reason)('an FS without a secret refuses a pool connection from a non-loopback peer; with one, a peer that proves it is served', async () => {
    const ns = peerNamespace();
    const log = captureLogger();
    const fs = await h.startFs({ name: 'fs-open', register: false, host: ns.hostAddress, logger: log.logger, plugins: [EchoPlugin, CountedPlugin] });
    const refused = await runNsPeer(ns, { HOST: ns.hostAddress, PORT: fs.address().port, ACT: 'describe' });
    expect(refused.local).toBe(ns.nsAddress);
    expect(refused.first).toMatchObject({ requestId: 0, status: Status.UNAUTHORIZED, code: 'SB_ERR_AUTH_REQUIRED', event: false });
    expect(refused.closedAfterRefusal).toBe(true);
    const closes = log.lines.filter((l) => l.msg === 'pool connection closed' && l.reason === 'auth');
    expect(closes).toHaveLength(1);
    expect(String(closes[0].remote)).toContain(ns.nsAddress);
    expect(counters.counted).toBe(0);

    // The same peer that proves the secret to an FS that holds one is served.
    const guarded = await h.startFs({ name: 'fs-guarded', register: false, host: ns.hostAddress, joinSecret: JOIN_SECRET });
    const served = await runNsPeer(ns, { HOST: ns.hostAddress, PORT: guarded.address().port, SECRET: JOIN_SECRET, ACT: 'describe' });
    expect(served.auth).toMatchObject({ status: Status.OK, listenerProved: true });
    expect(served.first).toMatchObject({ requestId: 1, status: Status.OK, kind: EventKind.DESCRIBE, name: 'fs-guarded' });
    expect(fs.connectionCount).toBe(0);
  });
});

describe('client secret on the client port', () => {
  const CLIENT_SECRET = 'client-secret-0123456789abcdef-012345';
  const WRONG_CLIENT_SECRET = 'not-the-client-secret-at-all-000';

  /** Client.connect's rejection (it must reject). */
  async function connectError(opts: ClientOptions): Promise<Error> {
    return Client.connect(opts).then(
      async (c) => {
        await c.close();
        throw new Error('Client.connect resolved; it should have failed');
      },
      (e: Error) => e,
    );
  }

  /** The AuthError code an error carries itself or as its cause. */
  function authCodeOf(e: Error): string | undefined {
    const auth = e instanceof AuthError ? e : e.cause instanceof AuthError ? e.cause : undefined;
    return auth?.code;
  }

  it('a client without the secret: connect rejects with AuthError AUTH_REQUIRED (the port sent CHALLENGE); a raw peer gets an id-0 UNAUTHORIZED; with it calls work; a wrong one fails', async () => {
    await h.cluster({ clientSecret: CLIENT_SECRET }, [{ name: 'fs-1' }]);
    const good = await h.client({ secret: CLIENT_SECRET });
    const bg = backgroundEcho(await h.client({ secret: CLIENT_SECRET }));
    h.defer(() => bg.stop());
    expect(await good.call(1, 'proved')).toBe('proved');

    const none = await connectError({ port: h.port });
    expect(none).toBeInstanceOf(AuthError);
    expect(none).toMatchObject({ code: 'SB_ERR_AUTH_REQUIRED', status: Status.UNAUTHORIZED, message: expect.stringContaining('asks for proof of the client secret') });

    const raw = await h.raw();
    await readChallenge(raw, 'client');
    raw.write(encodeRequest(1, 1, 'raw'));
    await expectUnauthorized(raw, 'SB_ERR_AUTH_REQUIRED');

    // A wrong secret: connect fails, and the AS's refusal (SB_ERR_AUTH_FAILED) is what it carries.
    const wrong = await connectError({ port: h.port, secret: WRONG_CLIENT_SECRET });
    expect(authCodeOf(wrong)).toBe('SB_ERR_AUTH_FAILED');
    // The join secret is another realm: a proof of it is no proof of the client secret.
    const otherRealm = await h.raw();
    sendAuth(otherRealm, CLIENT_SECRET, 'join', await readChallenge(otherRealm, 'client'));
    await expectUnauthorized(otherRealm, 'SB_ERR_AUTH_FAILED');

    // The secretless SDK client hung up itself on seeing CHALLENGE: the AS closed the other three.
    await waitFor(() => h.as.closedConnections().client.get('auth') === 3, 'three client connections closed for auth');
    expect(await good.call(1, 'still fine')).toBe('still fine');
    await expectTrafficUnharmed(bg);
  });

  // Fails today: Client.connect turns the AuthError into ConnectError('... is it running?', SB_ERR_CONNECT),
  // so `switchboard call` with a wrong --secret-file prints "UNAVAILABLE: cannot connect ... is it running?".
  it('a wrong client secret is reported as AuthError SB_ERR_AUTH_FAILED, not as a connect failure', async () => {
    await h.cluster({ clientSecret: CLIENT_SECRET }, [{ name: 'fs-1' }]);
    const wrong = await connectError({ port: h.port, secret: WRONG_CLIENT_SECRET });
    expect(wrong).toBeInstanceOf(AuthError);
    expect(wrong).toMatchObject({ code: 'SB_ERR_AUTH_FAILED', status: Status.UNAUTHORIZED });
    expect(h.as.closedConnections().client.get('auth')).toBe(1);
  });
});
