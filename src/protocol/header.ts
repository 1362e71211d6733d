/**
 * The fixed 24-byte frame header, big-endian. See docs/protocol.md for the byte map.
 *
 *   0-1  magic 0x5342 ("SB")     2  version        3  flags
 *   4    status                  5  event kind     6-7  pool type
 *   8-11 request id             12-15 service key 16-19 deadline budget (ms, 0 = none)
 *   20-23 body length
 *
 * Hot paths read single fields straight from the frame buffer with the accessors below;
 * decodeHeader() builds an object for code that is not on the per-request path.
 */
export const MAGIC = 0x5342;
export const VERSION = 1;
export const HEADER_SIZE = 24;
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

/** Flag bits (byte 3). */
export const FLAG_REQUEST = 0x80;
export const FLAG_TWO_WAY = 0x40;
export const FLAG_EVENT = 0x20;
export const SERIALIZATION_MASK = 0x1f;

/** Serialization ids (low five bits of the flag byte). */
export const Serialization = {
  /** Opaque bytes: the body is not interpreted by either side. */
  RAW: 0,
  MSGPACK: 1,
} as const;

export const OFFSET = {
  magic: 0,
  version: 2,
  flags: 3,
  status: 4,
  eventKind: 5,
  poolType: 6,
  requestId: 8,
  serviceKey: 12,
  budget: 16,
  bodyLength: 20,
} as const;

export const MAX_UINT32 = 0xffffffff;
export const MAX_POOL_TYPE = 0xffff;

export interface FrameHeader {
  flags: number;
  status: number;
  eventKind: number;
  poolType: number;
  requestId: number;
  serviceKey: number;
  /** Milliseconds the sender still allows for the answer; 0 means no deadline was given. */
  budgetMs: number;
  bodyLength: number;
}

export function writeHeader(buf: Buffer, h: FrameHeader, offset = 0): void {
  writeHeaderFields(buf, offset, h.flags, h.status, h.eventKind, h.poolType, h.requestId, h.serviceKey, h.budgetMs, h.bodyLength);
}

/** writeHeader without the object, for paths that run once per request. */
export function writeHeaderFields(
  buf: Buffer,
  o: number,
  flags: number,
  status: number,
  eventKind: number,
  poolType: number,
  requestId: number,
  serviceKey: number,
  budgetMs: number,
  bodyLength: number,
): void {
  buf.writeUInt16BE(MAGIC, o);
  buf[o + OFFSET.version] = VERSION;
  buf[o + OFFSET.flags] = flags;
  buf[o + OFFSET.status] = status;
  buf[o + OFFSET.eventKind] = eventKind;
  buf.writeUInt16BE(poolType, o + OFFSET.poolType);
  buf.writeUInt32BE(requestId >>> 0, o + OFFSET.requestId);
  buf.writeUInt32BE(serviceKey >>> 0, o + OFFSET.serviceKey);
  buf.writeUInt32BE(budgetMs >>> 0, o + OFFSET.budget);
  buf.writeUInt32BE(bodyLength >>> 0, o + OFFSET.bodyLength);
}

export function decodeHeader(frame: Buffer): FrameHeader {
  return {
    flags: frame[OFFSET.flags],
    status: frame[OFFSET.status],
    eventKind: frame[OFFSET.eventKind],
    poolType: frame.readUInt16BE(OFFSET.poolType),
    requestId: frame.readUInt32BE(OFFSET.requestId),
    serviceKey: frame.readUInt32BE(OFFSET.serviceKey),
    budgetMs: frame.readUInt32BE(OFFSET.budget),
    bodyLength: frame.readUInt32BE(OFFSET.bodyLength),
  };
}

// Single-field accessors for the per-frame path: no object is built.
export const flagsOf = (f: Buffer): number => f[OFFSET.flags];
export const isRequest = (f: Buffer): boolean => (f[OFFSET.flags] & FLAG_REQUEST) !== 0;
export const isTwoWay = (f: Buffer): boolean => (f[OFFSET.flags] & FLAG_TWO_WAY) !== 0;
export const isEvent = (f: Buffer): boolean => (f[OFFSET.flags] & FLAG_EVENT) !== 0;
export const serializationOf = (f: Buffer): number => f[OFFSET.flags] & SERIALIZATION_MASK;
export const statusOf = (f: Buffer): number => f[OFFSET.status];
export const eventKindOf = (f: Buffer): number => f[OFFSET.eventKind];
export const poolTypeOf = (f: Buffer): number => f.readUInt16BE(OFFSET.poolType);
export const requestIdOf = (f: Buffer): number => f.readUInt32BE(OFFSET.requestId);
export const serviceKeyOf = (f: Buffer): number => f.readUInt32BE(OFFSET.serviceKey);
export const budgetOf = (f: Buffer): number => f.readUInt32BE(OFFSET.budget);
export const bodyOf = (f: Buffer): Buffer => f.subarray(HEADER_SIZE);

export const setRequestId = (f: Buffer, id: number): void => {
  f.writeUInt32BE(id >>> 0, OFFSET.requestId);
};
export const setBudget = (f: Buffer, ms: number): void => {
  f.writeUInt32BE(ms >>> 0, OFFSET.budget);
};
