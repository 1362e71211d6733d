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
    // Meanwhile another client is served normally. Its round trips are also the clock: the count
    // of the flood's requests served is read after each one, until ten in a row leave it unchanged
    // (the AS went around its event loop that often without reading more of the flood).
    const other = await connectClient(c, port);
    let otherCalls = 0;
    const floodServed = (): number => servedBy(as, 'fs-bp') - otherCalls;
    let stuckAt = floodServed();
    for (let same = 0; same < 10; ) {
      if (otherCalls > 5000) throw new Error(`the flood's served count is still moving (at ${stuckAt})`);
      expect(await other.call(ECHO, otherCalls)).toBe(otherCalls);
      otherCalls++;
      const now = floodServed();
      same = now === stuckAt ? same + 1 : 0;
      stuckAt = now;
    }
    expect(written).toBe(N);
    expect(stuckAt).toBeGreaterThan(0);
    expect(stuckAt).toBeLessThan(N / 2);
    expect(flood.isClosed).toBe(false);

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
    expect(servedBy(as, 'fs-bp')).toBe(N + otherCalls); // the flood and the other client's calls
  });

  it('closes a client that has read nothing it was sent for three heartbeat periods; others are served', async () => {
    const { as, port, controlPort } = await startAs(c, { heartbeatMs: 200 });
    await startFs(c, 'fs-ws', controlPort, { heartbeatMs: 200, plugins: [EchoPlugin, BlobPlugin] });
    await waitForState(as, 'fs-ws', 'available');
    const flood = await RawPeer.connect(c, port);
    flood.socket.removeAllListeners('data');
    flood.socket.pause();
    // It never reads, but it is not silent: a blind pong every 100 ms, so the heartbeat rule
    // (three periods with nothing read) cannot be what closes it. Only write-stall can: the AS's
    // socket to it stays full and nothing of what the AS wrote leaves it.
    c.defer(flood.blindPongs(100));
    const frames: Buffer[] = [];
    // Enough answers to fill the loopback buffers on both sides, so the AS's writes really block.
    for (let i = 1; i <= 1000; i++) frames.push(encodeRequest(i, BLOB, { bytes: REPLY_BYTES }));
    flood.socket.write(Buffer.concat(frames));
    await waitFor(() => as.clientConnections === 1, 'the AS to accept the flood', 1000);
    // A paused socket does not see its own close, so watch the AS's side.
    await waitFor(() => as.clientConnections === 0, 'the AS to close the write-stalled client', 5000);
    const closed = as.closedConnections().client;
    expect(closed.get('write-stall')).toBe(1);
    expect(closed.get('heartbeat')).toBe(0);
    expect(closed.get('output-limit')).toBe(0); // 1000 answers of 16 KiB stay under the 64 MiB limit
    const other = await connectClient(c, port);
    for (let i = 0; i < 20; i++) expect(await other.call(ECHO, i)).toBe(i);
  });
});
