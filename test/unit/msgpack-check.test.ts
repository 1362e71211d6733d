import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeBody, decodeBodyAt, encodeBody, encodeFrameRaw } from '../../src/protocol/codec.js';
import { BodyDecodeError } from '../../src/protocol/errors.js';
import { FLAG_REQUEST, FLAG_TWO_WAY, HEADER_SIZE } from '../../src/protocol/header.js';
import { nonStandardReason } from '../../src/protocol/msgpack-check.js';

/** A request frame with serialization `ser` carrying these exact body bytes. */
const frame = (body: Buffer | string, ser = 1): Buffer =>
  encodeFrameRaw({ flags: FLAG_REQUEST | FLAG_TWO_WAY | ser, requestId: 1, serviceKey: 1 }, typeof body === 'string' ? Buffer.from(body.replace(/\s/g, ''), 'hex') : body);

const decodeHex = (hex: string): unknown => decodeBody(frame(hex));

/** The BodyDecodeError `fn` throws. */
function badBody(fn: () => unknown): BodyDecodeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BodyDecodeError);
    expect((err as BodyDecodeError).code).toBe('SB_ERR_BAD_BODY');
    return err as BodyDecodeError;
  }
  throw new Error('expected a BodyDecodeError, the body was accepted');
}

/** The message a body given in hex is refused with. */
const refusedFor = (hex: string): string => badBody(() => decodeHex(hex)).message;

describe('standard msgpack passes', () => {
  it.each([
    ['positive fixint', '7f', 127],
    ['negative fixint', 'e0', -32],
    ['nil', 'c0', null],
    ['false', 'c2', false],
    ['true', 'c3', true],
    ['uint8', 'cc ff', 255],
    ['uint16', 'cd ffff', 65535],
    ['uint32', 'ce ffffffff', 4294967295],
    ['int8', 'd0 80', -128],
    ['int16', 'd1 8000', -32768],
    ['int32', 'd2 80000000', -2147483648],
    ['float32', 'ca 3fc00000', 1.5],
    ['float64', 'cb 3ff8000000000000', 1.5],
    ['fixstr', 'a3 616263', 'abc'],
    ['str8', 'd9 03 616263', 'abc'],
    ['str16', 'da 0003 616263', 'abc'],
    ['str32', 'db 00000003 616263', 'abc'],
    ['fixarray', '93 01 02 03', [1, 2, 3]],
    ['array16', 'dc 0002 01 02', [1, 2]],
    ['array32', 'dd 00000002 01 02', [1, 2]],
    ['fixmap', '82 a161 01 a162 02', { a: 1, b: 2 }],
    ['map16', 'de 0001 a161 01', { a: 1 }],
    ['map32', 'df 00000001 a161 01', { a: 1 }],
  ])('%s', (_, hex, want) => {
    expect(decodeHex(hex)).toEqual(want);
  });

  it.each([
    ['bin8', 'c4 02 0102'],
    ['bin16', 'c5 0002 0102'],
    ['bin32', 'c6 00000002 0102'],
  ])('%s', (_, hex) => {
    expect(Buffer.from(decodeHex(hex) as Uint8Array)).toEqual(Buffer.from([1, 2]));
  });

  it('what a plain Packr writes for a rich value passes and round-trips', () => {
    const value = { s: 'x'.repeat(300), n: [0, -1, 1.25, 2 ** 40, -(2 ** 40)], m: { deep: [[{ t: true, f: false, z: null }]] }, b: Buffer.from([0xc1, 0xd4]) };
    const bytes = new Packr({ useRecords: false }).pack(value);
    const got = decodeBody(frame(bytes)) as typeof value;
    expect({ ...got, b: Buffer.from(got.b) }).toEqual(value);
  });

  it('an empty body is undefined', () => {
    expect(decodeBody(frame(Buffer.alloc(0)))).toBeUndefined();
  });

  it('a raw body (serialization 0) is handed back as bytes, unchecked', () => {
    expect(decodeBody(frame('c1 d4 00 00', 0))).toEqual(Buffer.from([0xc1, 0xd4, 0, 0]));
  });
});

describe('the timestamp extension (type -1) is a Date', () => {
  it('fixext4 (0xd6 ff): seconds', () => {
    expect(decodeHex('d6 ff 00000001')).toEqual(new Date(1000));
  });

  it('fixext8 (0xd7 ff): nanoseconds and seconds', () => {
    // nanoseconds 1_000_000 (1 ms) in the top 30 bits, seconds 2 in the low 34.
    const nsec = 1_000_000 * 4;
    const hex = `d7 ff ${nsec.toString(16).padStart(8, '0')} 00000002`;
    expect(decodeHex(hex)).toEqual(new Date(2001));
  });

  it('ext8 length 12 (0xc7 0c ff): nanoseconds and 64-bit seconds', () => {
    expect(decodeHex('c7 0c ff 00000000 0000000000000003')).toEqual(new Date(3000));
  });

  it.each([
    ['fixext4', 'd6ff c1d4d6c1', new Date(0xc1d4d6c1 * 1000)],
    ['fixext8', 'd7ff 00000000 00c1d4d6', new Date(0xc1d4d6 * 1000)],
    ['ext8', 'c70cff 00000000 0000000000c1d4d6', new Date(0xc1d4d6 * 1000)],
  ])('a %s timestamp whose payload holds 0xc1 and markers, followed by more', (_, ts, date) => {
    expect(decodeHex(`92 ${ts} 01`)).toEqual([date, 1]);
  });

  it('inside arrays and maps', () => {
    expect(decodeHex('82 a161 91 d6ff00000001 a162 81 a163 c70cff000000000000000000000002')).toEqual({ a: [new Date(1000)], b: { c: new Date(2000) } });
  });

  it('encodeBody writes a Date as the timestamp extension', () => {
    const b = encodeBody(new Date(5000));
    expect(b.toString('hex')).toBe('d6ff00000005');
    expect(decodeBody(frame(b))).toEqual(new Date(5000));
  });

  it.each([
    ['fixext1', 'd4 ff 00'],
    ['fixext2', 'd5 ff 0000'],
    ['fixext16', 'd8 ff 00000000000000000000000000000000'],
    ['ext8 of length 8', 'c7 08 ff 0000000000000000'],
  ])('type -1 in a size timestamps do not use (%s) is refused', (_, hex) => {
    expect(refusedFor(hex)).toContain('a timestamp is fixext 4, fixext 8 or ext 8 of 12 bytes');
  });
});

describe("msgpackr's own extensions are refused", () => {
  // What msgpackr's encoder writes for each with moreTypes (and friends) on.
  const rich = new Packr({ moreTypes: true, useRecords: false, useBigIntExtension: true } as ConstructorParameters<typeof Packr>[0]);

  it.each([
    ['undefined (0x00)', 'd4 00 00', 0],
    ['undefined (0x00) in a map', '81 a161 d40000', 0],
    ['Error (0x65)', 'd4 65 00 93 a5 4572726f72 a1 78 c0', 0x65],
    ['RegExp (0x78)', 'd4 78 00 92 a2 6162 a1 67', 0x78],
    ['Set (0x73)', 'd4 73 00 91 01', 0x73],
    ['typed array (0x74)', 'c7 03 74 03 0100', 0x74],
    ['BigInt (0x42)', 'd4 42 01', 0x42],
    ['a tail of a bundle (0x62)', 'de0001 d662 00000008 c120 c129 a0 d949 ' + '61'.repeat(32) + '62'.repeat(41), 0x62],
  ])('%s', (_, hex, type) => {
    const msg = refusedFor(hex);
    expect(msg).toContain(`extension type ${type} is not accepted`);
  });

  it.each([
    ['undefined', [undefined]],
    ['Error', new Error('boom')],
    ['RegExp', /a+b/gi],
    ['Set', new Set([1, 2])],
    ['Int16Array', new Int16Array([1, -1])],
    ['Float64Array', new Float64Array([0.5])],
    ['big BigInt', 2n ** 70n],
  ])("what msgpackr's encoder writes for %s", (_, value) => {
    const err = badBody(() => decodeBody(frame(rich.pack(value))));
    expect(err.message).toMatch(/^request body is not standard msgpack: extension type -?\d+ is not accepted/);
  });

  it('an extension deep inside arrays and maps', () => {
    expect(refusedFor('91 81 a161 92 01 91 d47300 90')).toContain('extension type 115');
  });

  it.each([
    ['array16', 'dc 0002 01 d40000'],
    ['array32', 'dd 00000002 01 d40000'],
    ['map16', 'de 0002 a161 01 a162 d40000'],
    ['map32', 'df 00000002 a161 01 a162 d40000'],
    ['a map key position', '82 a161 01 a162 91 d40000'],
  ])('an extension as the last item of a %s', (_, hex) => {
    expect(refusedFor(hex)).toContain('extension type 0');
  });

  it.each([
    ['fixext4', 'd6ff 00000001'],
    ['fixext8', 'd7ff 0000000000000001'],
    ['ext8', 'c70cff 000000000000000000000001'],
  ])('an extension after a %s timestamp', (_, ts) => {
    expect(refusedFor(`92 ${ts} d40000`)).toContain('extension type 0');
  });

  it('an extension after a string holding extension markers', () => {
    expect(refusedFor('92 a4 d4c7d6c1 d4 78 00 92 a0 a0')).toContain('extension type 120');
  });

  it('the refusal keeps the reason as its cause', () => {
    const err = badBody(() => decodeHex('d4 73 00 90'));
    expect((err.cause as Error).message).toContain('extension type 115');
  });
});

describe('0xc1 (never used)', () => {
  it.each([
    ['alone', 'c1'],
    ['in an array', '93 01 c1 02'],
    ['as a map value', '81 a161 c1'],
    ['after a string that holds 0xc1', '92 a2 c1c1 c1'],
  ])('as a type byte, %s, is refused', (_, hex) => {
    expect(refusedFor(hex)).toContain('0xc1 is not a msgpack type');
  });

  // Each string or bin is followed by another item, so the walk must skip its bytes to reach it.
  it.each([
    ['in a fixstr', '92 a3 41c142 01', ['A\ufffdB', 1]],
    ['in a str8', '92 d9 02 c1c1 01', ['\ufffd\ufffd', 1]],
    ['in a str16', '92 da 0002 c1c1 01', ['\ufffd\ufffd', 1]],
    ['in a str32', '92 db 00000002 c1c1 01', ['\ufffd\ufffd', 1]],
  ])('inside a string passes (%s)', (_, hex, want) => {
    expect(decodeHex(hex)).toEqual(want);
  });

  it('inside a bin passes (bin8, bin16, bin32)', () => {
    const got = decodeHex('94 c4 03 c1d400 c5 0001 c1 c6 00000002 c1c1 01') as [Uint8Array, Uint8Array, Uint8Array, number];
    expect([got[0], got[1], got[2]].map((b) => Buffer.from(b).toString('hex'))).toEqual(['c1d400', 'c1', 'c1c1']);
    expect(got[3]).toBe(1);
  });

  it('inside a float or an integer passes', () => {
    expect(decodeHex('92 cc c1 cd c1c1')).toEqual([0xc1, 0xc1c1]);
    expect(decodeHex('cb c1 c0 00 00 00 00 00 00')).toBe(-(2 ** 29));
  });
});

describe('extension markers inside strings pass', () => {
  it.each(['c7', 'c8', 'c9', 'd4', 'd5', 'd6', 'd7', 'd8'])('0x%s inside a string and a bin', (b) => {
    const m = parseInt(b, 16);
    const body = Buffer.from([0x93, 0xc4, 0x02, m, 0x00, 0xa3, 0x41, m, 0x42, 0x01]);
    const got = decodeBody(frame(body)) as [Uint8Array, string, number];
    expect(Buffer.from(got[0])).toEqual(Buffer.from([m, 0]));
    expect(got[1]).toHaveLength(3);
    expect(got[2]).toBe(1);
  });

  it('a timestamp after strings holding markers', () => {
    expect(decodeHex('93 a2 d6ff d9 01 c7 d6 ff 00000001')).toEqual(['\ufffd\ufffd', '\ufffd', new Date(1000)]);
  });

  it('in a map key', () => {
    expect(decodeHex('81 a2 d4c1 01')).toEqual({ '\ufffd\ufffd': 1 });
  });

  it('nested arrays and maps whose text holds marker bytes at every level (Hebrew, Arabic...)', () => {
    // UTF-8: א = d7 90, Ԁ = d4 80, ؠ = d8 a0, ǀ = c7 80, Ȁ = c8 80, ɀ = c9 80, ֆ = d6 86, Ք = d5 94.
    const v = { אב: [{ x: ['Ԁ', ['ؠ', { y: 'ǀȀɀ', z: [[['ֆՔ']]] }]] }] };
    const bytes = encodeBody(v);
    expect(nonStandardReason(bytes, 0, bytes.length)).toBeUndefined();
    expect(decodeBody(frame(bytes))).toEqual(v);
  });

  it('but an extension after them, deep down, is still found', () => {
    const bytes = Buffer.concat([Buffer.from('91 91 92 a2'.replace(/\s/g, ''), 'hex'), Buffer.from('א'), Buffer.from('d4 00 00'.replace(/\s/g, ''), 'hex')]);
    expect(nonStandardReason(bytes, 0, bytes.length)).toContain('extension type 0');
    badBody(() => decodeBody(frame(bytes)));
  });
});

describe('nonStandardReason', () => {
  /** The bytes as a Buffer that counts the indexes read from it. */
  function counted(bytes: Buffer): { buf: Buffer; reads: () => number } {
    let n = 0;
    const buf = new Proxy(bytes, {
      get(target, prop, receiver) {
        if (typeof prop === 'string' && /^\d+$/.test(prop)) n++;
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    return { buf, reads: () => n };
  }

  it('steps over string and bin contents: its reads follow the items, not the bytes', () => {
    // Markers inside contents must not matter, and must not be read: a byte scan of these
    // bodies would read every byte (its cost grew with the body, 2 ns a byte).
    const text = '\u01c0'.repeat(50_000); // c7 80 in UTF-8, 100,000 bytes
    const body = encodeBody({ text, blob: Buffer.alloc(65_536, 0xc1), n: 1 });
    const { buf, reads } = counted(body);
    expect(nonStandardReason(buf, 0, body.length)).toBeUndefined();
    expect(reads()).toBeLessThan(40);
    expect(decodeBody(frame(body))).toMatchObject({ text, n: 1 });
  });

  it('nonStandardReason walks exactly one value from start', () => {
    const buf = Buffer.from('ff c1 92 01 02 c1'.replace(/\s/g, ''), 'hex');
    expect(nonStandardReason(buf, 2, 5)).toBeUndefined();
    expect(nonStandardReason(buf, 1, 2)).toBe('0xc1 is not a msgpack type');
  });
});

describe('serialization id', () => {
  it.each([2, 3, 0x1f])('id %i is refused, even with an empty body', (ser) => {
    const err = badBody(() => decodeBody(frame(Buffer.alloc(0), ser)));
    expect(err.message).toContain(`serialization id ${ser} is not supported`);
    badBody(() => decodeBody(frame('01', ser)));
  });
});

describe('64-bit integers', () => {
  it.each([
    ['uint64 2^53', 'cf 0020000000000000', 2 ** 53],
    ['uint64 small', 'cf 0000000000000005', 5],
    ['int64 -2^53', 'd3 ffe0000000000000', -(2 ** 53)],
    ['int64 -1', 'd3 ffffffffffffffff', -1],
    ['int64 2^53 - 1', 'd3 001fffffffffffff', 2 ** 53 - 1],
  ])('%s that fits 2^53 decodes to a number', (_, hex, want) => {
    const got = decodeHex(hex);
    expect(typeof got).toBe('number');
    expect(got).toBe(want);
  });

  it.each([
    ['uint64 2^53 + 1', 'cf 0020000000000001', 2n ** 53n + 1n],
    ['uint64 max', 'cf ffffffffffffffff', 2n ** 64n - 1n],
    ['int64 -(2^53) - 1', 'd3 ffdfffffffffffff', -(2n ** 53n) - 1n],
    ['int64 min', 'd3 8000000000000000', -(2n ** 63n)],
  ])('%s beyond 2^53 decodes to a bigint', (_, hex, want) => {
    expect(decodeHex(hex)).toBe(want);
  });
});

describe('decodeBodyAt', () => {
  it('decodes a frame in the middle of a larger buffer', () => {
    const a = frame('a161');
    const b = frame('92 01 d6ff00000001');
    const c = frame('c3');
    const buf = Buffer.concat([a, b, c]);
    expect(decodeBodyAt(buf, a.length, b.length)).toEqual([1, new Date(1000)]);
    expect(decodeBodyAt(buf, 0, a.length)).toBe('a');
    expect(decodeBodyAt(buf, a.length + b.length, c.length)).toBe(true);
  });

  it('checks only its own frame: a neighbour with 0xc1 does not matter, its own does', () => {
    const good = frame('91 01');
    const bad = frame('91 c1');
    const buf = Buffer.concat([bad, good, bad]);
    expect(decodeBodyAt(buf, bad.length, good.length)).toEqual([1]);
    badBody(() => decodeBodyAt(buf, 0, bad.length));
  });

  it('truncated or trailing bytes are refused', () => {
    expect(badBody(() => decodeHex('92 01')).message).toBe('request body is not valid msgpack; encode it with a msgpack library');
    badBody(() => decodeHex('01 02'));
  });
});

describe('encodeBody', () => {
  // msgpackr writes an object's map header as map16 (0xde), a standard form.
  it('writes undefined inside a map as nil', () => {
    expect(encodeBody({ a: undefined }).toString('hex')).toBe('de0001a161c0');
    expect(encodeBody([undefined]).toString('hex')).toBe('91c0');
  });

  it('writes undefined alone as an empty body', () => {
    expect(encodeBody(undefined)).toHaveLength(0);
  });

  it('writes plain maps and arrays, no records', () => {
    expect(encodeBody({ a: 1, b: [true] }).toString('hex')).toBe('de0002a16101a16291c3');
    expect(encodeBody([{ a: 1 }, { a: 2 }]).toString('hex')).toBe('92de0001a16101de0001a16102');
  });

  it('writes 64-bit integers as int64/uint64, never an extension', () => {
    expect(encodeBody(2n ** 60n).toString('hex')).toBe('d31000000000000000');
    expect(encodeBody(2 ** 53).toString('hex')).toBe('cb4340000000000000');
  });

  it.each([
    ['Set', new Set([1, 2]), [1, 2]],
    ['Map', new Map([['k', 1]]), { k: 1 }],
    ['RegExp', /ab/g, ['ab', 'g']],
    ['Error', new Error('x'), ['Error', 'x', null]],
    ['nested undefined', { a: [undefined, { b: undefined }] }, { a: [null, { b: null }] }],
  ])('never writes an extension: %s', (_, value, decoded) => {
    const bytes = encodeBody(value);
    expect(nonStandardReason(bytes, 0, bytes.length)).toBeUndefined();
    expect(decodeBody(frame(bytes))).toEqual(decoded);
  });

  it('refuses a function, rather than send it as nil', () => {
    expect(() => encodeBody({ f: () => 1 })).toThrow(/a function cannot be encoded as msgpack/);
  });

  it.each([
    ['Uint8Array', new Uint8Array([1, 2])],
    ['Int16Array', new Int16Array([1])],
    ['Float32Array', new Float32Array([1])],
    ['ArrayBuffer', new ArrayBuffer(2)],
    ['Buffer', Buffer.from([0xd4, 0x00, 0x00])],
  ])('writes %s as bin, not an extension', (_, value) => {
    const bytes = encodeBody(value);
    expect(bytes[0]).toBe(0xc4);
    expect(() => decodeBody(frame(bytes))).not.toThrow();
  });

  it('writes a Date only as the timestamp extension, in all three sizes', () => {
    expect(encodeBody(new Date(1000)).subarray(0, 2).toString('hex')).toBe('d6ff');
    expect(encodeBody(new Date(1500)).subarray(0, 2).toString('hex')).toBe('d7ff');
    expect(encodeBody(new Date(2 ** 34 * 1000)).subarray(0, 3).toString('hex')).toBe('c70cff');
    for (const t of [1000, 1500, 2 ** 34 * 1000, -1000]) expect(decodeBody(frame(encodeBody(new Date(t))))).toEqual(new Date(t));
  });

  it('the header is untouched by the check (body starts at HEADER_SIZE)', () => {
    const f = frame('c0');
    expect(f.length).toBe(HEADER_SIZE + 1);
    expect(decodeBody(f)).toBeNull();
  });
});

describe('nesting depth', () => {
  /** `depth` arrays (or maps, keyed "k") one inside the next, with 7 innermost. */
  const nested = (depth: number, kind: 'array' | 'map' = 'array'): unknown => {
    let v: unknown = 7;
    for (let i = 0; i < depth; i++) v = kind === 'array' ? [v] : { k: v };
    return v;
  };

  it('512 levels of arrays or maps pass and round-trip; 513 are refused, before msgpackr recurses', () => {
    for (const kind of ['array', 'map'] as const) {
      const ok = nested(512, kind);
      expect(decodeBody(frame(encodeBody(ok)))).toEqual(ok);
      expect(badBody(() => decodeBody(frame(encodeBody(nested(513, kind)))) ).message).toMatch(/nested deeper than 512 levels/);
    }
    // Far deeper than msgpackr's own stack would take: refused the same clear way.
    expect(nonStandardReason(Buffer.alloc(100_000, 0x91), 0, 100_000)).toMatch(/nested deeper than 512 levels/);
  });

  it('counts depth, not containers: siblings after a deep branch are still walked, many shallow containers pass', () => {
    const deepThenMore = [nested(511), 1, { a: [2, 3] }, nested(511)];
    expect(decodeBody(frame(encodeBody(deepThenMore)))).toEqual(deepThenMore);
    const wide = Array.from({ length: 10_000 }, (_, i) => [i, { i }]);
    expect(decodeBody(frame(encodeBody(wide)))).toEqual(wide);
    // An extension after a deep branch is still found: the walk went on past it.
    const tail = Buffer.concat([Buffer.from([0x92]), encodeBody(nested(300)), Buffer.from([0xd4, 0x05, 0x00])]);
    expect(nonStandardReason(tail, 0, tail.length)).toMatch(/extension type 5/);
  });
});
