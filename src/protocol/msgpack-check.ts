/**
 * Bodies may use standard msgpack types and the timestamp extension (type -1) only. msgpackr
 * would turn its own extensions (Error, RegExp, Set, typed arrays, records, bundled strings...)
 * into live objects, and tolerates the never-used byte 0xc1; this walk refuses both, before
 * msgpackr runs any extension code on the bytes. It visits item headers only and steps over string
 * and bin contents, so its cost follows the number of items, not the body's size.
 */

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

/** The big-endian length of `width` bytes at buf[pos]; -1 when they run past `end`. */
function lengthAt(buf: Buffer, pos: number, width: number, end: number): number {
  if (pos + width > end) return -1;
  if (width === 1) return buf[pos];
  if (width === 2) return (buf[pos] << 8) | buf[pos + 1];
  return buf[pos] * 0x1000000 + ((buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]);
}

/** Arrays and maps nested deeper than this are refused: decoding and encoding them recurse. */
export const MAX_DEPTH = 512;
/** Items left in each outer container while the walk is inside an inner one (one walk at a time). */
const OUTER = new Float64Array(MAX_DEPTH);

const refuseExt = (type: number): string => `extension type ${(type << 24) >> 24} is not accepted; send standard msgpack (timestamps as extension -1)`;

/**
 * Walks the msgpack items in buf[start, end) and returns why they are not standard msgpack plus
 * timestamps (fixext 4, fixext 8, or ext 8 of 12 bytes), or undefined when they are. Never reads
 * past `end`; a body cut short is left for the decoder to refuse.
 */
export function nonStandardReason(buf: Buffer, start: number, end: number): string | undefined {
  let pos = start;
  let need = 1; // items left in the innermost open container (or the one top item)
  let depth = 0; // open containers; the items left in each outer one are in OUTER[0, depth)
  while (pos < end) {
    if (need === 0) {
      if (depth === 0) break;
      need = OUTER[--depth];
      continue;
    }
    const b = buf[pos++];
    need--;
    if (b <= 0x7f || b >= 0xe0) continue; // fixint
    if (b >= 0xa0 && b <= 0xbf) {
      pos += b & 0x1f; // fixstr
      continue;
    }
    if (FIXED[b] !== 0) {
      pos += FIXED[b];
      continue;
    }
    let items: number; // a container's items
    if (b <= 0x8f) items = 2 * (b & 0x0f);
    else if (b <= 0x9f) items = b & 0x0f;
    else if (b >= 0xdc && b <= 0xdf) {
      const w = b === 0xdc || b === 0xde ? 2 : 4;
      const n = lengthAt(buf, pos, w, end);
      pos += w;
      if (n < 0) return undefined;
      items = b >= 0xde ? 2 * n : n;
    } else items = -1;
    if (items >= 0) {
      if (items === 0) continue;
      if (depth === MAX_DEPTH) return `containers are nested deeper than ${MAX_DEPTH} levels`;
      OUTER[depth++] = need;
      need = items;
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
        n = lengthAt(buf, pos, 1, end);
        pos += 1;
        break;
      case 0xc5:
      case 0xda:
        n = lengthAt(buf, pos, 2, end);
        pos += 2;
        break;
      case 0xc6:
      case 0xdb:
        n = lengthAt(buf, pos, 4, end);
        pos += 4;
        break;
      case 0xc7:
      case 0xc8:
      case 0xc9: {
        const w = b === 0xc7 ? 1 : b === 0xc8 ? 2 : 4;
        n = lengthAt(buf, pos, w, end);
        pos += w;
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
      default:
        return undefined; // unreachable: every type byte is handled above
    }
    if (n < 0) return undefined;
    pos += n;
  }
  return undefined;
}
