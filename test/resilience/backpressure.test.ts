import { describe, expect, it } from 'vitest';
import { EchoPlugin, ECHO } from '../../src/plugins/samples/echo-plugin.js';
import { FrameParser, Status, encodeRequest, isEvent, statusOf } from '../../src/index.js';
import { BLOB, BlobPlugin, RawPeer, connectClient, servedBy, startAs, startFs, useCleanup, waitFor, waitForState } from './helpers.js';

// What is observable from outside: how many requests the FS has served for a client that writes
// and never reads. Were the AS to keep reading that client, it would keep forwarding and the count
// would follow the number written; if it pauses reading once the client's socket is full, the
// count stops at whatever the kernel buffers plus the AS's own write buffer hold (16 KiB answers:
// a few hundred) and the rest of the requests wait in the client's kernel buffers.
const c = useCleanup();
const REPLY_BYTES = 16 * 1024;
const N = 4000;

/** Served count that has not moved for `quietMs`. */
async function plateau(read: () => number, quietMs: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let last = read();
  let since = performance.now();
  while (performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    const now = read();
    if (now !== last) {
      last = now;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) return now;
  }
  throw new Error(`served count still moving after ${timeoutMs} ms (at ${last})`);
}

describe('socket backpressure', () => {
  it('a client that never reads is paused, not buffered without limit; others are served; reading again releases it', async () => {
    // Heartbeats off on the AS: with them on, a client that reads nothing for three periods is
    // closed as write-stalled (the next test); here the subject is the pause itself.
    const { as, port, controlPort } = await startAs(c, { heartbeatMs: 0, maxInflightPerClient: 10_000 });
    await startFs(c, 'fs-bp', controlPort, { heartbeatMs: 200, plugins: [EchoPlugin, BlobPlugin] });
    await waitForState(as, 'fs-bp', 'available');

    const flood = await RawPeer.connect(c, port);
    flood.socket.removeAllListeners('data');
    flood.socket.pause(); // never reads (until the end of the test)
    let written = 0;
    for (let batch = 0; batch < 40; batch++) {
      const frames: Buffer[] = [];
      for (let j = 0; j < N / 40; j++) frames.push(encodeRequest(++written, BLOB, { bytes: REPLY_BYTES }));
      flood.socket.write(Buffer.concat(frames));
      await new Promise((r) => setTimeout(r, 10));
    }
    const stuckAt = await plateau(() => servedBy(as, 'fs-bp'), 400, 3000);
    expect(written).toBe(N);
    expect(stuckAt).toBeGreaterThan(0);
    expect(stuckAt).toBeLessThan(N / 2);
    expect(flood.isClosed).toBe(false);

    // Meanwhile another client is served normally.
    const other = await connectClient(c, port);
    for (let i = 0; i < 20; i++) expect(await other.call(ECHO, i)).toBe(i);

    // Once the flooding client reads, the AS resumes reading it and every request is answered.
    let answers = 0;
    let notOk = 0;
    const parser = new FrameParser({
      maxBodyBytes: 1 << 20,
      onFrame: (f) => {
        if (isEvent(f)) return; // the AS's heartbeat pings
        answers++;
        if (statusOf(f) !== Status.OK) notOk++;
      },
      onError: (e) => {
        throw e;
      },
    });
    flood.socket.on('data', (chunk: Buffer) => parser.push(chunk));
    flood.socket.resume();
    await waitFor(() => answers >= N, `all ${N} answers`, 4000);
    expect(notOk).toBe(0);
    expect(answers).toBe(N);
    expect(servedBy(as, 'fs-bp')).toBe(N + 20); // the flood and the other client's calls
  });

  it('closes a client that has read nothing it was sent for three heartbeat periods; others are served', async () => {
    const { as, port, controlPort } = await startAs(c, { heartbeatMs: 200 });
    await startFs(c, 'fs-ws', controlPort, { heartbeatMs: 200, plugins: [EchoPlugin, BlobPlugin] });
    await waitForState(as, 'fs-ws', 'available');
    const flood = await RawPeer.connect(c, port);
    flood.socket.removeAllListeners('data');
    flood.socket.pause();
    const frames: Buffer[] = [];
    // Enough answers to fill the loopback buffers on both sides, so the AS's writes really block.
    for (let i = 1; i <= 1000; i++) frames.push(encodeRequest(i, BLOB, { bytes: REPLY_BYTES }));
    flood.socket.write(Buffer.concat(frames));
    await waitFor(() => as.clientConnections === 1, 'the AS to accept the flood', 1000);
    // A paused socket does not see its own close, so watch the AS's side.
    await waitFor(() => as.clientConnections === 0, 'the AS to close the write-stalled client', 3000);
    const other = await connectClient(c, port);
    for (let i = 0; i < 20; i++) expect(await other.call(ECHO, i)).toBe(i);
  });
});
