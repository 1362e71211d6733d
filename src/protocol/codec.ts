import { Packr } from 'msgpackr';
import { BodyDecodeError, errorFromStatus, type SwitchboardError } from './errors.js';
import { VERSION_EXTENDED, bodyOffset } from './extension.js';
import { nonStandardReason } from './msgpack-check.js';
import { FLAG_EVENT, FLAG_REQUEST, FLAG_TWO_WAY, HEADER_SIZE, OFFSET, SERIALIZATION_MASK, Serialization, writeHeader } from './header.js';
import { Status } from './status.js';

// Plain msgpack maps and arrays (no msgpackr records or extensions) so that any msgpack library can
// read our bodies; undefined inside a map is written as nil; 64-bit integers decode to numbers when
// they fit one exactly (BigInt only beyond 2^53).
// ('auto' is supported by msgpackr's decoder; its type list lags behind.)
// A function in a body would go as nil without a word: refuse it, as JSON's callers would expect.
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  moreTypes: false,
  encodeUndefinedAsNil: true,
  int64AsType: 'auto' as 'number',
  writeFunction: () => {
    throw new TypeError('a function cannot be encoded as msgpack');
  },
} as ConstructorParameters<typeof Packr>[0]);

const EMPTY = Buffer.alloc(0);

export function encodeBody(value: unknown): Buffer {
  return value === undefined ? EMPTY : packr.pack(value);
}

/**
 * Decodes bare msgpack bytes (not a frame), with the same standard-msgpack check as bodies; throws
 * BodyDecodeError on bad bytes. For values carried inside bodies as bin (director tickets).
 */
export function decodeValue(bytes: Uint8Array): unknown {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const why = nonStandardReason(buf, 0, buf.length);
  if (why !== undefined) throw new BodyDecodeError(new Error(why), `value is not standard msgpack: ${why}`);
  try {
    return packr.unpack(buf);
  } catch (err) {
    throw new BodyDecodeError(err as Error, `value is not valid msgpack: ${(err as Error).message}`);
  }
}

/** Decodes a frame's body; an empty body decodes to undefined. Throws BodyDecodeError on bad bytes. */
export function decodeBody(frame: Buffer): unknown {
  return decodeBodyAt(frame, 0, frame.length);
}

/** decodeBody for control paths that only want the value if there is a good one: undefined otherwise. */
export function tryDecodeBody(frame: Buffer): unknown {
  try {
    return decodeBody(frame);
  } catch {
    return undefined;
  }
}

/**
 * The error a connection-level answer (request id 0, a status other than OK) at buf[off, off + len)
 * carries: the peer closes next, and every call on that connection fails with it.
 */
export function refusalAt(buf: Buffer, off: number, len: number): SwitchboardError {
  return errorFromStatus(buf[off + OFFSET.status], tryDecodeBody(buf.subarray(off, off + len)) as { code?: string; message?: string } | undefined);
}

/**
 * decodeBody for a frame at buf[off, off + len). Decoding in place matters: msgpackr caches a
 * DataView on the buffer it reads, so one chunk read many frames pays for it once.
 */
export function decodeBodyAt(buf: Buffer, off: number, len: number): unknown {
  const end = off + len;
  const start = buf[off + OFFSET.version] === VERSION_EXTENDED ? bodyOffset(buf, off, len) : off + HEADER_SIZE;
  const serialization = buf[off + OFFSET.flags] & SERIALIZATION_MASK;
  if (serialization !== Serialization.MSGPACK && serialization !== Serialization.RAW) {
    throw new BodyDecodeError(undefined, `serialization id ${serialization} is not supported; send 0 (raw) or 1 (msgpack)`);
  }
  if (end <= start) return undefined;
  if (serialization === Serialization.RAW) return buf.subarray(start, end);
  // Walked before msgpackr sees the bytes, so none of its extension code runs on them.
  const why = nonStandardReason(buf, start, end);
  if (why !== undefined) throw new BodyDecodeError(new Error(why), `request body is not standard msgpack: ${why}`);
  let value: unknown;
  try {
    value = packr.unpack(buf, { start, end });
  } catch (err) {
    throw new BodyDecodeError(err);
  }
  return value;
}

export interface FrameFields {
  flags: number;
  status?: number;
  eventKind?: number;
  poolType?: number;
  requestId: number;
  serviceKey?: number;
  budgetMs?: number;
}

/** One allocation for header and body together, so a frame is always written in one piece. */
export function encodeFrameRaw(f: FrameFields, body: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_SIZE + body.length);
  writeHeader(frame, {
    flags: f.flags,
    status: f.status ?? 0,
    eventKind: f.eventKind ?? 0,
    poolType: f.poolType ?? 0,
    requestId: f.requestId,
    serviceKey: f.serviceKey ?? 0,
    budgetMs: f.budgetMs ?? 0,
    bodyLength: body.length,
  });
  body.copy(frame, HEADER_SIZE);
  return frame;
}

export function encodeRequest(
  requestId: number,
  serviceKey: number,
  body: unknown,
  opts: { poolType?: number; budgetMs?: number; twoWay?: boolean } = {},
): Buffer {
  const flags = FLAG_REQUEST | (opts.twoWay === false ? 0 : FLAG_TWO_WAY) | Serialization.MSGPACK;
  return encodeFrameRaw(
    { flags, requestId, serviceKey, poolType: opts.poolType ?? 0, budgetMs: opts.budgetMs ?? 0 },
    encodeBody(body),
  );
}

export function encodeResponse(requestId: number, status: number, body: unknown, serviceKey = 0): Buffer {
  return encodeFrameRaw({ flags: Serialization.MSGPACK, status, requestId, serviceKey }, encodeBody(body));
}

/** An error response: the status plus a small `{ code, message }` body. */
export function encodeErrorResponse(requestId: number, status: number, code: string, message: string, serviceKey = 0): Buffer {
  return encodeResponse(requestId, status, { code, message }, serviceKey);
}

export function encodeEventRequest(kind: number, requestId: number, body: unknown, twoWay: boolean): Buffer {
  const flags = FLAG_REQUEST | FLAG_EVENT | (twoWay ? FLAG_TWO_WAY : 0) | Serialization.MSGPACK;
  return encodeFrameRaw({ flags, eventKind: kind, requestId }, encodeBody(body));
}

export function encodeEventResponse(kind: number, requestId: number, body: unknown, status: number = Status.OK): Buffer {
  return encodeFrameRaw({ flags: FLAG_EVENT | Serialization.MSGPACK, status, eventKind: kind, requestId }, encodeBody(body));
}
