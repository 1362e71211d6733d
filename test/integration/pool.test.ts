import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApplicationServer, EventKind, encodeRequest, eventKindOf, isEvent } from '../../src/index.js';
import { handMadeFs } from '../fixtures/hand-made-fs.js';

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
  const fs = await handMadeFs({ name: 'confused', poolType: 0, services: [{ key: 1, idempotent: false }] }, (f, s, connection) => {
    if (connection === 0 && isEvent(f) && eventKindOf(f) === EventKind.DESCRIBE) setImmediate(() => s.write(encodeRequest(99, 1, 'not yours to send')));
  });
  stops.push(() => fs.close());
  return fs;
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
