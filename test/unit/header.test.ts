import { describe, expect, it } from 'vitest';
import {
  FLAG_EVENT,
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  HEADER_SIZE,
  MAGIC,
  Serialization,
  VERSION,
  budgetOf,
  decodeHeader,
  eventKindOf,
  isEvent,
  isRequest,
  isTwoWay,
  poolTypeOf,
  requestIdOf,
  serializationOf,
  serviceKeyOf,
  setBudget,
  setRequestId,
  statusOf,
  writeHeader,
  type FrameHeader,
} from '../../src/protocol/header.js';

function frameOf(h: FrameHeader): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE);
  writeHeader(buf, h);
  return buf;
}

const typical: FrameHeader = {
  flags: FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK,
  status: 0,
  eventKind: 0,
  poolType: 7,
  requestId: 42,
  serviceKey: 101,
  budgetMs: 1500,
  bodyLength: 10,
};

const maxed: FrameHeader = {
  flags: 0xff,
  status: 0xff,
  eventKind: 0xff,
  poolType: 0xffff,
  requestId: 0xffffffff,
  serviceKey: 0xffffffff,
  budgetMs: 0xffffffff,
  bodyLength: 0xffffffff,
};

const zeroed: FrameHeader = { flags: 0, status: 0, eventKind: 0, poolType: 0, requestId: 0, serviceKey: 0, budgetMs: 0, bodyLength: 0 };

describe('header constants', () => {
  it('HEADER_SIZE is 24, magic is "SB", version is 1', () => {
    expect(HEADER_SIZE).toBe(24);
    expect(MAGIC).toBe(0x5342);
    expect(VERSION).toBe(1);
  });
});

describe('writeHeader / decodeHeader', () => {
  it.each([
    ['typical', typical],
    ['max values', maxed],
    ['all zero', zeroed],
  ])('round-trips every field (%s)', (_label, h) => {
    expect(decodeHeader(frameOf(h))).toEqual(h);
  });

  it('writes magic and version on every frame', () => {
    const f = frameOf(zeroed);
    expect(f.readUInt16BE(0)).toBe(MAGIC);
    expect(f[2]).toBe(VERSION);
  });

  it('writes at an offset without touching the bytes before it', () => {
    const buf = Buffer.alloc(HEADER_SIZE + 5, 0xaa);
    writeHeader(buf, typical, 5);
    expect(buf.subarray(0, 5).equals(Buffer.alloc(5, 0xaa))).toBe(true);
    expect(decodeHeader(buf.subarray(5))).toEqual(typical);
  });

  it('lays out one known frame byte for byte (big-endian)', () => {
    const f = frameOf({
      flags: FLAG_REQUEST | FLAG_TWO_WAY | FLAG_EVENT | Serialization.MSGPACK, // 0xe1
      status: 50, // 0x32
      eventKind: 3,
      poolType: 0x0102,
      requestId: 0x0a0b0c0d,
      serviceKey: 101, // 0x65
      budgetMs: 2000, // 0x7d0
      bodyLength: 3,
    });
    const expected =
      '5342' + // 0-1   magic
      '01' + //   2     version
      'e1' + //   3     flags
      '32' + //   4     status
      '03' + //   5     event kind
      '0102' + // 6-7   pool type
      '0a0b0c0d' + // 8-11  request id
      '00000065' + // 12-15 service key
      '000007d0' + // 16-19 budget
      '00000003'; //  20-23 body length
    expect(f.toString('hex')).toBe(expected);
  });
});

describe('single-field accessors', () => {
  it.each([
    ['typical', typical],
    ['max values', maxed],
    ['all zero', zeroed],
  ])('read the same bytes decodeHeader reads (%s)', (_label, h) => {
    const f = frameOf(h);
    const d = decodeHeader(f);
    expect(requestIdOf(f)).toBe(d.requestId);
    expect(serviceKeyOf(f)).toBe(d.serviceKey);
    expect(poolTypeOf(f)).toBe(d.poolType);
    expect(budgetOf(f)).toBe(d.budgetMs);
    expect(statusOf(f)).toBe(d.status);
    expect(eventKindOf(f)).toBe(d.eventKind);
    expect(serializationOf(f)).toBe(d.flags & 0x1f);
    expect(isRequest(f)).toBe((d.flags & 0x80) !== 0);
    expect(isTwoWay(f)).toBe((d.flags & 0x40) !== 0);
    expect(isEvent(f)).toBe((d.flags & 0x20) !== 0);
  });

  it('decode each flag bit on its own', () => {
    const f = frameOf({ ...zeroed, flags: FLAG_REQUEST });
    expect([isRequest(f), isTwoWay(f), isEvent(f), serializationOf(f)]).toEqual([true, false, false, 0]);
    f[3] = FLAG_TWO_WAY;
    expect([isRequest(f), isTwoWay(f), isEvent(f), serializationOf(f)]).toEqual([false, true, false, 0]);
    f[3] = FLAG_EVENT;
    expect([isRequest(f), isTwoWay(f), isEvent(f), serializationOf(f)]).toEqual([false, false, true, 0]);
    f[3] = Serialization.MSGPACK;
    expect([isRequest(f), isTwoWay(f), isEvent(f), serializationOf(f)]).toEqual([false, false, false, 1]);
  });

  it('setRequestId rewrites bytes 8-11 only', () => {
    const f = frameOf(typical);
    const before = Buffer.from(f);
    setRequestId(f, 0xffffffff);
    expect(requestIdOf(f)).toBe(0xffffffff);
    expect(f.subarray(8, 12).toString('hex')).toBe('ffffffff');
    expect(Buffer.concat([f.subarray(0, 8), f.subarray(12)]).equals(Buffer.concat([before.subarray(0, 8), before.subarray(12)]))).toBe(true);
    setRequestId(f, 7);
    expect(decodeHeader(f)).toEqual({ ...typical, requestId: 7 });
  });

  it('setBudget rewrites bytes 16-19 only', () => {
    const f = frameOf(typical);
    setBudget(f, 0xffffffff);
    expect(budgetOf(f)).toBe(0xffffffff);
    expect(f.subarray(16, 20).toString('hex')).toBe('ffffffff');
    setBudget(f, 0);
    expect(decodeHeader(f)).toEqual({ ...typical, budgetMs: 0 });
  });
});
