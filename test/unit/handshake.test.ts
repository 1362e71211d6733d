import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeBody, encodeEventRequest, encodeEventResponse, encodeFrameRaw, encodeRequest, encodeResponse } from '../../src/protocol/codec.js';
import { AuthError } from '../../src/protocol/errors.js';
import { EventKind } from '../../src/protocol/events.js';
import { FrameConnection, type CloseReason, type FrameHandlers } from '../../src/protocol/frame-connection.js';
import { FrameParser } from '../../src/protocol/frame-parser.js';
import { FLAG_EVENT, FLAG_REQUEST, FLAG_TWO_WAY, Serialization, eventKindOf, isEvent, isRequest, isTwoWay, requestIdOf, statusOf } from '../../src/protocol/header.js';
import { Status } from '../../src/protocol/status.js';
import type { Timers } from '../../src/protocol/timers.js';
import { AUTH_MECHANISM, authenticateDialer, guardListener, proofOf, type AuthRealm } from '../../src/security/handshake.js';
import { withTimeout } from '../fixtures/wait.js';

const HOST = '127.0.0.1';
const SECRET = Buffer.from('correct horse battery staple 42');
const OTHER = Buffer.from('a different secret of 32 bytes!!');
const WAIT = 3000;

// ── Plumbing: every server and socket made in a test is torn down after it. ──

const servers: Server[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

async function serve(onSocket: (s: Socket) => void): Promise<number> {
  const server = createServer((s) => {
    sockets.push(s);
    onSocket(s);
  });
  servers.push(server);
  server.listen(0, HOST);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function dialSocket(port: number): Promise<Socket> {
  const s = connect({ host: HOST, port });
  sockets.push(s);
  await once(s, 'connect');
  return s;
}

/** Every frame that arrives on a socket, parsed by the real parser; heartbeats are skipped by next(). */
class Tap {
  readonly frames: Buffer[] = [];
  readonly closed: Promise<void>;
  #cursor = 0;
  #wake: (() => void)[] = [];
  #isClosed = false;

  constructor(readonly socket: Socket) {
    const parser = new FrameParser({ onFrame: (f) => this.#push(Buffer.from(f)), onError: (e) => expect.fail(`bad frame: ${e.message}`) });
    socket.on('data', (c: Buffer) => parser.push(c));
    socket.on('error', () => undefined);
    this.closed = new Promise<void>((r) => socket.once('close', () => r())).then(() => {
      this.#isClosed = true;
      this.#notify();
    });
  }

  /** The next frame that is not a heartbeat. */
  async next(): Promise<Buffer> {
    const deadline = Date.now() + WAIT;
    for (;;) {
      while (this.#cursor < this.frames.length) {
        const f = this.frames[this.#cursor++];
        if (!(isEvent(f) && eventKindOf(f) === EventKind.HEARTBEAT)) return f;
      }
      if (this.#isClosed) throw new Error('closed before the expected frame came');
      await withTimeout(new Promise<void>((r) => this.#wake.push(r)), Math.max(1, deadline - Date.now()), 'a frame');
    }
  }

  /** Resolves with the first frame (heartbeats included) that `pred` accepts. */
  async until(pred: (f: Buffer) => boolean): Promise<Buffer> {
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (this.#isClosed) throw new Error('closed before the expected frame came');
      await withTimeout(new Promise<void>((r) => this.#wake.push(r)), WAIT, 'a frame');
    }
  }

  waitClosed(): Promise<void> {
    return withTimeout(this.closed, WAIT, 'the socket to close');
  }

  #push(f: Buffer): void {
    this.frames.push(f);
    this.#notify();
  }

  #notify(): void {
    for (const w of this.#wake.splice(0)) w();
  }
}

/** Timers whose timeouts fire only when the test says so. */
class ManualTimers implements Timers {
  readonly pending = new Map<number, { fn: () => void; ms: number }>();
  #next = 1;
  now = (): number => Date.now();
  setInterval = (): unknown => 0;
  clearInterval = (): void => undefined;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const h = this.#next++;
    this.pending.set(h, { fn, ms });
    return h;
  };
  clearTimeout = (h: unknown): void => {
    this.pending.delete(h as number);
  };
  fireAll(): void {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const t of due) t.fn();
  }
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

// ── The listener side: FrameConnections behind a gate (or none), with real handlers behind it. ──

interface Accepted {
  conn: FrameConnection;
  /** Requests the real handlers saw. */
  requests: Buffer[];
  authenticated: Promise<FrameConnection>;
  refused: Promise<AuthError>;
  /** Every onRefused call, in order. */
  refusals: AuthError[];
  closed: Promise<{ reason: CloseReason; err: Error | undefined }>;
}

interface GateOptions {
  secret?: Buffer;
  realm?: AuthRealm;
  timeoutMs?: number;
  timers?: Timers;
}

async function listener(o: GateOptions = {}): Promise<{ port: number; accepted: Accepted[]; next: () => Promise<Accepted> }> {
  const accepted: Accepted[] = [];
  let wake: (() => void) | undefined;
  const port = await serve((socket) => {
    const closed = deferred<{ reason: CloseReason; err: Error | undefined }>();
    const authenticated = deferred<FrameConnection>();
    const refused = deferred<AuthError>();
    const requests: Buffer[] = [];
    const refusals: AuthError[] = [];
    const conn = new FrameConnection(socket, { heartbeatMs: 0, onClose: (reason, err) => closed.resolve({ reason, err }) });
    const handlers: FrameHandlers = {
      onFrame: (frame, c) => {
        requests.push(Buffer.from(frame));
        if (isRequest(frame)) c.send(encodeResponse(requestIdOf(frame), Status.OK, { echo: decodeBody(frame) }));
      },
    };
    if (o.secret) {
      guardListener(conn, { secret: o.secret, realm: o.realm ?? 'join', timeoutMs: o.timeoutMs ?? WAIT, timers: o.timers }, handlers, {
        onAuthenticated: (c) => authenticated.resolve(c),
        onRefused: (_, err) => {
          refusals.push(err);
          refused.resolve(err);
        },
      });
    } else {
      conn.setHandlers(handlers);
    }
    accepted.push({ conn, requests, authenticated: authenticated.promise, refused: refused.promise, refusals, closed: closed.promise });
    wake?.();
  });
  let taken = 0;
  const next = async (): Promise<Accepted> => {
    while (accepted.length <= taken) await withTimeout(new Promise<void>((r) => (wake = r)), WAIT, 'a connection');
    return accepted[taken++];
  };
  return { port, accepted, next };
}

// ── The dialer side: a FrameConnection running authenticateDialer, with a tap on its socket. ──

interface Dialer {
  conn: FrameConnection;
  auth: Promise<void>;
  /** Frames the dialer's real handlers saw after the proof. */
  replies: Buffer[];
  wire: Tap;
  closed: Promise<{ reason: CloseReason; err: Error | undefined }>;
}

async function dialer(port: number, secret: Buffer, realm: AuthRealm = 'join', timeoutMs = WAIT, timers?: Timers): Promise<Dialer> {
  const socket = await dialSocket(port);
  const wire = new Tap(socket);
  const closed = deferred<{ reason: CloseReason; err: Error | undefined }>();
  const replies: Buffer[] = [];
  const conn = new FrameConnection(socket, { heartbeatMs: 0, onClose: (reason, err) => closed.resolve({ reason, err }) });
  const auth = authenticateDialer(conn, { secret, realm, timeoutMs, timers }, { onFrame: (f) => replies.push(Buffer.from(f)) });
  auth.catch(() => undefined); // inspected by each test
  return { conn, auth, replies, wire, closed: closed.promise };
}

/** The AuthError `p` rejects with. */
async function authErrorOf(p: Promise<unknown>): Promise<AuthError> {
  const err = await withTimeout(p.then(() => expect.fail('expected a rejection')).catch((e: unknown) => e), WAIT, 'the dialer to settle');
  expect(err).toBeInstanceOf(AuthError);
  expect((err as AuthError).status).toBe(Status.UNAUTHORIZED);
  return err as AuthError;
}

/** The listener's connection-level refusal: request id 0, UNAUTHORIZED, this code; then the close. */
async function expectRefusal(wire: Tap, code: string): Promise<{ code: string; message: string }> {
  const f = await wire.next();
  expect(isEvent(f)).toBe(false);
  expect(isRequest(f)).toBe(false);
  expect(requestIdOf(f)).toBe(0);
  expect(statusOf(f)).toBe(Status.UNAUTHORIZED);
  const body = decodeBody(f) as { code: string; message: string };
  expect(body.code).toBe(code);
  await wire.waitClosed();
  return body;
}

// ── A raw dialer: reads CHALLENGE and writes whatever AUTH the test builds. ──

async function rawDialer(port: number): Promise<{ socket: Socket; wire: Tap; listenerNonce: Buffer }> {
  const socket = await dialSocket(port);
  const wire = new Tap(socket);
  const challenge = await wire.next();
  expect(isEvent(challenge) && isRequest(challenge) && !isTwoWay(challenge)).toBe(true);
  expect(eventKindOf(challenge)).toBe(EventKind.CHALLENGE);
  const body = decodeBody(challenge) as { v: number; realm: string; nonce: Uint8Array; mechanisms: string[] };
  return { socket, wire, listenerNonce: Buffer.from(body.nonce) };
}

const authFrame = (body: unknown, requestId = 1): Buffer => encodeEventRequest(EventKind.AUTH, requestId, body, true);

function goodAuth(listenerNonce: Buffer, secret = SECRET, realm: string = 'join', role: 'dialer' | 'listener' = 'dialer'): { frame: Buffer; nonce: Buffer } {
  const nonce = randomBytes(32);
  return { frame: authFrame({ mechanism: AUTH_MECHANISM, nonce, proof: proofOf(secret, realm, role, listenerNonce, nonce) }), nonce };
}

// ─────────────────────────────────────────────────────────────────────────────

describe('proofOf', () => {
  const L = Buffer.alloc(32, 0x11);
  const D = Buffer.alloc(32, 0x22);

  it('matches the worked example in docs/protocol.md 6.6', () => {
    expect(proofOf(SECRET, 'join', 'dialer', L, D).toString('hex')).toBe('d3c15e452845fbef7392cc6ccfdfe2ef62f6b5cb295911abf9a81e6c8fdce5d4');
    expect(proofOf(SECRET, 'join', 'listener', L, D).toString('hex')).toBe('9fbb8ce2bef1a5c6049ea0286fd96acaa09a33e8bf84ed99b2513e4a82f9d0d0');
  });

  it('is 32 bytes and the same for the same inputs', () => {
    const p = proofOf(SECRET, 'join', 'dialer', L, D);
    expect(p).toHaveLength(32);
    expect(proofOf(Buffer.from(SECRET), 'join', 'dialer', Buffer.from(L), Buffer.from(D))).toEqual(p);
  });

  it('differs by realm, role, either nonce and the secret', () => {
    const base = proofOf(SECRET, 'join', 'dialer', L, D).toString('hex');
    const variants = [
      proofOf(SECRET, 'client', 'dialer', L, D),
      proofOf(SECRET, 'join', 'listener', L, D),
      proofOf(SECRET, 'join', 'dialer', Buffer.alloc(32, 0x12), D),
      proofOf(SECRET, 'join', 'dialer', L, Buffer.alloc(32, 0x23)),
      proofOf(SECRET, 'join', 'dialer', D, L), // nonces swapped
      proofOf(OTHER, 'join', 'dialer', L, D),
    ].map((p) => p.toString('hex'));
    for (const v of variants) expect(v).not.toBe(base);
    expect(new Set(variants).size).toBe(variants.length);
  });
});

describe('handshake over TCP: both sides hold the secret', () => {
  it('the dialer resolves, the listener reports it, and then frames reach the real handlers both ways', async () => {
    const l = await listener({ secret: SECRET });
    const d = await dialer(l.port, SECRET);
    await withTimeout(d.auth, WAIT, 'the dialer to authenticate');
    const a = await l.next();
    expect(await withTimeout(a.authenticated, WAIT, 'onAuthenticated')).toBe(a.conn);

    d.conn.send(encodeRequest(5, 101, { hi: 1 }));
    const reply = await d.wire.until((f) => !isEvent(f) && requestIdOf(f) === 5);
    expect(statusOf(reply)).toBe(Status.OK);
    expect(decodeBody(reply)).toEqual({ echo: { hi: 1 } });
    expect(a.requests.map(requestIdOf)).toEqual([5]);
    expect(d.replies.map(requestIdOf)).toEqual([5]);
    expect(d.conn.closed || a.conn.closed).toBe(false);
  });

  it('the wire carries CHALLENGE, AUTH and its answer as the protocol says', async () => {
    const l = await listener({ secret: SECRET, realm: 'client' });
    const raw = await rawDialer(l.port);
    expect(raw.listenerNonce).toHaveLength(32);
    const challenge = raw.wire.frames[0];
    expect(requestIdOf(challenge)).toBe(0);
    expect(decodeBody(challenge)).toMatchObject({ v: 1, realm: 'client', mechanisms: [AUTH_MECHANISM] });

    const { frame, nonce } = goodAuth(raw.listenerNonce, SECRET, 'client');
    raw.socket.write(frame);
    const answer = await raw.wire.next();
    expect(isEvent(answer) && !isRequest(answer)).toBe(true);
    expect(eventKindOf(answer)).toBe(EventKind.AUTH);
    expect(requestIdOf(answer)).toBe(1);
    expect(statusOf(answer)).toBe(Status.OK);
    const proof = Buffer.from((decodeBody(answer) as { proof: Uint8Array }).proof);
    expect(proof).toEqual(proofOf(SECRET, 'client', 'listener', raw.listenerNonce, nonce));
  });

  it('a heartbeat before AUTH is answered and does not trip the gate', async () => {
    const l = await listener({ secret: SECRET });
    const raw = await rawDialer(l.port);
    raw.socket.write(encodeEventRequest(EventKind.HEARTBEAT, 9, undefined, true));
    const pong = await raw.wire.until((f) => eventKindOf(f) === EventKind.HEARTBEAT && !isRequest(f));
    expect(requestIdOf(pong)).toBe(9);
    raw.socket.write(goodAuth(raw.listenerNonce).frame);
    expect(statusOf(await raw.wire.next())).toBe(Status.OK);
    await withTimeout((await l.next()).authenticated, WAIT, 'onAuthenticated');
  });

  it('a proof in time clears the listener timer', async () => {
    const timers = new ManualTimers();
    const l = await listener({ secret: SECRET, timeoutMs: 1234, timers });
    const d = await dialer(l.port, SECRET);
    await withTimeout(d.auth, WAIT, 'the dialer to authenticate');
    await withTimeout((await l.next()).authenticated, WAIT, 'onAuthenticated');
    expect(timers.pending.size).toBe(0);
  });
});

describe('handshake over TCP: the listener refuses', () => {
  it('a wrong secret: UNAUTHORIZED with SB_ERR_AUTH_FAILED at id 0, close reason auth, the dialer rejects', async () => {
    const l = await listener({ secret: SECRET });
    const d = await dialer(l.port, OTHER);
    const err = await authErrorOf(d.auth);
    expect(err.code).toBe('SB_ERR_AUTH_FAILED');
    expect(err.message).toContain('refused us');
    expect(eventKindOf(await d.wire.next())).toBe(EventKind.CHALLENGE);
    await expectRefusal(d.wire, 'SB_ERR_AUTH_FAILED');
    const a = await l.next();
    expect((await a.refused).code).toBe('SB_ERR_AUTH_FAILED');
    expect((await withTimeout(a.closed, WAIT, 'the listener to close')).reason).toBe('auth');
    expect((await withTimeout(d.closed, WAIT, 'the dialer to close')).reason).toBe('auth');
    expect(a.requests).toEqual([]);
  });

  it('a request before AUTH: SB_ERR_AUTH_REQUIRED and close', async () => {
    const l = await listener({ secret: SECRET });
    const raw = await rawDialer(l.port);
    raw.socket.write(encodeRequest(5, 101, { sneaky: true }));
    const body = await expectRefusal(raw.wire, 'SB_ERR_AUTH_REQUIRED');
    expect(body.message).toContain('join secret');
    const a = await l.next();
    expect((await a.closed).reason).toBe('auth');
    expect(a.requests).toEqual([]);
  });

  it.each([
    ['a response', () => encodeResponse(3, Status.OK, 'x')],
    ['a one-way request', () => encodeRequest(3, 101, 'x', { twoWay: false })],
    ['another event (HELLO)', () => encodeEventRequest(EventKind.HELLO, 3, { name: 'fs' }, true)],
    ['AUTH sent one-way', () => encodeEventRequest(EventKind.AUTH, 3, {}, false)],
    ['AUTH sent as a response', () => encodeEventResponse(EventKind.AUTH, 3, {})],
  ])('%s before AUTH: SB_ERR_AUTH_REQUIRED and close', async (_, make) => {
    const l = await listener({ secret: SECRET });
    const raw = await rawDialer(l.port);
    raw.socket.write(make());
    await expectRefusal(raw.wire, 'SB_ERR_AUTH_REQUIRED');
    expect((await (await l.next()).closed).reason).toBe('auth');
  });

  it('no AUTH within timeoutMs: SB_ERR_AUTH_TIMEOUT and close', async () => {
    const timers = new ManualTimers();
    const l = await listener({ secret: SECRET, timeoutMs: 250, timers });
    const raw = await rawDialer(l.port);
    expect([...timers.pending.values()].map((t) => t.ms)).toEqual([250]);
    timers.fireAll();
    const body = await expectRefusal(raw.wire, 'SB_ERR_AUTH_TIMEOUT');
    expect(body.message).toContain('250 ms');
    const a = await l.next();
    expect((await a.refused).code).toBe('SB_ERR_AUTH_TIMEOUT');
    expect((await a.closed).reason).toBe('auth');
  });

  // The gate's timer goes with the connection: a peer gone before AUTH is not refused later, and
  // the closed connection is not kept alive by the timer.
  it('a peer that hangs up before AUTH is not reported refused later', async () => {
    const timers = new ManualTimers();
    const l = await listener({ secret: SECRET, timeoutMs: 250, timers });
    const raw = await rawDialer(l.port);
    raw.socket.destroy();
    const a = await l.next();
    expect((await withTimeout(a.closed, WAIT, 'the listener to close')).reason).toBe('remote');
    timers.fireAll();
    expect(a.refusals).toEqual([]);
  });

  it('no AUTH within timeoutMs, on real timers', async () => {
    const l = await listener({ secret: SECRET, timeoutMs: 100 });
    const raw = await rawDialer(l.port);
    await expectRefusal(raw.wire, 'SB_ERR_AUTH_TIMEOUT');
  });

  it('replay: an AUTH that worked on one connection is refused on another (fresh listener nonce)', async () => {
    const l = await listener({ secret: SECRET });
    const first = await rawDialer(l.port);
    const { frame } = goodAuth(first.listenerNonce);
    first.socket.write(frame);
    expect(statusOf(await first.wire.next())).toBe(Status.OK);

    const second = await rawDialer(l.port);
    expect(second.listenerNonce.equals(first.listenerNonce)).toBe(false);
    second.socket.write(frame);
    await expectRefusal(second.wire, 'SB_ERR_AUTH_FAILED');
  });

  it("reflection: a proof made with role 'listener' is refused as the dialer's", async () => {
    const l = await listener({ secret: SECRET });
    const raw = await rawDialer(l.port);
    raw.socket.write(goodAuth(raw.listenerNonce, SECRET, 'join', 'listener').frame);
    await expectRefusal(raw.wire, 'SB_ERR_AUTH_FAILED');
  });

  it("realm separation: a proof made for realm 'client' is refused on a 'join' gate", async () => {
    const l = await listener({ secret: SECRET, realm: 'join' });
    const raw = await rawDialer(l.port);
    raw.socket.write(goodAuth(raw.listenerNonce, SECRET, 'client').frame);
    await expectRefusal(raw.wire, 'SB_ERR_AUTH_FAILED');
  });

  it.each([
    ['no body', undefined],
    ['not a map', 'hello'],
    ['another mechanism', { mechanism: 'md5', nonce: Buffer.alloc(32), proof: Buffer.alloc(32) }],
    ['a nonce too short', { mechanism: AUTH_MECHANISM, nonce: Buffer.alloc(8), proof: Buffer.alloc(32) }],
    ['a proof of 31 bytes', { mechanism: AUTH_MECHANISM, nonce: Buffer.alloc(32), proof: Buffer.alloc(31) }],
    ['a proof as a string', { mechanism: AUTH_MECHANISM, nonce: Buffer.alloc(32), proof: 'x'.repeat(32) }],
  ])('a malformed AUTH body (%s): SB_ERR_AUTH_FAILED', async (_, body) => {
    const l = await listener({ secret: SECRET });
    const raw = await rawDialer(l.port);
    raw.socket.write(authFrame(body));
    const refusal = await expectRefusal(raw.wire, 'SB_ERR_AUTH_FAILED');
    expect(refusal.message).toContain('AUTH is malformed');
  });

  it('an AUTH body that is not msgpack: SB_ERR_AUTH_FAILED', async () => {
    const l = await listener({ secret: SECRET });
    const raw = await rawDialer(l.port);
    const flags = FLAG_REQUEST | FLAG_TWO_WAY | FLAG_EVENT | Serialization.MSGPACK;
    raw.socket.write(encodeFrameRaw({ flags, eventKind: EventKind.AUTH, requestId: 1 }, Buffer.from([0xc1])));
    await expectRefusal(raw.wire, 'SB_ERR_AUTH_FAILED');
  });
});

describe('handshake over TCP: the dialer refuses', () => {
  it('a listener with no gate: SB_ERR_AUTH_TIMEOUT saying the peer did not ask for proof', async () => {
    const l = await listener({});
    const d = await dialer(l.port, SECRET, 'join', 100);
    const err = await authErrorOf(d.auth);
    expect(err.code).toBe('SB_ERR_AUTH_TIMEOUT');
    expect(err.message).toContain('did not ask for proof within 100 ms');
    expect((await withTimeout(d.closed, WAIT, 'the dialer to close')).reason).toBe('auth');
  });

  it('a listener with no gate, on manual timers: rejected when the timer fires', async () => {
    const l = await listener({});
    const timers = new ManualTimers();
    const d = await dialer(l.port, SECRET, 'join', 5000, timers);
    expect([...timers.pending.values()].map((t) => t.ms)).toEqual([5000]);
    timers.fireAll();
    const err = await authErrorOf(d.auth);
    expect(err.code).toBe('SB_ERR_AUTH_TIMEOUT');
    expect(err.message).toContain('did not ask for proof');
    expect(d.conn.closeReason).toBe('auth');
  });

  it('a CHALLENGE for another realm', async () => {
    const l = await listener({ secret: SECRET, realm: 'client' });
    const d = await dialer(l.port, SECRET, 'join');
    const err = await authErrorOf(d.auth);
    expect(err.code).toBe('SB_ERR_AUTH_FAILED');
    expect(err.message).toContain('realm client');
  });

  /** A fake listener on a raw socket: sends CHALLENGE, then answers AUTH with `answer(authBody)`. */
  async function fakeListener(answer: (auth: { nonce: Uint8Array; proof: Uint8Array }, listenerNonce: Buffer) => unknown): Promise<{ port: number; authSeen: Promise<Buffer> }> {
    const seen = deferred<Buffer>();
    const port = await serve((socket) => {
      const wire = new Tap(socket);
      const L = randomBytes(32);
      socket.write(encodeEventRequest(EventKind.CHALLENGE, 0, { v: 1, realm: 'join', nonce: L, mechanisms: [AUTH_MECHANISM] }, false));
      void wire.next().then((auth) => {
        seen.resolve(auth);
        const body = decodeBody(auth) as { nonce: Uint8Array; proof: Uint8Array };
        socket.write(encodeEventResponse(EventKind.AUTH, requestIdOf(auth), { proof: answer(body, L) }));
      }, () => undefined);
    });
    return { port, authSeen: seen.promise };
  }

  it('a listener whose returned proof is wrong', async () => {
    const fake = await fakeListener(() => randomBytes(32));
    const d = await dialer(fake.port, SECRET);
    const err = await authErrorOf(d.auth);
    expect(err.code).toBe('SB_ERR_AUTH_FAILED');
    expect(err.message).toContain('could not prove the join secret');
    expect((await withTimeout(d.closed, WAIT, 'the dialer to close')).reason).toBe('auth');
    // It did send a proper AUTH first.
    const auth = await fake.authSeen;
    expect(eventKindOf(auth)).toBe(EventKind.AUTH);
    expect(isRequest(auth) && isTwoWay(auth)).toBe(true);
  });

  it("a listener that reflects the dialer's own proof back", async () => {
    const fake = await fakeListener((auth) => auth.proof);
    const d = await dialer(fake.port, SECRET);
    expect((await authErrorOf(d.auth)).code).toBe('SB_ERR_AUTH_FAILED');
  });

  it('a listener that proves a different secret', async () => {
    const fake = await fakeListener((auth, L) => proofOf(OTHER, 'join', 'listener', L, auth.nonce));
    const d = await dialer(fake.port, SECRET);
    expect((await authErrorOf(d.auth)).code).toBe('SB_ERR_AUTH_FAILED');
  });

  it('the same fake listener with the right proof is accepted (the fake is sound)', async () => {
    const fake = await fakeListener((auth, L) => proofOf(SECRET, 'join', 'listener', L, auth.nonce));
    const d = await dialer(fake.port, SECRET);
    await withTimeout(d.auth, WAIT, 'the dialer to authenticate');
    expect(d.conn.closed).toBe(false);
  });
});
