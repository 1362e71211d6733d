import { setImmediate as afterIo } from 'node:timers';
import { VERSION_EXTENDED } from './extension.js';
import { HEADER_SIZE, OFFSET, writeHeaderFields } from './header.js';

const SLAB_BYTES = 64 * 1024;
/** Frames above this are queued by reference rather than copied into the slab. */
const BIG_FRAME_BYTES = 16 * 1024;
/**
 * After the first early piece of a tick, later pieces leave at this size (or at earlyFlushBytes, if
 * larger): a fixed size, so a small first piece does not turn a long batch of large frames into a
 * write per frame.
 */
const LATER_PIECE_BYTES = 64 * 1024;
/**
 * The first early piece also waits for this many frames: with large frames, a piece of one or two
 * costs the next hop a read and a write for little work, and the batches then stay in small pieces
 * at every hop.
 */
const MIN_FIRST_PIECE_FRAMES = 8;
/**
 * A flush of several pieces holding at least this many bytes goes out as one gathered write
 * (writev) when the owner offers one: joining them would copy every byte once more.
 */
const GATHER_BYTES = 32 * 1024;

export interface SlabWriterOptions {
  /** Writes one batch to the socket; returns false when the socket's buffer is over its mark. */
  write: (data: Buffer) => boolean;
  /** Writes several pieces, in order, as one gathered write; absent: pieces are joined and written. */
  writev?: (pieces: Buffer[]) => boolean;
  /**
   * Write the first this-many bytes queued in a tick at once (once they hold 8 frames) rather than
   * at the end of the tick (later pieces of the same tick at 64 KiB); 0 waits for the tick. An end
   * of a chain that produces a long batch (a client, an FS) lets the next hop start on the first
   * part while it makes the rest, so the hops work in parallel on two cores.
   */
  earlyFlushBytes?: number;
  /**
   * Write once per event-loop turn, after its I/O callbacks (setImmediate), rather than at the end
   * of each tick: a connection that many others feed (an AS's pool connection to an FS, fed by
   * every client and HTTP connection) then makes one write for all the reads of a turn instead of
   * one per read.
   */
  perTurn?: boolean;
}

/**
 * Batches outgoing frames: frames are copied into a 64 KiB slab and leave as one view of it per
 * flush, at the end of the tick (or earlier in pieces): no allocation per frame or per batch.
 * Frames a proxy forwards are not copied at all: those lying back to back in one read chunk leave
 * as one view of that chunk (forward).
 */
export class SlabWriter {
  readonly #write: (data: Buffer) => boolean;
  readonly #writev: ((pieces: Buffer[]) => boolean) | undefined;
  #earlyFlush: number;
  readonly #perTurn: boolean;
  #slab: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  #slabStart = 0;
  #slabPos = 0;
  /** Views ready to write, in order, when a flush holds more than the current slab (big frames, a full slab). */
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #flushScheduled = false;
  #earlyPieces = 0;
  /** Frames queued since the last write: an early first piece waits for MIN_FIRST_PIECE_FRAMES. */
  #frames = 0;
  #closed = false;
  /** Forwarded frames not yet in the queue: #run[#runStart, #runEnd), by reference. */
  #run: Buffer | null = null;
  #runStart = 0;
  #runEnd = 0;

  constructor(opts: SlabWriterOptions) {
    this.#write = opts.write;
    this.#writev = opts.writev;
    this.#earlyFlush = opts.earlyFlushBytes ?? 0;
    this.#perTurn = opts.perTurn === true;
  }

  /** See SlabWriterOptions.earlyFlushBytes; a connection may change it once it knows its peer. */
  set earlyFlushBytes(n: number) {
    this.#earlyFlush = n;
  }

  /** Bytes queued here and not yet handed to the socket. */
  get pendingBytes(): number {
    return this.#queuedBytes + (this.#slabPos - this.#slabStart);
  }

  /** Queues a whole frame; frames queued in one tick go out in one socket write. */
  send(frame: Buffer): void {
    if (this.#closed) return;
    if (frame.length <= BIG_FRAME_BYTES) {
      this.sendFrom(frame, 0, frame.length);
      return;
    }
    this.#takeSlab();
    this.#queue.push(frame); // big: queued by reference, the caller owns it
    this.#queuedBytes += frame.length;
    this.#queued();
  }

  /** Copies a frame that lies at buf[off, off + len) into the slab; the caller may reuse buf. */
  sendFrom(buf: Buffer, off: number, len: number): void {
    if (this.#closed) return;
    if (len > BIG_FRAME_BYTES) {
      this.send(Buffer.from(buf.subarray(off, off + len))); // a copy: buf may be a reused read buffer
      return;
    }
    this.#reserve(len);
    buf.copy(this.#slab, this.#slabPos, off, off + len);
    this.#slabPos += len;
    this.#queued();
  }

  /**
   * Queues the frame at buf[off, off + len) by reference: no copy and, for a frame that follows the
   * previous forwarded one in the same buffer, no allocation. `buf` must stay unchanged until it is
   * written: a chunk read from a socket, which Node never reuses.
   */
  forward(buf: Buffer, off: number, len: number): void {
    if (this.#closed) return;
    // Extending the run is safe only while nothing was queued after it (the slab region is empty).
    if (this.#run === buf && this.#runEnd === off && this.#slabPos === this.#slabStart) {
      this.#runEnd = off + len;
    } else {
      this.#takeSlab();
      this.#run = buf;
      this.#runStart = off;
      this.#runEnd = off + len;
    }
    this.#queuedBytes += len;
    this.#queued();
  }

  /** Writes a header and an encoded body straight into the slab: one copy, no frame allocation. */
  /** With `extension` (a block from encodeExtension), the frame is a version-2 request carrying it before the body. */
  sendFrame(flags: number, status: number, requestId: number, serviceKey: number, poolType: number, budgetMs: number, body: Buffer, extension?: Buffer): void {
    if (this.#closed) return;
    const e = extension === undefined ? 0 : extension.length;
    const n = HEADER_SIZE + e + body.length;
    const big = n > BIG_FRAME_BYTES;
    if (!big) this.#reserve(n);
    const out = big ? Buffer.allocUnsafe(n) : this.#slab;
    const o = big ? 0 : this.#slabPos;
    writeHeaderFields(out, o, flags, status, 0, poolType, requestId, serviceKey, budgetMs, e + body.length);
    if (extension !== undefined) {
      out[o + OFFSET.version] = VERSION_EXTENDED;
      extension.copy(out, o + HEADER_SIZE);
    }
    body.copy(out, o + HEADER_SIZE + e);
    if (big) {
      this.send(out);
      return;
    }
    this.#slabPos = o + n;
    this.#queued();
  }

  /** Writes what is queued now rather than at the end of the tick; returns the socket's answer. */
  flush(): boolean {
    if (this.#closed) return true;
    this.#frames = 0;
    let data: Buffer;
    if (this.#queue.length === 0 && this.#run === null) {
      if (this.#slabPos === this.#slabStart) return true;
      // The socket may hold this view until it is written; the slab never writes over it again.
      data = this.#slab.subarray(this.#slabStart, this.#slabPos);
      this.#slabStart = this.#slabPos;
    } else {
      this.#takeSlab();
      const q = this.#queue;
      const bytes = this.#queuedBytes;
      this.#queue = [];
      this.#queuedBytes = 0;
      if (q.length > 1 && bytes >= GATHER_BYTES && this.#writev !== undefined) return this.#writev(q);
      data = q.length === 1 ? q[0] : Buffer.concat(q, bytes);
    }
    return this.#write(data);
  }

  /** The tick is over: write the rest and start counting pieces afresh. */
  endTick(): void {
    this.#flushScheduled = false;
    this.#earlyPieces = 0;
    this.flush();
  }

  /** Drops whatever is queued; later sends are ignored. */
  close(): void {
    this.#closed = true;
    this.#run = null;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#slabStart = this.#slabPos;
  }

  /** After bytes were queued: write now if enough are waiting, else once at the end of the tick. */
  #queued(): void {
    this.#frames++;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      if (this.#perTurn) afterIo(endOfTick, this);
      else process.nextTick(endOfTick, this);
    }
    if (this.#earlyFlush > 0) {
      // The first piece of a tick is small so the next hop starts at once; later ones are larger,
      // so a long batch costs few writes.
      const first = this.#earlyPieces === 0;
      const limit = first ? this.#earlyFlush : Math.max(this.#earlyFlush, LATER_PIECE_BYTES);
      if (this.pendingBytes >= limit && (!first || this.#frames >= MIN_FIRST_PIECE_FRAMES)) {
        this.#earlyPieces++;
        this.flush();
      }
    }
  }

  #reserve(n: number): void {
    if (this.#slabPos + n <= this.#slab.length) return;
    this.#takeSlab();
    this.#slab = Buffer.allocUnsafe(SLAB_BYTES);
    this.#slabStart = 0;
    this.#slabPos = 0;
  }

  /** Moves the forwarded run, then the slab's unwritten bytes (queued after it), to the queue. */
  #takeSlab(): void {
    if (this.#run !== null) {
      // Its bytes were counted in #queuedBytes when forwarded.
      this.#queue.push(this.#run.subarray(this.#runStart, this.#runEnd));
      this.#run = null;
    }
    if (this.#slabPos === this.#slabStart) return;
    const n = this.#slabPos - this.#slabStart;
    this.#queue.push(this.#slab.subarray(this.#slabStart, this.#slabPos));
    this.#queuedBytes += n;
    this.#slabStart = this.#slabPos;
  }
}

function endOfTick(w: SlabWriter): void {
  w.endTick();
}
