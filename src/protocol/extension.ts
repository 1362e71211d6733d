import { BadRequestError } from './errors.js';
import { HEADER_SIZE, OFFSET, VERSION, writeHeaderFields } from './header.js';

/**
 * Header version 2: the 24-byte header, then an extension block, then the body. The header's body
 * length counts both, so framing is the same as in version 1 and a reader that only frames need not
 * look inside. The block is a 2-byte length E, then E bytes of entries: type (1 byte), length
 * (1 byte), value. Only requests use it; the AS reads it without decoding the body.
 */
export const VERSION_EXTENDED = 2;

/** Largest extension block (its entries, not counting the 2-byte length). */
export const MAX_EXTENSION_BYTES = 1024;

/** Entry types. 0x80 and above are critical: a receiver that does not know one refuses the request. */
export const Extension = {
  /** Opaque bytes (1-255) the AS hashes to keep one key on one FS (consistent hashing). */
  ROUTING_KEY: 0x01,
  /** The W3C `traceparent` value, ASCII (55 bytes for version 00). */
  TRACEPARENT: 0x02,
  /** The W3C `tracestate` value, ASCII (at most 255 bytes here). */
  TRACESTATE: 0x03,
} as const;

const CRITICAL = 0x80;
const TRACEPARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const PRINTABLE_ASCII_RE = /^[\x20-\x7e]*$/;

/** What a request carries beside its body. */
export interface RequestMetadata {
  routingKey?: Buffer;
  traceparent?: string;
  tracestate?: string;
}

/** A malformed extension block: the request is refused, the connection carries on. */
export class BadExtensionError extends BadRequestError {
  constructor(message: string, code = 'SB_ERR_BAD_EXTENSION') {
    super(message, code);
  }
}

/** Bytes the extension block takes (its length field included) in the frame at buf[off]; 0 for version 1. */
export function extensionBytes(buf: Buffer, off: number, len: number): number {
  if (buf[off + OFFSET.version] !== VERSION_EXTENDED) return 0;
  if (len < HEADER_SIZE + 2) throw new BadExtensionError('a version-2 frame must start its body with the 2-byte extension length');
  const e = buf.readUInt16BE(off + HEADER_SIZE);
  if (e > MAX_EXTENSION_BYTES) throw new BadExtensionError(`the extension block is ${e} bytes, more than the ${MAX_EXTENSION_BYTES} allowed; carry large data in the body`);
  if (HEADER_SIZE + 2 + e > len) throw new BadExtensionError(`the extension block claims ${e} bytes but the frame has ${len - HEADER_SIZE - 2} after its length`);
  return 2 + e;
}

/** Where the body starts in the frame at buf[off, off + len): after the header and any extension block. */
export function bodyOffset(buf: Buffer, off: number, len: number): number {
  return off + HEADER_SIZE + extensionBytes(buf, off, len);
}

/**
 * Reads the metadata of the frame at buf[off, off + len). Throws BadExtensionError on a malformed
 * block, an unknown critical entry, or a repeated one. A `traceparent` that is not valid W3C is
 * dropped (with its tracestate), as W3C asks: the trace restarts, the request goes on.
 */
export function readMetadata(buf: Buffer, off: number, len: number): RequestMetadata | undefined {
  const size = extensionBytes(buf, off, len);
  if (size === 0) return undefined;
  const meta: RequestMetadata = {};
  let p = off + HEADER_SIZE + 2;
  const end = p + size - 2;
  let seen = 0;
  while (p < end) {
    if (p + 2 > end) throw new BadExtensionError('an extension entry is cut short: each entry is type (1 byte), length (1 byte), value');
    const type = buf[p];
    const n = buf[p + 1];
    const v = p + 2;
    if (v + n > end) throw new BadExtensionError(`extension entry 0x${type.toString(16)} claims ${n} bytes but the block ends before`);
    if (type >= 1 && type <= 3) {
      if ((seen & (1 << type)) !== 0) throw new BadExtensionError(`extension entry 0x${type.toString(16)} appears twice; send each at most once`);
      seen |= 1 << type;
    }
    if (type === Extension.ROUTING_KEY) {
      if (n === 0) throw new BadExtensionError('the routing key is empty; omit the entry instead');
      meta.routingKey = buf.subarray(v, v + n);
    } else if (type === Extension.TRACEPARENT) {
      meta.traceparent = buf.toString('latin1', v, v + n);
    } else if (type === Extension.TRACESTATE) {
      meta.tracestate = buf.toString('latin1', v, v + n);
    } else if (type >= CRITICAL) {
      throw new BadExtensionError(`extension entry 0x${type.toString(16)} is critical and not known here; upgrade this peer or leave the entry out`, 'SB_ERR_UNKNOWN_EXTENSION');
    }
    p = v + n;
  }
  if (meta.traceparent !== undefined && !validTraceparent(meta.traceparent)) meta.traceparent = undefined;
  // W3C: a tracestate means nothing without a traceparent, and holds printable ASCII only.
  if (meta.tracestate !== undefined && (meta.traceparent === undefined || !PRINTABLE_ASCII_RE.test(meta.tracestate))) meta.tracestate = undefined;
  return meta;
}

/** W3C trace context: version not ff, trace id and parent id not all zeros; version 00 has nothing after the flags. */
export function validTraceparent(s: string): boolean {
  const m = TRACEPARENT_RE.exec(s);
  if (m === null) return false;
  const [, version, traceId, parentId, , rest] = m;
  if (version === 'ff' || /^0+$/.test(traceId) || /^0+$/.test(parentId)) return false;
  return version !== '00' || rest === undefined;
}

/** The extension block (its 2-byte length first) for `meta`; throws when a value does not fit its entry. */
export function encodeExtension(meta: RequestMetadata): Buffer {
  const entries: [number, Buffer][] = [];
  if (meta.routingKey !== undefined) entries.push([Extension.ROUTING_KEY, meta.routingKey]);
  if (meta.traceparent !== undefined) entries.push([Extension.TRACEPARENT, Buffer.from(meta.traceparent, 'latin1')]);
  if (meta.tracestate !== undefined && meta.traceparent !== undefined) entries.push([Extension.TRACESTATE, Buffer.from(meta.tracestate, 'latin1')]);
  let size = 0;
  for (const [type, v] of entries) {
    if (v.length === 0 || v.length > 255) throw new BadExtensionError(`extension entry 0x${type.toString(16)} must be 1 to 255 bytes, got ${v.length}`);
    size += 2 + v.length;
  }
  const block = Buffer.allocUnsafe(2 + size);
  block.writeUInt16BE(size, 0);
  let p = 2;
  for (const [type, v] of entries) {
    block[p] = type;
    block[p + 1] = v.length;
    v.copy(block, p + 2);
    p += 2 + v.length;
  }
  return block;
}

/**
 * The same request in version 1, without its extension block: for a peer that has not said it reads
 * version 2. One copy; only on that path.
 */
export function stripExtension(buf: Buffer, off: number, len: number): Buffer {
  const ext = extensionBytes(buf, off, len);
  const out = Buffer.allocUnsafe(len - ext);
  buf.copy(out, 0, off, off + HEADER_SIZE);
  out[OFFSET.version] = VERSION;
  out.writeUInt32BE(len - HEADER_SIZE - ext, OFFSET.bodyLength);
  buf.copy(out, HEADER_SIZE, off + HEADER_SIZE + ext, off + len);
  return out;
}

/** A version-2 frame: the header fields, the block for `meta`, then `body`, in one allocation. */
export function encodeExtendedFrame(
  flags: number,
  poolType: number,
  requestId: number,
  serviceKey: number,
  budgetMs: number,
  meta: RequestMetadata,
  body: Buffer,
): Buffer {
  const block = encodeExtension(meta);
  const frame = Buffer.allocUnsafe(HEADER_SIZE + block.length + body.length);
  writeHeaderFields(frame, 0, flags, 0, 0, poolType, requestId, serviceKey, budgetMs, block.length + body.length);
  frame[OFFSET.version] = VERSION_EXTENDED;
  block.copy(frame, HEADER_SIZE);
  body.copy(frame, HEADER_SIZE + block.length);
  return frame;
}
