/**
 * Bodies may use standard msgpack types and the timestamp extension (type -1) only. msgpackr
 * would turn its own extensions (Error, RegExp, Set, typed arrays, records, bundled strings...)
 * into live objects, and tolerates the never-used byte 0xc1; this walk refuses both, before
 * msgpackr runs any extension code on the bytes.
 */

/** Bytes whose presence anywhere in a body means it must be walked: 0xc1 and the extension headers. */
const SUSPECT = new Uint8Array(256);
for (const b of [0xc1, 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8]) SUSPECT[b] = 1;

/** True when no byte of buf[start, end) could start a non-standard item: most bodies end here. */
export function looksStandard(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (SUSPECT[buf[i]] === 1) return false;
  return true;
}

const TIMESTAMP = 0xff; // extension type -1 as an unsigned byte

/** Bytes of payload that follow a fixed-size type byte (numbers); 0 for types handled apart. */
const FIXED = new Uint8Array(256);
for (const [b, n] of [
  [0xca, 4],
  [0xcb, 8],
  [0xcc, 1],
  [0xcd, 2],
  [0xce, 4],
  [0xcf, 8],
  [0xd0, 1],
  [0xd1, 2],
  [0xd2, 4],
  [0xd3, 8],
]) FIXED[b] = n;

const refuseExt = (type: number): string => `extension type ${(type << 24) >> 24} is not accepted; send standard msgpack (timestamps as extension -1)`;

/**
 * Walks the msgpack items in buf[start, end) and returns why they are not standard msgpack plus
 * timestamps (fixext 4, fixext 8, or ext 8 of 12 bytes), or undefined when they are. Never reads
 * past `end`; a body cut short is left for the decoder to refuse.
 */
export function nonStandardReason(buf: Buffer, start: number, end: number): string | undefined {
  let pos = start;
  let need = 1;
  const len = (bytes: number): number => {
    if (pos + bytes > end) return -1;
    const v = bytes === 1 ? buf[pos] : bytes === 2 ? buf.readUInt16BE(pos) : buf.readUInt32BE(pos);
    pos += bytes;
    return v;
  };
  while (need > 0 && pos < end) {
    const b = buf[pos++];
    need--;
    if (b <= 0x7f || b >= 0xe0) continue; // fixint
    if (b <= 0x8f) {
      need += 2 * (b & 0x0f);
      continue;
    }
    if (b <= 0x9f) {
      need += b & 0x0f;
      continue;
    }
    if (b <= 0xbf) {
      pos += b & 0x1f;
      continue;
    }
    if (FIXED[b] !== 0) {
      pos += FIXED[b];
      continue;
    }
    let n: number;
    switch (b) {
      case 0xc0:
      case 0xc2:
      case 0xc3:
        continue;
      case 0xc1:
        return '0xc1 is not a msgpack type';
      case 0xc4:
      case 0xd9:
        n = len(1);
        break;
      case 0xc5:
      case 0xda:
        n = len(2);
        break;
      case 0xc6:
      case 0xdb:
        n = len(4);
        break;
      case 0xc7:
      case 0xc8:
      case 0xc9: {
        n = len(b === 0xc7 ? 1 : b === 0xc8 ? 2 : 4);
        if (n < 0 || pos >= end) return undefined;
        const type = buf[pos++];
        if (type !== TIMESTAMP) return refuseExt(type);
        if (b !== 0xc7 || n !== 12) return 'a timestamp is fixext 4, fixext 8 or ext 8 of 12 bytes';
        break;
      }
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8: {
        if (pos >= end) return undefined;
        const type = buf[pos++];
        if (type !== TIMESTAMP) return refuseExt(type);
        if (b !== 0xd6 && b !== 0xd7) return 'a timestamp is fixext 4, fixext 8 or ext 8 of 12 bytes';
        n = 1 << (b - 0xd4);
        break;
      }
      case 0xdc:
        n = len(2);
        if (n < 0) return undefined;
        need += n;
        continue;
      case 0xdd:
        n = len(4);
        if (n < 0) return undefined;
        need += n;
        continue;
      case 0xde:
        n = len(2);
        if (n < 0) return undefined;
        need += 2 * n;
        continue;
      default: // 0xdf
        n = len(4);
        if (n < 0) return undefined;
        need += 2 * n;
        continue;
    }
    if (n < 0) return undefined;
    pos += n;
  }
  return undefined;
}
