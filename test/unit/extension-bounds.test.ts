import { describe, expect, it } from 'vitest';
import {
  BadExtensionError,
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  HEADER_SIZE,
  MAX_EXTENSION_BYTES,
  OFFSET,
  Serialization,
  encodeBody,
  encodeExtendedFrame,
  encodeExtension,
  extensionBytes,
  readMetadata,
  validTraceparent,
} from '../../src/protocol/index.js';

// Edges of the version-2 extension block: exact limits, repeated entries, trace-context validity.

const FLAGS = FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK;
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

/** A version-2 request whose body section is `afterHeader` verbatim (extension length field included). */
function v2(afterHeader: Buffer): Buffer {
  const head = encodeExtendedFrame(FLAGS, 0, 1, 1, 0, {}, Buffer.alloc(0)).subarray(0, HEADER_SIZE);
  const f = Buffer.concat([head, afterHeader]);
  f.writeUInt32BE(afterHeader.length, OFFSET.bodyLength);
  return f;
}

/** An extension block (2-byte length, then the entries) from [type, value] pairs. */
function block(...entries: [number, Buffer | string][]): Buffer {
  const parts = entries.map(([t, v]) => {
    const b = typeof v === 'string' ? Buffer.from(v, 'latin1') : v;
    return Buffer.concat([Buffer.from([t, b.length]), b]);
  });
  const body = Buffer.concat(parts);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  return Buffer.concat([len, body]);
}

const meta = (f: Buffer) => readMetadata(f, 0, f.length);

function refused(fn: () => unknown): BadExtensionError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BadExtensionError);
    return err as BadExtensionError;
  }
  throw new Error('expected a BadExtensionError');
}

describe('extension block: length bounds', () => {
  it('a frame of exactly header + 2 bytes with an empty block is valid, with no metadata', () => {
    const f = v2(Buffer.from([0, 0]));
    expect(f.length).toBe(HEADER_SIZE + 2);
    expect(extensionBytes(f, 0, f.length)).toBe(2);
    expect(meta(f)).toEqual({});
  });

  it('a frame one byte short of the extension length is refused with SB_ERR_BAD_EXTENSION', () => {
    const f = v2(Buffer.from([0]));
    const err = refused(() => extensionBytes(f, 0, f.length));
    expect(err.code).toBe('SB_ERR_BAD_EXTENSION');
    expect(err.status).toBe(refused(() => meta(v2(Buffer.alloc(0)))).status);
  });

  it('a block of exactly MAX_EXTENSION_BYTES is accepted; one more byte is refused', () => {
    const entries: [number, Buffer][] = [];
    // 0x10 is an unknown non-critical type: skipped, so the block may be filled with it.
    let left = MAX_EXTENSION_BYTES;
    while (left > 0) {
      const n = Math.min(255, left - 2);
      entries.push([0x10, Buffer.alloc(n, 7)]);
      left -= 2 + n;
    }
    const max = block(...entries);
    expect(max.readUInt16BE(0)).toBe(MAX_EXTENSION_BYTES);
    const ok = v2(Buffer.concat([max, encodeBody(1)]));
    expect(extensionBytes(ok, 0, ok.length)).toBe(2 + MAX_EXTENSION_BYTES);
    expect(meta(ok)).toEqual({});

    const over = Buffer.concat([max, Buffer.from([0])]);
    over.writeUInt16BE(MAX_EXTENSION_BYTES + 1);
    const bad = v2(over);
    const err = refused(() => meta(bad));
    expect(err.code).toBe('SB_ERR_BAD_EXTENSION');
    expect(err.message).toContain(`${MAX_EXTENSION_BYTES + 1} bytes`);
  });

  it('a block that ends exactly at the end of the frame is accepted; one byte past it is refused', () => {
    const b = block([0x01, 'key']);
    const exact = v2(b);
    expect(exact.length).toBe(HEADER_SIZE + 2 + b.readUInt16BE(0));
    expect(meta(exact)?.routingKey?.toString()).toBe('key');

    const long = Buffer.from(b);
    long.writeUInt16BE(b.readUInt16BE(0) + 1);
    const f = v2(long);
    const err = refused(() => meta(f));
    expect(err.code).toBe('SB_ERR_BAD_EXTENSION');
    expect(err.message).toContain(`claims ${b.readUInt16BE(0) + 1} bytes but the frame has ${b.readUInt16BE(0)} after its length`);
  });

  it('the length check uses the frame length given, not the buffer (a frame inside a larger chunk)', () => {
    const f = v2(block([0x01, 'k']));
    const chunk = Buffer.concat([Buffer.alloc(5, 0xee), f, Buffer.alloc(5, 0xee)]);
    expect(readMetadata(chunk, 5, f.length)?.routingKey?.toString()).toBe('k');
    // The same frame said to be one byte shorter no longer holds its block.
    refused(() => readMetadata(chunk, 5, f.length - 1));
  });
});

describe('extension block: repeated entries', () => {
  it.each([0x01, 0x02, 0x03])('entry 0x0%i twice is refused', (type) => {
    const f = v2(block([type, 'a'], [type, 'b']));
    const err = refused(() => meta(f));
    expect(err.code).toBe('SB_ERR_BAD_EXTENSION');
    expect(err.message).toContain(`0x${type.toString(16)} appears twice`);
  });

  it.each([0x00, 0x04, 0x21, 0x7f])('unknown non-critical entry 0x%s may repeat: it is skipped', (type) => {
    const f = v2(block([type, 'a'], [type, 'b'], [0x01, 'rk']));
    expect(meta(f)).toEqual({ routingKey: Buffer.from('rk') });
  });

  it('an unknown critical entry is refused with SB_ERR_UNKNOWN_EXTENSION naming its type', () => {
    const f = v2(block([0x9a, 'x']));
    const err = refused(() => meta(f));
    expect(err.code).toBe('SB_ERR_UNKNOWN_EXTENSION');
    expect(err.message).toContain('0x9a is critical');
  });
});

describe('trace context', () => {
  it('an all-zero trace id or parent id is invalid', () => {
    expect(validTraceparent(`00-${'0'.repeat(32)}-${PARENT}-01`)).toBe(false);
    expect(validTraceparent(`00-${TRACE}-${'0'.repeat(16)}-01`)).toBe(false);
  });

  it('ids that merely start or end with zeros are valid', () => {
    expect(validTraceparent(`00-0${TRACE.slice(1)}-${PARENT}-01`)).toBe(true);
    expect(validTraceparent(`00-${TRACE.slice(0, 31)}0-${PARENT}-01`)).toBe(true);
    expect(validTraceparent(`00-${TRACE}-${PARENT.slice(0, 15)}0-01`)).toBe(true);
    expect(validTraceparent(`00-${TRACE}-1${PARENT.slice(1)}-01`)).toBe(true);
    expect(validTraceparent(`00-00${TRACE.slice(2, 30)}00-0${PARENT.slice(1, 15)}0-01`)).toBe(true);
  });

  it('an id with a single non-zero digit is valid', () => {
    expect(validTraceparent(`00-${'0'.repeat(31)}1-${PARENT}-01`)).toBe(true);
    expect(validTraceparent(`00-${TRACE}-1${'0'.repeat(15)}-01`)).toBe(true);
  });

  it('tracestate without a traceparent is not encoded', () => {
    const b = encodeExtension({ tracestate: 'vendor=1' });
    expect(b.readUInt16BE(0)).toBe(0);
    expect(b.length).toBe(2);
    const withKey = encodeExtension({ routingKey: Buffer.from('k'), tracestate: 'vendor=1' });
    expect(withKey.readUInt16BE(0)).toBe(3);
  });

  it('tracestate is encoded with its traceparent and read back', () => {
    const tp = `00-${TRACE}-${PARENT}-01`;
    const f = encodeExtendedFrame(FLAGS, 0, 1, 1, 0, { traceparent: tp, tracestate: 'a=b' }, encodeBody(1));
    expect(meta(f)).toEqual({ traceparent: tp, tracestate: 'a=b' });
  });
});

describe('encodeExtension: value sizes', () => {
  it('a 255-byte value fits its entry', () => {
    const b = encodeExtension({ routingKey: Buffer.alloc(255, 1) });
    expect(b.readUInt16BE(0)).toBe(257);
    expect(b[3]).toBe(255);
  });

  it('a 256-byte value does not, and the error names the entry and the size', () => {
    const err = refused(() => encodeExtension({ routingKey: Buffer.alloc(256, 1) }));
    expect(err.message).toContain('0x1 must be 1 to 255 bytes, got 256');
    const err2 = refused(() => encodeExtension({ traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'x'.repeat(256) }));
    expect(err2.message).toContain('0x3 must be 1 to 255 bytes, got 256');
  });
});

describe('traceparent shape', () => {
  const tp = `00-${TRACE}-${PARENT}-01`;
  it('is refused with bytes before or after it, upper-case hex, or a field of the wrong width', () => {
    for (const bad of [`x${tp}`, ` ${tp}`, `${tp}x`, `${tp} `, tp.toUpperCase(), `0-${TRACE}-${PARENT}-01`, `00-${TRACE.slice(1)}-${PARENT}-01`, `00-${TRACE}-${PARENT.slice(1)}-01`, `00-${TRACE}-${PARENT}-1`, `zz-${TRACE}-${PARENT}-01`]) {
      expect(validTraceparent(bad), bad).toBe(false);
    }
  });

  it('a later version may carry more fields after the flags; version 00 may not; version ff is refused', () => {
    expect(validTraceparent(`01-${TRACE}-${PARENT}-01-more-fields`)).toBe(true);
    expect(validTraceparent(`01-${TRACE}-${PARENT}-01`)).toBe(true);
    expect(validTraceparent(`00-${TRACE}-${PARENT}-01-more`)).toBe(false);
    expect(validTraceparent(`ff-${TRACE}-${PARENT}-01`)).toBe(false);
  });
});
