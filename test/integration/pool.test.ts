import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApplicationServer, EventKind, FrameParser, encodeEventResponse, encodeRequest, eventKindOf, isEvent, isRequest, requestIdOf } from '../../src/index.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A hand-made FS that answers DESCRIBE, then on its first connection sends a request (which no FS may do). */
async function confusedFs(): Promise<{ port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((s) => {
    sockets.push(s);
    const first = sockets.length === 1;
    s.on('error', () => undefined);
    const parser = new FrameParser({
      onFrame: (f) => {
        if (isEvent(f) && isRequest(f) && eventKindOf(f) === EventKind.DESCRIBE) {
          s.write(encodeEventResponse(EventKind.DESCRIBE, requestIdOf(f), { name: 'confused', poolType: 0, services: [{ key: 1, idempotent: false }] }));
          if (first) setImmediate(() => s.write(encodeRequest(99, 1, 'not yours to send')));
        }
      },
      onError: () => s.destroy(),
    });
    s.on('data', (d: Buffer) => parser.push(d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  stops.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as { port: number }).port, sockets };
}

describe('pool', () => {
  it('marks a connection damaged when the FS sends a request on it, closes it and dials a fresh one', async () => {
    const fs = await confusedFs();
    const as = new ApplicationServer({ heartbeatMs: 0 });
    await as.start();
    stops.push(() => as.stop());
    as.addFunctionServer({ host: '127.0.0.1', port: fs.port });
    await until(() => fs.sockets.length >= 2, 'the AS to dial a second connection');
    await until(() => fs.sockets[0].destroyed || fs.sockets[0].readableEnded, 'the first connection to be closed');
    await until(() => as.listFunctionServers()[0]?.state === 'available', 'the FS to be available on the fresh connection');
    expect(fs.sockets[1].destroyed).toBe(false);
  });
});
