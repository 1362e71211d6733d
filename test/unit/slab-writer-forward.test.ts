import { describe, expect, it } from 'vitest';
import { SlabWriter } from '../../src/protocol/slab-writer.js';

/** What the AS forwards: a read chunk holding several frames back to back (bytes stand for frames). */
const chunkOf = (...parts: [n: number, fill: number][]): Buffer => Buffer.concat(parts.map(([n, fill]) => Buffer.alloc(n, fill)));

const nextTick = (): Promise<void> => new Promise((r) => setImmediate(r));

function make() {
  const writes: Buffer[] = [];
  const w = new SlabWriter({
    write: (data) => {
      writes.push(data);
      return true;
    },
  });
  return { w, writes };
}

describe('SlabWriter.forward: frames queued by reference', () => {
  it('frames lying back to back in one chunk leave as one view of that chunk: no copy', async () => {
    const { w, writes } = make();
    const chunk = chunkOf([24, 1], [100, 2], [60, 3], [10, 4]);
    w.forward(chunk, 24, 100);
    w.forward(chunk, 124, 60);
    w.forward(chunk, 184, 10);
    expect(w.pendingBytes).toBe(170);
    await nextTick();
    expect(writes).toHaveLength(1);
    // The very bytes of the chunk, not a copy of them.
    expect(writes[0].buffer).toBe(chunk.buffer);
    expect(writes[0].byteOffset).toBe(chunk.byteOffset + 24);
    expect(writes[0].length).toBe(170);
    expect(w.pendingBytes).toBe(0);
  });

  it('keeps order when a copied frame comes between two forwarded ones that touch', async () => {
    const { w, writes } = make();
    const chunk = chunkOf([50, 1], [50, 2]);
    w.forward(chunk, 0, 50);
    w.send(Buffer.alloc(30, 9)); // an answer the AS makes itself (an error, say)
    w.forward(chunk, 50, 50); // adjacent to the first in the chunk, but must not jump the answer
    await nextTick();
    expect(Buffer.concat(writes)).toEqual(Buffer.concat([Buffer.alloc(50, 1), Buffer.alloc(30, 9), Buffer.alloc(50, 2)]));
  });

  it('keeps order across chunks, gaps within a chunk, and copied frames', async () => {
    const { w, writes } = make();
    const a = chunkOf([40, 1], [40, 2], [40, 3]);
    const b = chunkOf([20, 4]);
    w.send(Buffer.alloc(10, 8));
    w.forward(a, 0, 40);
    w.forward(a, 80, 40); // a gap: the frame at 40 went elsewhere
    w.forward(b, 0, 20);
    w.sendFrame(0, 0, 7, 1, 0, 0, Buffer.alloc(5, 6));
    w.forward(a, 40, 40);
    await nextTick();
    const out = Buffer.concat(writes);
    expect(out.subarray(0, 10)).toEqual(Buffer.alloc(10, 8));
    expect(out.subarray(10, 50)).toEqual(Buffer.alloc(40, 1));
    expect(out.subarray(50, 90)).toEqual(Buffer.alloc(40, 3));
    expect(out.subarray(90, 110)).toEqual(Buffer.alloc(20, 4));
    expect(out.readUInt32BE(110 + 8)).toBe(7); // the header written by sendFrame
    expect(out.subarray(110 + 24, 110 + 29)).toEqual(Buffer.alloc(5, 6));
    expect(out.subarray(139)).toEqual(Buffer.alloc(40, 2));
    expect(out.length).toBe(179);
  });

  it('a slab that fills up behind a forwarded run keeps the run first', async () => {
    const { w, writes } = make();
    const chunk = chunkOf([100, 1]);
    w.forward(chunk, 0, 100);
    // More than one 64 KiB slab of copied frames after it.
    for (let i = 0; i < 70; i++) w.send(Buffer.alloc(1000, 2));
    await nextTick();
    const out = Buffer.concat(writes);
    expect(out.length).toBe(100 + 70_000);
    expect(out.subarray(0, 100)).toEqual(Buffer.alloc(100, 1));
    expect(out.subarray(100).every((b) => b === 2)).toBe(true);
  });

  it('a flush mid-tick writes the run; what is forwarded after it starts a new one', () => {
    const { w, writes } = make();
    const chunk = chunkOf([30, 1], [30, 2]);
    w.forward(chunk, 0, 30);
    w.flush();
    w.forward(chunk, 30, 30);
    w.flush();
    expect(writes.map((b) => [b.byteOffset - chunk.byteOffset, b.length])).toEqual([
      [0, 30],
      [30, 30],
    ]);
  });

  it('close drops a forwarded run, and later forwards are ignored', async () => {
    const { w, writes } = make();
    const chunk = chunkOf([30, 1]);
    w.forward(chunk, 0, 30);
    w.close();
    w.forward(chunk, 0, 30);
    await nextTick();
    w.flush();
    expect(writes).toHaveLength(0);
  });
});
