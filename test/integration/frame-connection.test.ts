import { createServer, connect, type Server, type Socket } from 'node:net';
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
  type CloseReason,
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

  it('writes once per tick by default; early once earlyFlushBytes are queued, then at 8 times that', async () => {
    const { server: lazy } = await pair((s) => new FrameConnection(s, { heartbeatMs: 0, onFrame: () => undefined }));
    const { server: eager } = await pair((s) => new FrameConnection(s, { heartbeatMs: 0, earlyFlushBytes: 100, onFrame: () => undefined }));
    const counts = new Map<FrameConnection, number>();
    for (const c of [lazy, eager]) {
      const write = c.socket.write.bind(c.socket);
      counts.set(c, 0);
      c.socket.write = ((data: Buffer) => {
        counts.set(c, (counts.get(c) ?? 0) + 1);
        return write(data);
      }) as typeof c.socket.write;
      for (let i = 1; i <= 20; i++) c.send(encodeResponse(i, Status.OK, 'x'.repeat(30))); // 56 bytes each
    }
    expect(counts.get(lazy)).toBe(0); // nothing before the tick ends
    // The 2nd frame passes 100 bytes: a first, small piece; the next piece waits for 800 bytes (the 16th).
    expect(counts.get(eager)).toBe(2);
    await new Promise((r) => process.nextTick(r));
    expect(counts.get(lazy)).toBe(1);
    expect(counts.get(eager)).toBe(3); // the rest at the end of the tick
    // A new tick starts with a small piece again.
    for (let i = 1; i <= 2; i++) eager.send(encodeResponse(i, Status.OK, 'x'.repeat(30)));
    expect(counts.get(eager)).toBe(4);
  });
});
