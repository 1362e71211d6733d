/**
 * A minimal, framework-free implementation of the 24-byte Switchboard header (big-endian) for the
 * raw scenarios: frames are parsed in a loop over each chunk and written into a slab, so a batch
 * of frames leaves in one socket write.
 *
 *   0-1 magic 0x5342 · 2 version · 3 flags · 4 status · 5 event kind · 6-7 pool type
 *   8-11 request id · 12-15 service key · 16-19 budget ms · 20-23 body length
 */
export const HEADER = 24;
export const MAGIC = 0x5342;
export const VERSION = 1;
export const FLAG_REQUEST = 0x80;
export const FLAG_TWO_WAY = 0x40;
export const MSGPACK = 1;
const MAX_FRAME = 16 * 1024 * 1024;
const SLAB = 256 * 1024;

/** Splits a byte stream into frames; calls onFrame(buf, offset, length) for each whole one. */
export class FrameReader {
  #rest = null;
  #onFrame;

  constructor(onFrame) {
    this.#onFrame = onFrame;
  }

  push(chunk) {
    let buf = chunk;
    if (this.#rest !== null) {
      buf = Buffer.concat([this.#rest, chunk]);
      this.#rest = null;
    }
    const len = buf.length;
    let off = 0;
    while (len - off >= HEADER) {
      if (buf.readUInt16BE(off) !== MAGIC || buf[off + 2] !== VERSION) throw new Error('raw bench: bad magic or version');
      const total = HEADER + buf.readUInt32BE(off + 20);
      if (total > MAX_FRAME) throw new Error(`raw bench: frame of ${total} bytes is too large`);
      if (len - off < total) break;
      this.#onFrame(buf, off, total);
      off += total;
    }
    if (off < len) this.#rest = buf.subarray(off);
  }
}

/**
 * Frames are appended to a slab; take() hands out the bytes written since the last take() as a
 * view, and never writes over them again, so the socket may keep the view as long as it likes.
 *
 * With `pieceBytes` (scenario raw-best), the writer also sends by itself while a batch is being
 * made: once the first `pieceBytes` of a batch are queued they go to `write` at once, later pieces
 * at `PIECE_GROWTH` times that, and endBatch() sends the rest. The peer starts on the first piece
 * while this side makes the others, so the two processes work at the same time on two cores: the
 * way the Switchboard SDK and FS write long batches. Without it, the caller takes whole batches.
 */
export const PIECE_GROWTH = 8;

export class FrameWriter {
  #slab = Buffer.allocUnsafe(SLAB);
  #start = 0;
  #pos = 0;
  #write;
  #pieceBytes;
  #pieces = 0;

  constructor({ write = undefined, pieceBytes = 0 } = {}) {
    this.#write = write;
    this.#pieceBytes = write ? pieceBytes : 0;
  }

  get pending() {
    return this.#pos - this.#start;
  }

  frame(flags, status, requestId, serviceKey, body) {
    const need = HEADER + body.length;
    if (this.#pos + need > this.#slab.length) this.#newSlab(need);
    const b = this.#slab;
    const o = this.#pos;
    b.writeUInt16BE(MAGIC, o);
    b[o + 2] = VERSION;
    b[o + 3] = flags;
    b[o + 4] = status;
    b[o + 5] = 0;
    b.writeUInt16BE(0, o + 6);
    b.writeUInt32BE(requestId >>> 0, o + 8);
    b.writeUInt32BE(serviceKey >>> 0, o + 12);
    b.writeUInt32BE(0, o + 16);
    b.writeUInt32BE(body.length, o + 20);
    body.copy(b, o + HEADER);
    this.#pos = o + need;
    if (this.#pieceBytes > 0 && this.#pos - this.#start >= (this.#pieces === 0 ? this.#pieceBytes : this.#pieceBytes * PIECE_GROWTH)) {
      this.#pieces++;
      this.#write(this.take());
    }
  }

  /** The batch is made (the 'data' event is handled): send what is left, count pieces afresh. */
  endBatch() {
    this.#pieces = 0;
    if (this.pending > 0) this.#write(this.take());
  }

  take() {
    const out = this.#slab.subarray(this.#start, this.#pos);
    this.#start = this.#pos;
    return out;
  }

  #newSlab(need) {
    const pending = this.#slab.subarray(this.#start, this.#pos);
    const slab = Buffer.allocUnsafe(Math.max(SLAB, 2 * (pending.length + need)));
    pending.copy(slab, 0);
    this.#slab = slab;
    this.#start = 0;
    this.#pos = pending.length;
  }
}
