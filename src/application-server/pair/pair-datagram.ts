import { createHmac, timingSafeEqual } from 'node:crypto';
import { Packr } from 'msgpackr';

/**
 * The AS pair's UDP datagram: the original design's `FH | Head | ASState | ID | data`, extended with
 * what keepalived learned (see docs/pair.md for why each field exists). Big-endian.
 *
 *   0  1  FH          0xFF
 *   1  1  Head        0xA0 Negotiate, 0xA5 Designate, 0xAA Connected, 0xAF Responsed
 *   2  1  ASState     the sender's state: 0x00 Initial, 0x01 Active, 0x02 Standby
 *   3  1  version     1
 *   4  4  ID          frame id; a Responsed echoes the id of the frame it answers
 *   8  8  node id     the sender
 *  16  1  priority    0-255; 0 means "I am stopping: take over now"
 *  17  1  flags       bit 0: the sender preempts
 *  18  2  data length n, at most 256
 *  20  4  epoch       the term: grows on every takeover
 *  24  8  sequence    the sender's clock in µs, strictly increasing: replays and stale copies are dropped
 *  32  n  data        msgpack map: Negotiate { token }, Designate { role }, Connected { client }, Responsed {}
 *  32+n 32 tag        HMAC-SHA256 with the pair secret over bytes 0 .. 32+n
 */
export const FRAME_HEAD = 0xff;
export const PAIR_VERSION = 1;
export const PAIR_HEADER_BYTES = 32;
export const PAIR_TAG_BYTES = 32;
export const MAX_PAIR_DATA_BYTES = 256;

export const Head = { NEGOTIATE: 0xa0, DESIGNATE: 0xa5, CONNECTED: 0xaa, RESPONSED: 0xaf } as const;
export type HeadValue = (typeof Head)[keyof typeof Head];

export const AsState = { INITIAL: 0x00, ACTIVE: 0x01, STANDBY: 0x02 } as const;
export type AsStateValue = (typeof AsState)[keyof typeof AsState];

export interface PairData {
  /** Negotiate: the sender's random token. */
  token?: Uint8Array;
  /** Designate: the state the receiver must take (Active or Standby). */
  role?: number;
  /** Connected: where the active serves clients, for the standby's NOT_ACTIVE answers. */
  client?: { host: string; port: number };
}

export interface PairMessage {
  head: HeadValue;
  state: AsStateValue;
  id: number;
  /** 16 hex digits. */
  nodeId: string;
  priority: number;
  preempt: boolean;
  epoch: number;
  seq: bigint;
  data: PairData;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
const HEADS = new Set<number>(Object.values(Head));
const STATES = new Set<number>(Object.values(AsState));

/** Why a datagram was dropped; each is counted. */
export type DropReason = 'short' | 'frame-head' | 'version' | 'tag' | 'malformed' | 'replay' | 'clock' | 'stranger' | 'self';

export class PairDropError extends Error {
  constructor(readonly reason: DropReason, message: string) {
    super(message);
  }
}

export function encodePairMessage(m: PairMessage, secret: Buffer): Buffer {
  const data = packr.pack(m.data);
  if (data.length > MAX_PAIR_DATA_BYTES) throw new RangeError(`pair data of ${data.length} bytes is over ${MAX_PAIR_DATA_BYTES}`);
  const b = Buffer.alloc(PAIR_HEADER_BYTES + data.length + PAIR_TAG_BYTES);
  b[0] = FRAME_HEAD;
  b[1] = m.head;
  b[2] = m.state;
  b[3] = PAIR_VERSION;
  b.writeUInt32BE(m.id >>> 0, 4);
  Buffer.from(m.nodeId, 'hex').copy(b, 8, 0, 8);
  b[16] = m.priority;
  b[17] = m.preempt ? 1 : 0;
  b.writeUInt16BE(data.length, 18);
  b.writeUInt32BE(m.epoch >>> 0, 20);
  b.writeBigUInt64BE(m.seq, 24);
  data.copy(b, PAIR_HEADER_BYTES);
  const end = PAIR_HEADER_BYTES + data.length;
  createHmac('sha256', secret).update(b.subarray(0, end)).digest().copy(b, end);
  return b;
}

/** Checks the frame head, version, length and tag, then parses. Throws PairDropError. */
export function decodePairMessage(b: Buffer, secret: Buffer): PairMessage {
  if (b.length < PAIR_HEADER_BYTES + PAIR_TAG_BYTES) throw new PairDropError('short', `datagram of ${b.length} bytes is shorter than a header and a tag`);
  if (b[0] !== FRAME_HEAD) throw new PairDropError('frame-head', `frame head 0x${b[0].toString(16)} is not 0xff`);
  if (b[3] !== PAIR_VERSION) throw new PairDropError('version', `pair protocol version ${b[3]} is not ${PAIR_VERSION}`);
  const n = b.readUInt16BE(18);
  // Two faults under one reason: the message names the one found, so a log reader is not sent hunting a mismatch that is not there.
  if (n > MAX_PAIR_DATA_BYTES) throw new PairDropError('short', `data length ${n} is over ${MAX_PAIR_DATA_BYTES}, the most a pair datagram may carry`);
  if (b.length !== PAIR_HEADER_BYTES + n + PAIR_TAG_BYTES) throw new PairDropError('short', `datagram length ${b.length} does not match its data length ${n} (a header of ${PAIR_HEADER_BYTES}, the data and a tag of ${PAIR_TAG_BYTES} make ${PAIR_HEADER_BYTES + n + PAIR_TAG_BYTES})`);
  const end = PAIR_HEADER_BYTES + n;
  const tag = createHmac('sha256', secret).update(b.subarray(0, end)).digest();
  if (!timingSafeEqual(tag, b.subarray(end))) throw new PairDropError('tag', 'the tag does not match: another secret, or a forged or damaged datagram');
  if (!HEADS.has(b[1]) || !STATES.has(b[2])) throw new PairDropError('malformed', `unknown head 0x${b[1].toString(16)} or state ${b[2]}`);
  let data: unknown;
  try {
    data = n === 0 ? {} : packr.unpack(b.subarray(PAIR_HEADER_BYTES, end));
  } catch {
    throw new PairDropError('malformed', 'the data is not msgpack');
  }
  if (data === null || typeof data !== 'object' || Object.getPrototypeOf(data) !== Object.prototype) throw new PairDropError('malformed', 'the data is not a map');
  return {
    head: b[1] as HeadValue,
    state: b[2] as AsStateValue,
    id: b.readUInt32BE(4),
    nodeId: b.subarray(8, 16).toString('hex'),
    priority: b[16],
    preempt: (b[17] & 1) === 1,
    epoch: b.readUInt32BE(20),
    seq: b.readBigUInt64BE(24),
    data: sanitize(data as Record<string, unknown>),
  };
}

function sanitize(d: Record<string, unknown>): PairData {
  const out: PairData = {};
  if (d.token instanceof Uint8Array && d.token.length >= 4 && d.token.length <= 32) out.token = Buffer.from(d.token);
  if (d.role === AsState.ACTIVE || d.role === AsState.STANDBY) out.role = d.role;
  const c = d.client as { host?: unknown; port?: unknown } | undefined;
  if (c && typeof c.host === 'string' && c.host.length > 0 && c.host.length <= 253 && Number.isInteger(c.port) && (c.port as number) > 0 && (c.port as number) < 65536) {
    out.client = { host: c.host, port: c.port as number };
  }
  return out;
}
