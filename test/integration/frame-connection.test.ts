import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  EventKind,
  FrameConnection,
  FrameParser,
  Status,
  decodeBody,
  encodeEventRequest,
  encodeRequest,
  encodeResponse,
  eventKindOf,
  requestIdOf,
  statusOf,
  encodeEventResponse,
  isEvent,
  isRequest,
  type CloseReason,
  type Timers,
} from '../../src/protocol/index.js';

const cleanup: (() => void)[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const c of cleanup.splice(0)) c();
});

/** A server whose one accepted socket becomes a FrameConnection built by `make`, and a raw client socket. */
async function pair(make: (s: Socket) => FrameConnection): Promise<{ server: FrameConnection; raw: Socket; frames: Buffer[] }> {
  let resolveConn: (c: FrameConnection) => void = () => undefined;
  const accepted = new Promise<FrameConnection>((r) => (resolveConn = r));
  const srv: Server = createServer((s) => resolveConn(make(s)));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  const raw = connect({ host: '127.0.0.1', port });
  const frames: Buffer[] = [];
  const parser = new FrameParser({ onFrame: (f) => frames.push(Buffer.from(f)), onError: () => undefined });
  raw.on('data', (d: Buffer) => parser.push(d));
  raw.on('error', () => undefined);
  const server = await accepted;
  cleanup.push(() => {
    raw.destroy();
    server.destroy();
    srv.close();
  });
  return { server, raw, frames };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setImmediate(r));
  }
}

describe('FrameConnection', () => {
  it('does not call a peer dead while it is this side that stopped reading', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    let closed: CloseReason | undefined;
    const { server } = await pair((s) => new FrameConnection(s, { heartbeatMs: 100, onFrame: () => undefined, onClose: (r) => (closed = r) }));
    server.pauseReading();
    await vi.advanceTimersByTimeAsync(1000); // ten silent periods, all while paused
    expect(closed).toBeUndefined();
    server.resumeReading();
    await vi.advanceTimersByTimeAsync(350); // the raw peer answers no ping: dead after three periods
    expect(closed).toBe('heartbeat');
  });

  it('still names its peer after the socket is destroyed (close logs of write-stall and read-timeout)', async () => {
    let remoteAtClose = '';
    const { server, raw } = await pair((s) => new FrameConnection(s, { onFrame: () => undefined, onClose: () => (remoteAtClose = server.remote) }));
    const expected = `127.0.0.1:${raw.localPort}`;
    server.destroy('write-stall', new Error('stalled'));
    await until(() => remoteAtClose !== '');
    expect(remoteAtClose).toBe(expected);
  });

  it('a dialled connection learns its peer once connected, and says unknown if it never did', async () => {
    const srv: Server = createServer(() => undefined);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    cleanup.push(() => srv.close());
    const port = (srv.address() as AddressInfo).port;
    const dialled = new FrameConnection(connect({ host: '127.0.0.1', port }), { onFrame: () => undefined });
    cleanup.push(() => dialled.destroy());
    await once(dialled.socket, 'connect');
    dialled.destroy('heartbeat', new Error('gone'));
    expect(dialled.remote).toBe(`127.0.0.1:${port}`);
    const never = new FrameConnection(connect({ host: '127.0.0.1', port: 1 }).on('error', () => undefined), { onFrame: () => undefined });
    never.destroy('heartbeat', new Error('gone'));
    expect(never.remote).toBe('unknown');
  });

  it('answers a two-way event it does not take with BAD_REQUEST, so the sender is not left waiting', async () => {
    const { raw, frames } = await pair((s) => new FrameConnection(s, { heartbeatMs: 0, onFrame: () => undefined }));
    raw.write(encodeEventRequest(EventKind.DESCRIBE, 42, undefined, true));
    await until(() => frames.length > 0);
    expect(eventKindOf(frames[0])).toBe(EventKind.DESCRIBE);
    expect(requestIdOf(frames[0])).toBe(42);
    expect(statusOf(frames[0])).toBe(Status.BAD_REQUEST);
    expect(decodeBody(frames[0])).toMatchObject({ code: 'SB_ERR_BAD_REQUEST' });
  });

  it('on a frame error still sends the answers it had queued, then the id-0 error, then closes', async () => {
    const { raw, frames } = await pair(
      (s) =>
        new FrameConnection(s, {
          heartbeatMs: 0,
          onFrame: (f, c) => c.send(encodeResponse(requestIdOf(f), Status.OK, 'pong')),
        }),
    );
    const closedRaw = new Promise<void>((r) => raw.once('close', () => r()));
    raw.write(Buffer.concat([encodeRequest(5, 1, 'ping'), Buffer.from('garbage that is no frame at all')]));
    await closedRaw;
    expect(frames.map(requestIdOf)).toEqual([5, 0]);
    expect(decodeBody(frames[0])).toBe('pong');
    expect(decodeBody(frames[1])).toMatchObject({ code: 'SB_ERR_BAD_MAGIC' });
  });

  it('writes once per tick by default; early once earlyFlushBytes are queued, then at 64 KiB', async () => {
    const { server: lazy } = await pair((s) => new FrameConnection(s, { heartbeatMs: 0, onFrame: () => undefined }));
    const { server: eager } = await pair((s) => new FrameConnection(s, { heartbeatMs: 0, earlyFlushBytes: 100, onFrame: () => undefined }));
    const counts = new Map<FrameConnection, number>();
    for (const c of [lazy, eager]) {
      const write = c.socket.write.bind(c.socket);
      const uncork = c.socket.uncork.bind(c.socket);
      const count = (): void => void counts.set(c, (counts.get(c) ?? 0) + 1);
      counts.set(c, 0);
      // A write is one hand-off to the socket: a plain write, or the pieces of a corked (gathered) one.
      c.socket.write = ((data: Buffer) => {
        if (c.socket.writableCorked === 0) count();
        return write(data);
      }) as typeof c.socket.write;
      c.socket.uncork = () => {
        count();
        uncork();
      };
      for (let i = 1; i <= 20; i++) c.send(encodeResponse(i, Status.OK, 'x'.repeat(5000))); // 5,027 bytes each
    }
    expect(counts.get(lazy)).toBe(0); // nothing before the tick ends
    // Over 100 bytes from the 1st frame, but a first piece holds 8 frames: it leaves at the 8th. The
    // next waits for 64 KiB, which the 12 frames left (60,324 bytes) do not reach.
    expect(counts.get(eager)).toBe(1);
    await new Promise((r) => process.nextTick(r));
    expect(counts.get(lazy)).toBe(1);
    expect(counts.get(eager)).toBe(2); // the rest at the end of the tick
    // A new tick starts with a small piece again: 8 frames of 55 bytes.
    for (let i = 1; i <= 7; i++) eager.send(encodeResponse(i, Status.OK, 'x'.repeat(30)));
    expect(counts.get(eager)).toBe(2);
    eager.send(encodeResponse(8, Status.OK, 'x'.repeat(30)));
    expect(counts.get(eager)).toBe(3);
  });
});

/** Two connected sockets on 127.0.0.1: [ours, peer]. */
async function socketPair(): Promise<[Socket, Socket]> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const peer = connect({ host: '127.0.0.1', port: (srv.address() as AddressInfo).port });
  const [ours] = (await once(srv, 'connection')) as [Socket];
  await once(peer, 'connect');
  srv.close();
  for (const s of [ours, peer]) s.on('error', () => undefined);
  cleanup.push(() => {
    ours.destroy();
    peer.destroy();
  });
  return [ours, peer];
}

/** Timers whose timeouts fire only when the test says so: a barrier's own timeout cannot decide a test by accident. */
function manualTimers(): Timers & { fireTimeouts(): void; pendingTimeouts(): number } {
  const pending = new Map<number, () => void>();
  let next = 1;
  return {
    now: () => Date.now(),
    setInterval: () => 0,
    clearInterval: () => undefined,
    setTimeout: (fn) => {
      pending.set(next, fn);
      return next++;
    },
    clearTimeout: (h) => void pending.delete(h as number),
    fireTimeouts() {
      for (const [id, fn] of [...pending]) {
        pending.delete(id);
        fn();
      }
    },
    pendingTimeouts: () => pending.size,
  };
}

/** The barrier's state without waiting: 'pending' until it settles. */
function track(p: Promise<boolean>): { state: () => boolean | 'pending' } {
  let state: boolean | 'pending' = 'pending';
  void p.then((v) => (state = v));
  return { state: () => state };
}

/** A raw peer that parses what it reads; answers nothing by itself. */
function rawPeer(peer: Socket): Buffer[] {
  const got: Buffer[] = [];
  const parser = new FrameParser({ onFrame: (f) => got.push(Buffer.from(f)), onError: () => undefined });
  peer.on('data', (d: Buffer) => parser.push(d));
  return got;
}

const pings = (frames: Buffer[]): Buffer[] => frames.filter((f) => isEvent(f) && isRequest(f) && eventKindOf(f) === EventKind.HEARTBEAT);

describe('FrameConnection.barrier', () => {
  it('resolves true when the peer answers its ping, after every frame the peer wrote before it', async () => {
    const [ours, theirs] = await socketPair();
    const timers = manualTimers();
    const seen: number[] = [];
    const conn = new FrameConnection(ours, { heartbeatMs: 0, timers, onFrame: (f) => seen.push(requestIdOf(f)) });
    const peer = new FrameConnection(theirs, { heartbeatMs: 0, onFrame: () => undefined }); // answers pings by itself
    cleanup.push(() => peer.destroy());
    for (let id = 1; id <= 3; id++) peer.send(encodeResponse(id, Status.OK, 'x'.repeat(1000)));
    const answered = await barrierOutcome(conn.barrier(60_000));
    expect(answered).toBe(true);
    expect(seen).toEqual([1, 2, 3]); // TCP keeps order: the peer's earlier frames came first
    expect(timers.pendingTimeouts()).toBe(0); // its timeout was cleared
    expect(conn.closed).toBe(false);
  });

  it('resolves only on a pong with its own request id: a blind pong or another id leaves it waiting', async () => {
    const [ours, theirs] = await socketPair();
    const got = rawPeer(theirs);
    const seen: number[] = [];
    const conn = new FrameConnection(ours, { heartbeatMs: 0, timers: manualTimers(), onFrame: (f) => seen.push(requestIdOf(f)) });
    const first = track(conn.barrier(60_000));
    const second = track(conn.barrier(60_000));
    await until(() => pings(got).length === 2);
    const [id1, id2] = pings(got).map(requestIdOf);
    expect(id1).not.toBe(0);
    expect(id2).not.toBe(id1);
    // A blind pong (id 0), a pong for an id never asked, then a frame that shows both were read.
    theirs.write(Buffer.concat([encodeEventResponse(EventKind.HEARTBEAT, 0, undefined), encodeEventResponse(EventKind.HEARTBEAT, id2 + 100, undefined), encodeResponse(9, Status.OK, 'marker')]));
    await until(() => seen.includes(9));
    expect([first.state(), second.state()]).toEqual(['pending', 'pending']);
    theirs.write(encodeEventResponse(EventKind.HEARTBEAT, id2, undefined));
    await until(() => second.state() !== 'pending');
    expect([first.state(), second.state()]).toEqual(['pending', true]);
    theirs.write(encodeEventResponse(EventKind.HEARTBEAT, id1, undefined));
    await until(() => first.state() !== 'pending');
    expect(first.state()).toBe(true);
  });

  it('resolves false when the peer closes the connection before the pong, without waiting for its timeout', async () => {
    const [ours, theirs] = await socketPair();
    const got = rawPeer(theirs);
    const timers = manualTimers();
    const conn = new FrameConnection(ours, { heartbeatMs: 0, timers });
    const b = track(conn.barrier(60_000));
    await until(() => pings(got).length === 1); // the ping went out; no pong will come
    expect(b.state()).toBe('pending');
    expect(timers.pendingTimeouts()).toBe(1); // its timeout, which only the test can fire
    theirs.destroy();
    await until(() => b.state() !== 'pending');
    expect(b.state()).toBe(false);
    expect(conn.closed).toBe(true);
    expect(timers.pendingTimeouts()).toBe(0); // cleared, never fired: the close decided it
  });

  it('resolves false when this side closes first, and at once on a connection already closed', async () => {
    const [ours, theirs] = await socketPair();
    rawPeer(theirs);
    const conn = new FrameConnection(ours, { heartbeatMs: 0, timers: manualTimers() });
    const b = track(conn.barrier(60_000));
    conn.destroy();
    await until(() => b.state() !== 'pending');
    expect(b.state()).toBe(false);
    expect(await barrierOutcome(conn.barrier(60_000))).toBe(false);
  });

  it('resolves false when its timeout passes first; a late pong changes nothing', async () => {
    const [ours, theirs] = await socketPair();
    const got = rawPeer(theirs);
    const timers = manualTimers();
    const seen: number[] = [];
    const conn = new FrameConnection(ours, { heartbeatMs: 0, timers, onFrame: (f) => seen.push(requestIdOf(f)) });
    const b = track(conn.barrier(500));
    await until(() => pings(got).length === 1);
    timers.fireTimeouts();
    await until(() => b.state() !== 'pending');
    expect(b.state()).toBe(false);
    theirs.write(Buffer.concat([encodeEventResponse(EventKind.HEARTBEAT, requestIdOf(pings(got)[0]), undefined), encodeResponse(4, Status.OK, 'after')]));
    await until(() => seen.includes(4));
    expect(b.state()).toBe(false);
    expect(conn.closed).toBe(false);
  });
});

/** Awaits a barrier, failing the test (rather than hanging it) if it has not settled within 2 s of real time. */
async function barrierOutcome(p: Promise<boolean>): Promise<boolean> {
  const t = track(p);
  await until(() => t.state() !== 'pending');
  return t.state() as boolean;
}

describe('FrameConnection.forward', () => {
  /** Two frames in one "read chunk", as the AS would forward them. */
  const chunkOf = (a: number, b: number): Buffer => Buffer.concat([encodeResponse(a, Status.OK, 'one'), encodeResponse(b, Status.OK, 'two')]);

  it('sends frames by reference while the peer keeps up', async () => {
    const { server, frames } = await pair((s) => new FrameConnection(s, { heartbeatMs: 0, onFrame: () => undefined }));
    const chunk = chunkOf(1, 2);
    const half = chunk.length / 2;
    server.forward(chunk, 0, half);
    server.forward(chunk, half, half);
    await until(() => frames.length === 2);
    expect(frames.map(requestIdOf)).toEqual([1, 2]);
  });

  it('copies once the socket holds unsent bytes: a slow peer must not keep whole read chunks alive', async () => {
    const { server, raw, frames } = await pair((s) => new FrameConnection(s, { heartbeatMs: 0, onFrame: () => undefined }));
    raw.pause(); // the peer stops reading: the kernel's buffers fill, then the socket's own
    const filler = encodeResponse(9, Status.OK, 'x'.repeat(60_000));
    for (let i = 0; i < 10_000 && server.socket.writableLength === 0; i++) {
      server.send(filler);
      server.flush();
    }
    expect(server.socket.writableLength).toBeGreaterThan(0);
    const chunk = chunkOf(1, 2);
    const half = chunk.length / 2;
    server.forward(chunk, 0, half);
    server.forward(chunk, half, half);
    server.flush();
    // The chunk is rewritten afterwards (as a read buffer might be): what the peer gets must not change.
    chunk.writeUInt32BE(77, 8);
    chunk.writeUInt32BE(78, half + 8);
    raw.resume();
    await until(() => frames.length > 0 && requestIdOf(frames[frames.length - 1]) !== 9, 10_000);
    expect(frames.filter((f) => requestIdOf(f) !== 9).map(requestIdOf)).toEqual([1, 2]);
  });

  it('a frame that fills its buffer (assembled across reads) is not copied even then: it keeps nothing else alive', async () => {
    const { server, raw, frames } = await pair((s) => new FrameConnection(s, { heartbeatMs: 0, onFrame: () => undefined }));
    raw.pause();
    const filler = encodeResponse(9, Status.OK, 'x'.repeat(60_000));
    for (let i = 0; i < 10_000 && server.socket.writableLength === 0; i++) {
      server.send(filler);
      server.flush();
    }
    expect(server.socket.writableLength).toBeGreaterThan(0);
    const own = encodeResponse(1, Status.OK, 'one');
    server.forward(own, 0, own.length);
    server.flush();
    // Rewritten after the forward: the peer sees the new id only if the frame went by reference.
    own.writeUInt32BE(5, 8);
    raw.resume();
    await until(() => frames.length > 0 && requestIdOf(frames[frames.length - 1]) !== 9, 10_000);
    expect(frames.filter((f) => requestIdOf(f) !== 9).map(requestIdOf)).toEqual([5]);
  });
});

describe('FrameConnection: gathered writes', () => {
  it('big frames queued in one tick leave in one writev of the pieces, not a joined copy, and arrive whole and in order', async () => {
    const { server, frames } = await pair((s) => new FrameConnection(s, { heartbeatMs: 0, onFrame: () => undefined }));
    const socket = server.socket as unknown as { _writev: (...args: unknown[]) => void; write: (...args: unknown[]) => boolean };
    const writev = vi.spyOn(socket, '_writev');
    const write = vi.spyOn(socket, 'write');
    const a = encodeResponse(1, Status.OK, 'a'.repeat(40_000));
    const b = encodeResponse(2, Status.OK, 'b'.repeat(40_000));
    server.send(a);
    server.send(b);
    await until(() => frames.length === 2);
    expect(frames.map(requestIdOf)).toEqual([1, 2]);
    expect(decodeBody(frames[1])).toBe('b'.repeat(40_000));
    expect(writev).toHaveBeenCalledTimes(1);
    // Node turns the entries into bare buffers in place once it has written them.
    expect((writev.mock.calls[0][0] as (Buffer | { chunk: Buffer })[]).map((c) => (Buffer.isBuffer(c) ? c : c.chunk))).toEqual([a, b]);
    expect(write.mock.calls.map((c) => c[0])).toEqual([a, b]); // each piece as it is, never joined
  });
});
