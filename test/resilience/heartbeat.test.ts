import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  EventKind,
  FLAG_EVENT,
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  FrameConnection,
  FrameParser,
  encodeEventRequest,
  encodeRequest,
  eventKindOf,
  flagsOf,
  isRequest,
  requestIdOf,
  type CloseReason,
} from '../../src/index.js';

// FrameConnection's heartbeat rules over a real socket pair, with the clock faked: the timers are
// fake, the bytes are real, so every step advances the clock and then lets real I/O settle.
const P = 100;

/** Lets real I/O happen (setImmediate and performance are not faked) until `cond` holds; bounded by real time. */
async function settleIo(cond: () => boolean = () => false, maxMs = 200): Promise<void> {
  const until = performance.now() + maxMs;
  do {
    await new Promise((r) => setImmediate(r));
  } while (!cond() && performance.now() < until);
}

interface Subject {
  conn: FrameConnection;
  frames: Buffer[];
  events: Buffer[];
  closes: CloseReason[];
}

let sockets: Socket[] = [];
let subjects: FrameConnection[] = [];

/** Two connected sockets: [local, peer]. Made before the clock is faked. */
async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const peer = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
  const [local] = (await once(server, 'connection')) as [Socket];
  await once(peer, 'connect');
  server.close();
  for (const s of [local, peer]) s.on('error', () => undefined);
  sockets.push(local, peer);
  return [local, peer];
}

function subject(socket: Socket, opts: { heartbeatMs?: number; readTimeoutMs?: number } = {}): Subject {
  const s: Subject = { frames: [], events: [], closes: [], conn: undefined as unknown as FrameConnection };
  s.conn = new FrameConnection(socket, {
    heartbeatMs: opts.heartbeatMs ?? P,
    readTimeoutMs: opts.readTimeoutMs,
    onFrame: (f) => s.frames.push(Buffer.from(f)),
    onEvent: (f) => s.events.push(Buffer.from(f)),
    onClose: (reason) => s.closes.push(reason),
  });
  subjects.push(s.conn);
  return s;
}

/** Collects every frame the raw peer reads. */
function collect(peer: Socket): Buffer[] {
  const got: Buffer[] = [];
  const parser = new FrameParser({ onFrame: (f) => got.push(Buffer.from(f)), onError: () => undefined });
  peer.on('data', (c: Buffer) => parser.push(c));
  return got;
}

beforeEach(() => {
  sockets = [];
  subjects = [];
});

afterEach(() => {
  for (const c of subjects) c.destroy();
  for (const s of sockets) s.destroy();
  vi.useRealTimers();
});

function fakeClock(): void {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'Date'] });
}

describe('FrameConnection heartbeats (fake clock, real sockets)', () => {
  it('sends a two-way HEARTBEAT event after one idle period, not before', async () => {
    const [local, peer] = await socketPair();
    const got = collect(peer);
    fakeClock();
    subject(local);
    await vi.advanceTimersByTimeAsync(P - 1);
    await settleIo();
    expect(local.bytesWritten).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    await settleIo(() => got.length > 0);
    expect(got).toHaveLength(1);
    const ping = got[0];
    expect(flagsOf(ping) & (FLAG_EVENT | FLAG_REQUEST | FLAG_TWO_WAY)).toBe(FLAG_EVENT | FLAG_REQUEST | FLAG_TWO_WAY);
    expect(eventKindOf(ping)).toBe(EventKind.HEARTBEAT);
  });

  it('answers a ping with a pong carrying the same request id, and hands neither to onFrame or onEvent', async () => {
    const [local, peer] = await socketPair();
    const got = collect(peer);
    fakeClock();
    const s = subject(local);
    peer.write(encodeEventRequest(EventKind.HEARTBEAT, 4242, undefined, true));
    await settleIo(() => got.length > 0);
    expect(got).toHaveLength(1);
    const pong = got[0];
    expect(isRequest(pong)).toBe(false);
    expect(flagsOf(pong) & FLAG_EVENT).toBe(FLAG_EVENT);
    expect(eventKindOf(pong)).toBe(EventKind.HEARTBEAT);
    expect(requestIdOf(pong)).toBe(4242);
    expect(s.frames).toHaveLength(0);
    expect(s.events).toHaveLength(0);
    // Real traffic, by contrast, does reach onFrame.
    peer.write(encodeRequest(7, 1, { hi: 1 }));
    await settleIo(() => s.frames.length > 0);
    expect(s.frames.map(requestIdOf)).toEqual([7]);
  });

  it('declares a peer that reads and sends nothing dead after three periods, not at two', async () => {
    const [local, peer] = await socketPair();
    peer.pause();
    fakeClock();
    const s = subject(local);
    await vi.advanceTimersByTimeAsync(2 * P);
    await settleIo();
    expect(s.conn.closed).toBe(false);
    expect(s.closes).toEqual([]);
    await vi.advanceTimersByTimeAsync(P);
    expect(s.closes).toEqual(['heartbeat']);
    expect(s.conn.closed).toBe(true);
  });

  it('keeps a peer that answers pings alive for ten periods; heartbeats never count as traffic', async () => {
    const [local, peer] = await socketPair();
    fakeClock();
    const s = subject(local);
    const answerer = new FrameConnection(peer, { heartbeatMs: 0, onFrame: () => undefined }); // answers pings, never sends its own
    subjects.push(answerer);
    const quiet = (): boolean => local.bytesWritten === peer.bytesRead && peer.bytesWritten === local.bytesRead;
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(P);
      await settleIo(quiet, 500);
      expect(s.conn.closed, `closed after period ${i + 1}`).toBe(false);
    }
    // Heartbeat frames have empty bodies (24 bytes): the subject pinged every other period at least.
    expect(peer.bytesRead / 24).toBeGreaterThanOrEqual(5);
    expect(local.bytesRead).toBe(peer.bytesRead); // one pong per ping
    expect(s.frames).toHaveLength(0);
    expect(s.events).toHaveLength(0);
    expect(s.closes).toEqual([]);
  });

  it('closes a connection that sent half a header and stalled, with reason read-timeout', async () => {
    const [local, peer] = await socketPair();
    fakeClock();
    const s = subject(local, { readTimeoutMs: 150 });
    peer.write(encodeRequest(1, 1, { x: 1 }).subarray(0, 10));
    await settleIo(() => local.bytesRead === 10);
    await vi.advanceTimersByTimeAsync(100); // begun 100 ms ago: still within 150 ms
    expect(s.conn.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(100); // checked every readTimeoutMs / 4, so closed by 150 + 37 ms
    expect(s.closes).toEqual(['read-timeout']);
    expect(s.frames).toHaveLength(0);
  });

  it('closes a stalled half frame after readTimeoutMs even when heartbeats are off', async () => {
    const [local, peer] = await socketPair();
    fakeClock();
    const s = subject(local, { heartbeatMs: 0, readTimeoutMs: 150 });
    peer.write(encodeRequest(1, 1, { x: 1 }).subarray(0, 10));
    await settleIo(() => local.bytesRead === 10);
    await vi.advanceTimersByTimeAsync(1000);
    expect(s.closes).toEqual(['read-timeout']);
  });

  it('closes a frame that is still unfinished after readTimeoutMs even if bytes trickle in', async () => {
    const [local, peer] = await socketPair();
    fakeClock();
    const s = subject(local, { readTimeoutMs: 3 * P });
    const frame = encodeRequest(1, 1, { pad: 'x'.repeat(200) });
    for (let i = 0; i < 20 && !s.conn.closed; i++) {
      peer.write(frame.subarray(i, i + 1));
      await settleIo(() => local.bytesRead === i + 1);
      await vi.advanceTimersByTimeAsync(P);
    }
    // 20 periods (2000 ms) into a frame that is still incomplete: far past the 300 ms read timeout.
    expect(s.closes).toEqual(['read-timeout']);
  });
});
