import { BadMagicError, BadVersionError, FrameTooLargeError, type SwitchboardError } from './errors.js';
import { DEFAULT_MAX_BODY_BYTES, FLAG_EVENT, FLAG_REQUEST, HEADER_SIZE, MAGIC, OFFSET, VERSION } from './header.js';
import { VERSION_EXTENDED } from './extension.js';

export interface FrameParserOptions {
  /** Largest body accepted; a longer declared length is an error before any body byte is buffered. */
  maxBodyBytes?: number;
  onFrame: (frame: Buffer) => void;
  /**
   * When given, whole frames go here as (buffer, offset, length) instead of to onFrame: no view is
   * made per frame. The bytes are only valid during the call.
   */
  onFrameAt?: (buf: Buffer, offset: number, length: number) => void;
  /** Called once; the parser ignores every chunk after an error. */
  onError: (err: SwitchboardError) => void;
}

/**
 * Splits a byte stream into frames. A loop over each chunk, never recursive: a frame that lies
 * whole inside a chunk is handed out as a zero-copy view; only a frame split across chunks is
 * copied, once, into a buffer of its exact size.
 */
export class FrameParser {
  readonly #maxBody: number;
  readonly #onFrame: (frame: Buffer) => void;
  readonly #onFrameAt: ((buf: Buffer, offset: number, length: number) => void) | undefined;
  readonly #onError: (err: SwitchboardError) => void;
  #partial: Buffer | null = null;
  #have = 0;
  #failed = false;
  readonly #headerScratch = Buffer.allocUnsafe(HEADER_SIZE);

  constructor(opts: FrameParserOptions) {
    this.#maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.#onFrame = opts.onFrame;
    this.#onFrameAt = opts.onFrameAt;
    this.#onError = opts.onError;
  }

  /** Bytes held for a frame not yet complete. */
  get buffered(): number {
    return this.#partial === null ? 0 : this.#have;
  }

  get failed(): boolean {
    return this.#failed;
  }

  push(chunk: Buffer): void {
    if (this.#failed) return;
    let off = 0;
    const len = chunk.length;
    if (this.#partial !== null) {
      off = this.#fillPartial(chunk);
      if (off < 0) return;
    }
    while (off < len && !this.#failed) {
      const remaining = len - off;
      if (remaining < HEADER_SIZE) {
        if (!this.#checkPrefix(chunk, off, remaining)) return;
        chunk.copy(this.#headerScratch, 0, off, len);
        this.#partial = this.#headerScratch;
        this.#have = remaining;
        return;
      }
      const total = this.#checkHeader(chunk, off);
      if (total < 0) return;
      if (remaining >= total) {
        const at = off;
        off += total;
        if (this.#onFrameAt !== undefined) this.#onFrameAt(chunk, at, total);
        else this.#onFrame(chunk.subarray(at, at + total));
      } else {
        const buf = Buffer.allocUnsafe(total);
        chunk.copy(buf, 0, off, len);
        this.#partial = buf;
        this.#have = remaining;
        return;
      }
    }
  }

  /** Continues a frame begun in an earlier chunk; returns the offset reached, or -1 if still partial or failed. */
  #fillPartial(chunk: Buffer): number {
    let off = 0;
    let partial = this.#partial as Buffer;
    if (partial === this.#headerScratch) {
      const take = Math.min(HEADER_SIZE - this.#have, chunk.length);
      chunk.copy(partial, this.#have, 0, take);
      this.#have += take;
      off = take;
      if (this.#have < HEADER_SIZE) {
        this.#checkPrefix(partial, 0, this.#have);
        return -1;
      }
      const total = this.#checkHeader(partial, 0);
      if (total < 0) return -1;
      const full = Buffer.allocUnsafe(total);
      partial.copy(full, 0, 0, HEADER_SIZE);
      partial = full;
      this.#partial = full;
    }
    const need = partial.length - this.#have;
    const take = Math.min(need, chunk.length - off);
    chunk.copy(partial, this.#have, off, off + take);
    this.#have += take;
    off += take;
    if (this.#have < partial.length) return -1;
    this.#partial = null;
    this.#have = 0;
    if (this.#onFrameAt !== undefined) this.#onFrameAt(partial, 0, partial.length);
    else this.#onFrame(partial);
    return this.#failed ? -1 : off;
  }

  /**
   * Checks what a partial header already shows (magic from 2 bytes, version from 3, version 2 on a
   * non-request from 4), so a short
   * foreign request such as an 18-byte HTTP GET is refused at once instead of waiting for 24 bytes.
   */
  #checkPrefix(buf: Buffer, off: number, n: number): boolean {
    if (n >= 2) {
      const magic = buf.readUInt16BE(off);
      if (magic !== MAGIC) return this.#fail(new BadMagicError(magic)) > 0;
    } else if (n === 1 && buf[off] !== MAGIC >> 8) {
      return this.#fail(new BadMagicError(buf[off] << 8)) > 0;
    }
    if (n < 3) return true;
    const version = buf[off + OFFSET.version];
    if (version !== VERSION && version !== VERSION_EXTENDED) return this.#fail(new BadVersionError(version)) > 0;
    // Version 2 on an event or a response: refused once the flags byte shows it.
    if (n >= 4 && version === VERSION_EXTENDED && (buf[off + OFFSET.flags] & (FLAG_REQUEST | FLAG_EVENT)) !== FLAG_REQUEST) return this.#fail(new BadVersionError(version, true)) > 0;
    return true;
  }

  /** Validates the header at `off`; returns the whole frame's length, or -1 after reporting an error. */
  #checkHeader(buf: Buffer, off: number): number {
    const magic = buf.readUInt16BE(off);
    if (magic !== MAGIC) return this.#fail(new BadMagicError(magic));
    const version = buf[off + OFFSET.version];
    // Version 2 adds an extension block to requests only; events and responses stay in version 1.
    if (version !== VERSION && (version !== VERSION_EXTENDED || (buf[off + OFFSET.flags] & (FLAG_REQUEST | FLAG_EVENT)) !== FLAG_REQUEST)) {
      return this.#fail(new BadVersionError(version, (buf[off + OFFSET.flags] & (FLAG_REQUEST | FLAG_EVENT)) !== FLAG_REQUEST));
    }
    const bodyLength = buf.readUInt32BE(off + OFFSET.bodyLength);
    if (bodyLength > this.#maxBody) return this.#fail(new FrameTooLargeError(bodyLength, this.#maxBody));
    return HEADER_SIZE + bodyLength;
  }

  #fail(err: SwitchboardError): number {
    this.#failed = true;
    this.#partial = null;
    this.#onError(err);
    return -1;
  }
}
