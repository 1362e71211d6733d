import { describe, expect, it } from 'vitest';
import { decodeHeader, HEADER_SIZE } from '../../src/protocol/header.js';
import { SlabWriter } from '../../src/protocol/slab-writer.js';

const KiB = 1024;

/** A frame-sized buffer of `n` bytes, each byte `fill` (the writer does not parse what it sends). */
const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);

/** Byte equality without a slow element-by-element diff of large buffers. */
function expectBytes(got: Buffer, want: Buffer): void {
  expect(got.length).toBe(want.length);
  expect(got.equals(want), 'bytes differ').toBe(true);
}

/** Lets the writer's end-of-tick flush run. */
const nextTick = (): Promise<void> => new Promise((r) => setImmediate(r));

function make(opts: { earlyFlushBytes?: number; result?: boolean; perTurn?: boolean } = {}) {
  const writes: Buffer[] = [];
  const copies: Buffer[] = [];
  const w = new SlabWriter({
    write: (data) => {
      writes.push(data);
      copies.push(Buffer.from(data));
      return opts.result ?? true;
    },
    earlyFlushBytes: opts.earlyFlushBytes,
    perTurn: opts.perTurn,
  });
  return { w, writes, copies };
}

describe('SlabWriter: batching', () => {
  it('frames sent in one tick leave in one write at the end of the tick', async () => {
    const { w, copies } = make();
    w.send(bytes(10, 1));
    w.send(bytes(20, 2));
    w.send(bytes(30, 3));
    expect(copies).toHaveLength(0);
    await nextTick();
    expect(copies).toHaveLength(1);
    expectBytes(copies[0], Buffer.concat([bytes(10, 1), bytes(20, 2), bytes(30, 3)]));
  });

  it('each tick gets its own write', async () => {
    const { w, copies } = make();
    w.send(bytes(10, 1));
    await nextTick();
    w.send(bytes(10, 2));
    w.send(bytes(10, 3));
    await nextTick();
    expect(copies).toEqual([bytes(10, 1), Buffer.concat([bytes(10, 2), bytes(10, 3)])]);
  });

  it('keeps order across small frames, a big frame and more small ones, in one write', async () => {
    const { w, copies } = make();
    const big = bytes(20 * KiB, 0xbb);
    w.send(bytes(100, 1));
    w.sendFrom(Buffer.concat([bytes(5, 9), bytes(50, 2), bytes(5, 9)]), 5, 50);
    w.send(big);
    w.send(bytes(70, 3));
    w.send(bytes(80, 4));
    await nextTick();
    expect(copies).toHaveLength(1);
    expectBytes(copies[0], Buffer.concat([bytes(100, 1), bytes(50, 2), big, bytes(70, 3), bytes(80, 4)]));
  });

  it('keeps order when the frames of one tick overflow the 64 KiB slab', async () => {
    const { w, copies } = make();
    const frames = [1, 2, 3, 4, 5, 6].map((i) => bytes(16 * KiB, i)); // 16 KiB is still copied
    for (const f of frames) w.send(f);
    await nextTick();
    expect(copies).toHaveLength(1);
    expectBytes(copies[0], Buffer.concat(frames));
  });

  it('a big frame (> 16 KiB) is queued by reference', async () => {
    const { w, writes } = make();
    const big = bytes(16 * KiB + 1, 7);
    w.send(big);
    await nextTick();
    expect(writes).toHaveLength(1);
    expect(writes[0]).toBe(big);
  });

  it('a small frame is copied: the caller may reuse its buffer at once', async () => {
    const { w, copies } = make();
    const buf = bytes(100, 1);
    w.send(buf);
    buf.fill(0xee);
    w.sendFrom(buf, 10, 20);
    buf.fill(0xff);
    await nextTick();
    expectBytes(copies[0], Buffer.concat([bytes(100, 1), bytes(20, 0xee)]));
  });

  it('a big frame given with sendFrom is copied, not referenced', async () => {
    const { w, copies } = make();
    const buf = bytes(20 * KiB, 1);
    w.sendFrom(buf, 0, buf.length);
    buf.fill(2);
    await nextTick();
    expectBytes(copies[0], bytes(20 * KiB, 1));
  });

  it('a view handed to write is never written over by later frames', async () => {
    const { w, writes } = make();
    w.send(bytes(1000, 1));
    await nextTick();
    for (let i = 0; i < 200; i++) w.send(bytes(1000, 2)); // past the end of this slab and into the next
    await nextTick();
    expectBytes(writes[0], bytes(1000, 1));
  });

  it('sendFrame writes header and body in place', async () => {
    const { w, copies } = make();
    const body = Buffer.from([1, 2, 3]);
    w.sendFrame(0xc1, 0, 42, 101, 3, 250, body);
    await nextTick();
    expect(copies).toHaveLength(1);
    expect(decodeHeader(copies[0])).toEqual({ flags: 0xc1, status: 0, eventKind: 0, poolType: 3, requestId: 42, serviceKey: 101, budgetMs: 250, bodyLength: 3 });
    expect(copies[0].subarray(HEADER_SIZE)).toEqual(body);
  });
});

/** Runs each callback as its own macrotask of one loop turn, as reads from several sockets are. */
function inOneTurn(...sends: (() => void)[]): Promise<void> {
  for (const f of sends) setImmediate(f);
  return new Promise((r) => setImmediate(() => setImmediate(r)));
}

describe('SlabWriter: one write per loop turn (perTurn)', () => {
  it('frames sent from several callbacks of one turn leave in one write', async () => {
    const { w, copies } = make({ perTurn: true });
    await inOneTurn(
      () => w.send(bytes(10, 1)),
      () => w.send(bytes(20, 2)),
      () => w.send(bytes(30, 3)),
    );
    expect(copies).toHaveLength(1);
    expectBytes(copies[0], Buffer.concat([bytes(10, 1), bytes(20, 2), bytes(30, 3)]));
  });

  it('without perTurn, each callback is its own tick and its own write', async () => {
    const { w, copies } = make();
    await inOneTurn(
      () => w.send(bytes(10, 1)),
      () => w.send(bytes(20, 2)),
    );
    expect(copies.map((c) => c.length)).toEqual([10, 20]);
  });

  it('forwarded runs and slab frames keep their order across the callbacks of a turn', async () => {
    const { w, copies } = make({ perTurn: true });
    const chunk = Buffer.concat([bytes(8, 4), bytes(8, 5)]);
    await inOneTurn(
      () => w.forward(chunk, 0, 8),
      () => w.send(bytes(6, 6)),
      () => w.forward(chunk, 8, 8),
    );
    expect(copies).toHaveLength(1);
    expectBytes(copies[0], Buffer.concat([bytes(8, 4), bytes(6, 6), bytes(8, 5)]));
  });
});

describe('SlabWriter: early flush', () => {
  it('writes the first earlyFlushBytes of a tick at once, later pieces at 64 KiB', async () => {
    const { w, copies } = make({ earlyFlushBytes: 100 });
    const sizes = (): number[] => copies.map((c) => c.length);
    for (let i = 0; i < 7; i++) w.send(bytes(15, 1));
    expect(sizes()).toEqual([]);
    w.send(bytes(15, 3)); // 120 >= 100 in 8 frames: the first piece leaves now
    expect(sizes()).toEqual([120]);
    for (let i = 0; i < 63; i++) w.send(bytes(KiB, 4)); // 63 KiB < 64 KiB
    expect(sizes()).toEqual([120]);
    w.send(bytes(KiB, 5)); // 64 KiB: a later piece
    expect(sizes()).toEqual([120, 64 * KiB]);
    w.send(bytes(40, 6));
    await nextTick();
    expect(sizes()).toEqual([120, 64 * KiB, 40]);
    // A new tick: the first piece is small again.
    for (let i = 0; i < 8; i++) w.send(bytes(15, 7));
    expect(sizes()).toEqual([120, 64 * KiB, 40, 120]);
  });

  it('the first piece also waits for 8 frames, so large frames do not leave one or two at a time', async () => {
    const { w, copies } = make({ earlyFlushBytes: 100 });
    for (let i = 0; i < 7; i++) w.send(bytes(KiB, 1)); // 7 KiB, far over 100 bytes, but 7 frames
    expect(copies).toHaveLength(0);
    w.send(bytes(KiB, 2));
    expect(copies.map((c) => c.length)).toEqual([8 * KiB]);
    await nextTick();
  });

  it('the piece size can change once the peer is known (an FS learns a connection is an AS pool)', async () => {
    const { w, copies } = make({ earlyFlushBytes: 100 });
    w.earlyFlushBytes = 1000;
    for (let i = 0; i < 20; i++) w.send(bytes(40, 1)); // 800 < 1000: no piece yet
    expect(copies).toHaveLength(0);
    for (let i = 0; i < 5; i++) w.send(bytes(40, 2)); // 1000
    expect(copies.map((c) => c.length)).toEqual([1000]);
    await nextTick();
  });

  it('earlyFlushBytes 0 waits for the end of the tick', async () => {
    const { w, copies } = make({ earlyFlushBytes: 0 });
    for (let i = 0; i < 100; i++) w.send(bytes(500, 1));
    expect(copies).toHaveLength(0);
    await nextTick();
    expect(copies).toHaveLength(1);
  });
});

describe('SlabWriter: pendingBytes, flush, close', () => {
  it('pendingBytes counts queued bytes, slab and big frames alike', () => {
    const { w } = make();
    expect(w.pendingBytes).toBe(0);
    w.send(bytes(10, 1));
    w.send(bytes(20, 2));
    expect(w.pendingBytes).toBe(30);
    w.send(bytes(20 * KiB, 3));
    expect(w.pendingBytes).toBe(30 + 20 * KiB);
    w.send(bytes(5, 4));
    expect(w.pendingBytes).toBe(35 + 20 * KiB);
    w.flush();
    expect(w.pendingBytes).toBe(0);
  });

  it('flush() writes now and returns what write returned', () => {
    const full = make({ result: false });
    full.w.send(bytes(10, 1));
    expect(full.w.flush()).toBe(false);
    expect(full.copies).toEqual([bytes(10, 1)]);

    const ok = make({ result: true });
    ok.w.send(bytes(10, 1));
    ok.w.send(bytes(20 * KiB, 2));
    expect(ok.w.flush()).toBe(true);
    expect(ok.copies).toHaveLength(1);
  });

  it('flush() with nothing queued writes nothing', async () => {
    const { w, copies } = make({ result: false });
    expect(w.flush()).toBe(true);
    w.send(bytes(10, 1));
    w.flush();
    await nextTick(); // the end-of-tick flush finds nothing left
    expect(copies).toHaveLength(1);
  });

  it('close() drops everything queued and later sends are ignored', async () => {
    const { w, copies } = make();
    w.send(bytes(10, 1));
    w.send(bytes(20 * KiB, 2));
    w.close();
    expect(w.pendingBytes).toBe(0);
    w.send(bytes(10, 3));
    w.sendFrom(bytes(10, 4), 0, 10);
    w.sendFrame(0x01, 0, 1, 0, 0, 0, Buffer.alloc(1));
    expect(w.pendingBytes).toBe(0);
    expect(w.flush()).toBe(true);
    await nextTick();
    expect(copies).toHaveLength(0);
  });
});

describe('SlabWriter: gathered writes (writev)', () => {
  function gathering() {
    const writes: Buffer[] = [];
    const gathers: Buffer[][] = [];
    const w = new SlabWriter({
      write: (data) => {
        writes.push(data);
        return true;
      },
      writev: (pieces) => {
        gathers.push(pieces);
        return false;
      },
    });
    return { w, writes, gathers };
  }

  it('several pieces of 32 KiB or more leave in one gathered write, by reference and in order, with no join', async () => {
    const { w, writes, gathers } = gathering();
    const a = bytes(20 * KiB, 1);
    const b = bytes(20 * KiB, 2);
    w.send(a);
    w.send(bytes(100, 3)); // copied into the slab between the two big ones
    w.send(b);
    await nextTick();
    expect(writes).toHaveLength(0);
    expect(gathers).toHaveLength(1);
    const [pieces] = gathers;
    expect(pieces[0]).toBe(a);
    expectBytes(pieces[1], bytes(100, 3));
    expect(pieces[2]).toBe(b);
  });

  it('flush() returns what the gathered write returned', () => {
    const { w } = gathering();
    w.send(bytes(20 * KiB, 1));
    w.send(bytes(20 * KiB, 2));
    expect(w.flush()).toBe(false);
    expect(w.pendingBytes).toBe(0);
  });

  it('below 32 KiB the pieces are joined into one plain write: a gathered write costs more than a small copy', async () => {
    const { w, writes, gathers } = gathering();
    w.send(bytes(16 * KiB + 1, 1));
    w.send(bytes(100, 2));
    await nextTick();
    expect(gathers).toHaveLength(0);
    expect(writes).toHaveLength(1);
    expectBytes(writes[0], Buffer.concat([bytes(16 * KiB + 1, 1), bytes(100, 2)]));
  });

  it('without a writev the pieces are joined into one write', async () => {
    const { w, copies } = make();
    w.send(bytes(20 * KiB, 1));
    w.send(bytes(20 * KiB, 2));
    await nextTick();
    expect(copies).toHaveLength(1);
    expectBytes(copies[0], Buffer.concat([bytes(20 * KiB, 1), bytes(20 * KiB, 2)]));
  });
});
