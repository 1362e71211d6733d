import { describe, expect, it } from 'vitest';
import {
  BadExtensionError,
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  HEADER_SIZE,
  MAX_EXTENSION_BYTES,
  OFFSET,
  Serialization,
  VERSION_EXTENDED,
  bodyOffset,
  decodeBodyAt,
  encodeBody,
  encodeExtendedFrame,
  encodeExtension,
  readMetadata,
  stripExtension,
  validTraceparent,
} from '../../src/protocol/index.js';

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const FLAGS = FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK;

function frameWith(block: Buffer, body = encodeBody({ a: 1 })): Buffer {
  const f = encodeExtendedFrame(FLAGS, 3, 7, 101, 500, {}, body);
  // Replace the empty block with the given raw bytes.
  const out = Buffer.concat([f.subarray(0, HEADER_SIZE), block, body]);
  out.writeUInt32BE(block.length + body.length, OFFSET.bodyLength);
  return out;
}

describe('the version-2 extension block', () => {
  it('round-trips routing key and trace context, and the body still decodes after the block', () => {
    const body = encodeBody({ city: 'Beijing' });
    const f = encodeExtendedFrame(FLAGS, 3, 7, 101, 500, { routingKey: Buffer.from('user-42'), traceparent: TP, tracestate: 'k=v' }, body);
    expect(f[OFFSET.version]).toBe(VERSION_EXTENDED);
    expect(f.readUInt32BE(OFFSET.bodyLength)).toBe(f.length - HEADER_SIZE);
    const meta = readMetadata(f, 0, f.length);
    expect(meta?.routingKey?.toString()).toBe('user-42');
    expect(meta?.traceparent).toBe(TP);
    expect(meta?.tracestate).toBe('k=v');
    expect(bodyOffset(f, 0, f.length)).toBe(f.length - body.length);
    expect(decodeBodyAt(f, 0, f.length)).toEqual({ city: 'Beijing' });
  });

  it('matches the hex example in docs/protocol.md byte for byte', () => {
    const f = encodeExtendedFrame(FLAGS, 0, 1, 101, 1000, { routingKey: Buffer.from('user-42') }, encodeBody('hi'));
    expect(f.toString('hex')).toBe(['534202c1', '0000', '0000', '00000001', '00000065', '000003e8', '0000000e', '0009', '0107', '757365722d3432', 'a26869'].join(''));
  });

  it('reads version-1 frames as having no metadata', () => {
    const f = encodeExtendedFrame(FLAGS, 0, 1, 1, 0, {}, encodeBody(1));
    const v1 = stripExtension(f, 0, f.length);
    expect(readMetadata(v1, 0, v1.length)).toBeUndefined();
    expect(bodyOffset(v1, 0, v1.length)).toBe(HEADER_SIZE);
  });

  it('strips the block for a version-1 peer, keeping every header field and the body', () => {
    const body = encodeBody({ x: [1, 2, 3] });
    const f = encodeExtendedFrame(FLAGS, 9, 77, 4242, 1234, { routingKey: Buffer.from('k'), traceparent: TP }, body);
    const v1 = stripExtension(Buffer.concat([Buffer.alloc(5), f]), 5, f.length);
    expect(v1[OFFSET.version]).toBe(1);
    expect(v1.subarray(3, 20)).toEqual(f.subarray(3, 20));
    expect(v1.readUInt32BE(OFFSET.bodyLength)).toBe(body.length);
    expect(v1.subarray(HEADER_SIZE)).toEqual(body);
  });

  it('skips unknown optional entries and refuses unknown critical ones with SB_ERR_UNKNOWN_EXTENSION', () => {
    const optional = frameWith(Buffer.from([0x00, 0x05, 0x40, 0x03, 0xaa, 0xbb, 0xcc]));
    expect(readMetadata(optional, 0, optional.length)).toEqual({});
    expect(decodeBodyAt(optional, 0, optional.length)).toEqual({ a: 1 });
    const critical = frameWith(Buffer.from([0x00, 0x03, 0x80, 0x01, 0xaa]));
    expect(() => readMetadata(critical, 0, critical.length)).toThrow(expect.objectContaining({ code: 'SB_ERR_UNKNOWN_EXTENSION', status: 10 }));
  });

  it.each([
    ['a block longer than the frame', Buffer.from([0x00, 0x40, 0x01, 0x01, 0x61]), /claims 64 bytes/],
    ['an entry cut short', Buffer.from([0x00, 0x01, 0x01]), /cut short/],
    ['an entry overrunning the block', Buffer.from([0x00, 0x03, 0x01, 0x05, 0x61]), /block ends before/],
    ['an empty routing key', Buffer.from([0x00, 0x02, 0x01, 0x00]), /routing key is empty/],
    ['a repeated entry', Buffer.from([0x00, 0x06, 0x01, 0x01, 0x61, 0x01, 0x01, 0x62]), /appears twice/],
  ])('refuses %s with SB_ERR_BAD_EXTENSION', (_name, block, message) => {
    const f = frameWith(block, Buffer.alloc(0));
    expect(() => readMetadata(f, 0, f.length)).toThrow(BadExtensionError);
    expect(() => readMetadata(f, 0, f.length)).toThrow(message);
  });

  it('refuses a block over MAX_EXTENSION_BYTES and a version-2 frame too short for the length field', () => {
    const big = Buffer.alloc(2 + MAX_EXTENSION_BYTES + 1);
    big.writeUInt16BE(MAX_EXTENSION_BYTES + 1, 0);
    const f = frameWith(big);
    expect(() => readMetadata(f, 0, f.length)).toThrow(/more than the 1024 allowed/);
    const short = frameWith(Buffer.from([0x00]), Buffer.alloc(0));
    expect(() => bodyOffset(short, 0, short.length)).toThrow(/2-byte extension length/);
  });

  it('drops a traceparent that is not valid W3C, with its tracestate, and goes on', () => {
    for (const bad of ['00-00000000000000000000000000000000-00f067aa0ba902b7-01', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', `${TP}-extra`, 'nope']) {
      expect(validTraceparent(bad)).toBe(false);
      const f = encodeExtendedFrame(FLAGS, 0, 1, 1, 0, { traceparent: bad, tracestate: 'a=b', routingKey: Buffer.from('k') }, Buffer.alloc(0));
      expect(readMetadata(f, 0, f.length)).toEqual({ routingKey: Buffer.from('k'), traceparent: undefined, tracestate: undefined });
    }
    expect(validTraceparent(TP)).toBe(true);
    expect(validTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future')).toBe(true);
  });

  it('drops a tracestate sent without a traceparent, or holding bytes outside printable ASCII; the traceparent stays', () => {
    // Built by hand: the encoder itself never writes a tracestate without a traceparent.
    const entry = (type: number, v: Buffer): Buffer => Buffer.concat([Buffer.from([type, v.length]), v]);
    const block = (...entries: Buffer[]): Buffer => {
      const size = entries.reduce((n, e) => n + e.length, 0);
      return Buffer.concat([Buffer.from([size >> 8, size & 0xff]), ...entries]);
    };
    const alone = frameWith(block(entry(0x03, Buffer.from('a=1'))));
    expect(readMetadata(alone, 0, alone.length)).toEqual({ tracestate: undefined });
    const binary = frameWith(block(entry(0x02, Buffer.from(TP)), entry(0x03, Buffer.from([0x61, 0x3d, 0xff, 0x00, 0x0a]))));
    expect(readMetadata(binary, 0, binary.length)).toEqual({ traceparent: TP, tracestate: undefined });
    const good = frameWith(block(entry(0x02, Buffer.from(TP)), entry(0x03, Buffer.from('congo=t61rcWkgMzE, rojo=00f067aa0ba902b7'))));
    expect(readMetadata(good, 0, good.length)).toEqual({ traceparent: TP, tracestate: 'congo=t61rcWkgMzE, rojo=00f067aa0ba902b7' });
  });

  it('refuses to encode an entry that does not fit one byte of length', () => {
    expect(() => encodeExtension({ routingKey: Buffer.alloc(256) })).toThrow(/1 to 255 bytes/);
    expect(() => encodeExtension({ routingKey: Buffer.alloc(0) })).toThrow(/1 to 255 bytes/);
  });
});
