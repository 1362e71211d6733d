import { describe, expect, it } from 'vitest';
import { encodeExtension } from '../../src/protocol/extension.js';
import { decodeHeader, HEADER_SIZE, OFFSET } from '../../src/protocol/header.js';
import { SlabWriter } from '../../src/protocol/slab-writer.js';

// Edges of the slab writer: frames at the 16 KiB boundary and beyond the 64 KiB slab, byte counts
// after partial flushes, and a closed writer.

const KiB = 1024;
const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);
const nextTick = (): Promise<void> => new Promise((r) => setImmediate(r));

function make() {
  const copies: Buffer[] = [];
  const w = new SlabWriter({
    write: (data) => {
      copies.push(Buffer.from(data));
      return true;
    },
  });
  const all = (): Buffer => Buffer.concat(copies);
  return { w, copies, all };
}

describe('SlabWriter: the 16 KiB boundary', () => {
  it('a frame of exactly 16 KiB is copied: the caller may reuse its buffer at once', async () => {
    const { w, all } = make();
    const f = bytes(16 * KiB, 1);
    w.send(f);
    f.fill(9);
    await nextTick();
    expect(all().equals(bytes(16 * KiB, 1))).toBe(true);
  });

  it('sendFrom of exactly 16 KiB and of more than a whole slab leave byte-identical', async () => {
    const { w, all } = make();
    const a = bytes(16 * KiB, 1);
    const b = bytes(100 * KiB, 2);
    const c = bytes(300, 3);
    w.sendFrom(a, 0, a.length);
    w.sendFrom(b, 0, b.length);
    w.sendFrom(c, 0, c.length);
    a.fill(0);
    b.fill(0);
    await nextTick();
    expect(all().equals(Buffer.concat([bytes(16 * KiB, 1), bytes(100 * KiB, 2), bytes(300, 3)]))).toBe(true);
  });

  it('sendFrame with a body larger than a slab writes the whole frame', async () => {
    const { w, copies } = make();
    const body = bytes(100 * KiB, 5);
    w.sendFrame(0xc1, 0, 7, 101, 2, 100, body);
    body.fill(0);
    await nextTick();
    const out = Buffer.concat(copies);
    expect(out.length).toBe(HEADER_SIZE + 100 * KiB);
    expect(decodeHeader(out).bodyLength).toBe(100 * KiB);
    expect(out.subarray(HEADER_SIZE).equals(bytes(100 * KiB, 5))).toBe(true);
  });

  it('sendFrame at exactly 16 KiB, and one byte more, with an extension block', async () => {
    const ext = encodeExtension({ routingKey: Buffer.from('rk') });
    for (const extra of [0, 1]) {
      const { w, copies } = make();
      const body = bytes(16 * KiB - HEADER_SIZE - ext.length + extra, 6);
      w.sendFrame(0xc1, 0, 7, 101, 2, 100, body, ext);
      w.send(bytes(10, 8));
      await nextTick();
      const out = Buffer.concat(copies);
      const n = 16 * KiB + extra;
      expect(out.length).toBe(n + 10);
      expect(out[OFFSET.version]).toBe(2);
      expect(decodeHeader(out).bodyLength).toBe(n - HEADER_SIZE);
      expect(out.subarray(HEADER_SIZE, HEADER_SIZE + ext.length).equals(ext)).toBe(true);
      expect(out.subarray(HEADER_SIZE + ext.length, n).equals(body)).toBe(true);
      expect(out.subarray(n).equals(bytes(10, 8))).toBe(true);
    }
  });
});

describe('SlabWriter: byte counts', () => {
  it('pendingBytes stays right when a big frame follows a partial flush', () => {
    const { w } = make();
    w.send(bytes(100, 1));
    w.flush();
    expect(w.pendingBytes).toBe(0);
    w.send(bytes(50, 2));
    expect(w.pendingBytes).toBe(50);
    w.send(bytes(20 * KiB, 3));
    expect(w.pendingBytes).toBe(50 + 20 * KiB);
    w.send(bytes(70, 4));
    expect(w.pendingBytes).toBe(120 + 20 * KiB);
  });

  it('pendingBytes stays right when the slab overflows after a partial flush', () => {
    const { w, copies } = make();
    w.send(bytes(1000, 1));
    w.flush();
    for (let i = 0; i < 70; i++) w.send(bytes(1000, 2));
    expect(w.pendingBytes).toBe(70_000);
    w.flush();
    expect(w.pendingBytes).toBe(0);
    expect(copies[1].equals(bytes(70_000, 2))).toBe(true);
  });
});

describe('SlabWriter: closed', () => {
  it('a closed writer ignores big frames from send, sendFrom and sendFrame alike', async () => {
    const { w, copies } = make();
    w.close();
    w.send(bytes(20 * KiB, 1));
    w.sendFrom(bytes(20 * KiB, 2), 0, 20 * KiB);
    w.sendFrame(0xc1, 0, 1, 1, 0, 0, bytes(20 * KiB, 3));
    expect(w.pendingBytes).toBe(0);
    expect(w.flush()).toBe(true);
    await nextTick();
    expect(copies).toHaveLength(0);
  });
});
