import { describe, expect, it } from 'vitest';
import { decodeValue } from '../../src/protocol/codec.js';
import { BodyDecodeError } from '../../src/protocol/errors.js';
import { nonStandardReason } from '../../src/protocol/msgpack-check.js';

// The standard-msgpack walk, item by item: every width of every length-prefixed type, every
// non-standard construct, and truncation at every byte. Each case is walked twice, once alone in
// its own buffer and once inside a buffer whose other bytes are all 0xc1: the walk must read only
// buf[start, end), so the answers must agree (and reading past a tight buffer must not throw).

const bytesOf = (hex: string): Buffer => Buffer.from(hex.replace(/\s/g, ''), 'hex');

function walk(hex: string): string | undefined {
  const b = bytesOf(hex);
  const tight = nonStandardReason(b, 0, b.length);
  const pad = 40;
  const wide = Buffer.alloc(b.length + 2 * pad, 0xc1);
  b.copy(wide, pad);
  const inside = nonStandardReason(wide, pad, pad + b.length);
  expect(inside, `${hex} inside 0xc1 padding`).toBe(tight);
  return tight;
}

const C1 = '0xc1 is not a msgpack type';
const TS_SHAPE = 'a timestamp is fixext 4, fixext 8 or ext 8 of 12 bytes';
const ext = (t: number): string => `extension type ${t} is not accepted; send standard msgpack (timestamps as extension -1)`;

describe('each length width is read with its own size', () => {
  // An array of two: a value whose length field is exactly right, then 0xc1. Reading the length
  // with the wrong width misplaces the 0xc1 and the walk would miss it.
  it.each([
    ['str8', 'd9 01 41'],
    ['str16', 'da 0001 41'],
    ['str32', 'db 00000001 41'],
    ['bin8', 'c4 01 41'],
    ['bin16', 'c5 0001 41'],
    ['bin32', 'c6 00000001 41'],
    ['fixstr 31', `bf ${'c1'.repeat(31)}`],
    ['array16', 'dc 0001 01'],
    ['array32', 'dd 00000001 01'],
    ['map16', 'de 0001 01 02'],
    ['map32', 'df 00000001 01 02'],
    ['fixarray 15', `9f ${'01'.repeat(15)}`],
    ['fixmap 15', `8f ${'01'.repeat(30)}`],
    ['positive fixint 0x7f', '7f'],
    ['positive fixint 0x05', '05'],
    ['negative fixint 0xe0', 'e0'],
    ['uint8 holding 0xc1', 'cc c1'],
    ['float64 of 0xc1 bytes', `cb ${'c1'.repeat(8)}`],
    ['timestamp fixext4', 'd6 ff 00000001'],
    ['timestamp fixext8', 'd7 ff 0000000000000001'],
    ['timestamp ext8 of 12', 'c7 0c ff 000000000000000000000001'],
  ])('%s: alone passes, followed by 0xc1 in an array is caught', (_, hex) => {
    expect(walk(hex)).toBeUndefined();
    expect(walk(`92 ${hex} c1`)).toBe(C1);
  });

  it.each([
    ['str8', 'd9 00'],
    ['str16', 'da 0000'],
    ['str32', 'db 00000000'],
    ['bin8', 'c4 00'],
    ['bin16', 'c5 0000'],
    ['array16', 'dc 0000'],
    ['array32', 'dd 00000000'],
    ['map16', 'de 0000'],
    ['map32', 'df 00000000'],
  ])('empty %s: passes, and the item after it is still walked', (_, hex) => {
    expect(walk(hex)).toBeUndefined();
    expect(walk(`92 ${hex} c1`)).toBe(C1);
  });

  it.each([
    ['float32', 'ca', 4],
    ['float64', 'cb', 8],
    ['uint8', 'cc', 1],
    ['uint16', 'cd', 2],
    ['uint32', 'ce', 4],
    ['uint64', 'cf', 8],
    ['int8', 'd0', 1],
    ['int16', 'd1', 2],
    ['int32', 'd2', 4],
    ['int64', 'd3', 8],
  ])('%s is one whole value of its own size: the bytes after its payload are not part of it', (_, type, size) => {
    // Payload (and then trailing bytes) 00 00 00 01 c1...: read as anything but a number, they would
    // give a count of 1 and pull the following 0xc1 into the value.
    const hex = `${type} 00000001 ${'c1'.repeat(size === 8 ? 4 : 1)}`;
    expect(walk(hex)).toBeUndefined();
  });

  it('a fixint is one whole value: what follows it is not part of it', () => {
    for (const b of ['00', '05', '7f', 'e0', 'ff']) expect(walk(`${b} c1`), b).toBeUndefined();
    expect(walk('93 7f e0 c1')).toBe(C1);
  });
});

describe('non-standard constructs are refused with their reason', () => {
  it.each([
    ['fixext1', 'd4 05 00', ext(5)],
    ['fixext2', 'd5 72 0000', ext(114)],
    ['fixext4', 'd6 01 00000000', ext(1)],
    ['fixext8', 'd7 7f 0000000000000000', ext(127)],
    ['fixext16', `d8 fe ${'00'.repeat(16)}`, ext(-2)],
    ['ext8', 'c7 02 65 0000', ext(101)],
    ['ext16', 'c8 0002 65 0000', ext(101)],
    ['ext32', 'c9 00000002 65 0000', ext(101)],
  ])('%s of a type other than -1', (_, hex, why) => {
    expect(walk(hex)).toBe(why);
    expect(walk(`91 ${hex}`)).toBe(why);
  });

  it.each([
    ['fixext1', 'd4 ff 00'],
    ['fixext2', 'd5 ff 0000'],
    ['fixext16', `d8 ff ${'00'.repeat(16)}`],
    ['ext8 of 4', 'c7 04 ff 00000001'],
    ['ext8 of 8', 'c7 08 ff 0000000000000001'],
    ['ext8 of 0', 'c7 00 ff'],
    ['ext16 of 12', `c8 000c ff ${'00'.repeat(12)}`],
    ['ext32 of 12', `c9 0000000c ff ${'00'.repeat(12)}`],
  ])('a timestamp (-1) in the wrong shape: %s', (_, hex) => {
    expect(walk(hex)).toBe(TS_SHAPE);
  });

  it('0xc1 at the top, in an array, in a map key and value', () => {
    expect(walk('c1')).toBe(C1);
    expect(walk('93 01 02 c1')).toBe(C1);
    expect(walk('81 c1 01')).toBe(C1);
    expect(walk('81 01 c1')).toBe(C1);
  });

  it('a timestamp is skipped whole: an item after it is still walked', () => {
    expect(walk('92 d6 ff c1c1c1c1 c1')).toBe(C1);
    expect(walk('92 d7 ff c1c1c1c1c1c1c1c1 01')).toBeUndefined();
    expect(walk(`92 c7 0c ff ${'c1'.repeat(12)} 01`)).toBeUndefined();
    expect(walk(`92 c7 0c ff ${'c1'.repeat(12)} c1`)).toBe(C1);
  });
});

describe('a value cut short is left to the decoder', () => {
  const whole = [
    `92 d9 02 4142 01`,
    `92 da 0002 4142 01`,
    `92 db 00000002 4142 01`,
    `92 c5 0002 4142 01`,
    `92 c6 00000002 4142 01`,
    `93 dc 0001 01 02 03`,
    `93 dd 00000001 01 02 03`,
    `93 de 0001 01 02 03`,
    `93 df 00000001 01 02 03`,
    `92 cd 0102 01`,
    `92 d6 ff 00000001 01`,
    `92 c7 0c ff ${'00'.repeat(12)} 01`,
    `92 c8 000c 05 ${'00'.repeat(12)}`,
  ];
  it.each(whole)('%s: every strict prefix passes the walk without reading past its end', (hex) => {
    const b = bytesOf(hex);
    expect(walk(hex)).toBe(hex.startsWith('92 c8') ? ext(5) : undefined);
    for (let cut = 0; cut < b.length; cut++) {
      const prefix = b.subarray(0, cut).toString('hex');
      const got = walk(prefix);
      // The only reason a prefix may already give is the one the extension's type byte gives.
      if (got !== undefined) expect(hex.startsWith('92 c8') && got === ext(5), `${prefix}`).toBe(true);
    }
  });

  it('a length field cut short whose bytes would look like 0xc1 is not read as items', () => {
    expect(walk('93 dc c1')).toBeUndefined();
    expect(walk('93 dd c1 c1 c1')).toBeUndefined();
    expect(walk('95 de c1')).toBeUndefined();
    expect(walk('95 df c1 c1 c1')).toBeUndefined();
  });

  it('a cut-short value is then refused by the decoder', () => {
    expect(() => decodeValue(bytesOf('92 d9 02 41'))).toThrow(BodyDecodeError);
  });
});

describe('decodeValue (bare msgpack, not a frame)', () => {
  it('decodes standard values and timestamps from a Buffer or a Uint8Array view', () => {
    expect(decodeValue(bytesOf('82 a161 01 a162 c3'))).toEqual({ a: 1, b: true });
    const u8 = new Uint8Array([0xee, 0x92, 0x01, 0xc4, 0x01, 0xc1, 0xee]).subarray(1, 6);
    const v = decodeValue(u8) as unknown[];
    expect(v[0]).toBe(1);
    expect(Buffer.from(v[1] as Uint8Array)).toEqual(Buffer.from([0xc1]));
    expect(decodeValue(bytesOf('d6 ff 00000001'))).toEqual(new Date(1000));
  });

  it('refuses a non-standard value with SB_ERR_BAD_BODY and the reason, keeping it as the cause', () => {
    try {
      decodeValue(bytesOf('91 d4 05 00'));
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(BodyDecodeError);
      expect((err as BodyDecodeError).code).toBe('SB_ERR_BAD_BODY');
      expect((err as Error).message).toBe(`value is not standard msgpack: ${ext(5)}`);
      expect(((err as Error).cause as Error).message).toBe(ext(5));
    }
  });

  it('refuses bytes that are not msgpack at all, saying so', () => {
    try {
      decodeValue(bytesOf('92 d9 05 41'));
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(BodyDecodeError);
      expect((err as Error).message).toMatch(/^value is not valid msgpack: /);
    }
  });
});
