/**
 * Bodies may use standard msgpack types and the timestamp extension (type -1) only. msgpackr
 * would turn its own extensions (Error, RegExp, Set, typed arrays, records, bundled strings...)
 * into live objects, and tolerates the never-used byte 0xc1; this walk refuses both.
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

/**
 * Walks one msgpack value that msgpackr has already parsed (so its structure is sound) and
 * returns why it is not standard msgpack plus timestamps, or undefined when it is.
 */
export function nonStandardReason(buf: Buffer, start: number, end: number): string | undefined {
  let pos = start;
  let need = 1;
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
    switch (b) {
      case 0xc0:
      case 0xc2:
      case 0xc3:
        continue;
      case 0xc1:
        return '0xc1 is not a msgpack type';
      case 0xc4:
        pos += 1 + buf[pos];
        continue;
      case 0xc5:
        pos += 2 + buf.readUInt16BE(pos);
        continue;
      case 0xc6:
        pos += 4 + buf.readUInt32BE(pos);
        continue;
      case 0xc7:
      case 0xc8:
      case 0xc9: {
        const lenBytes = b === 0xc7 ? 1 : b === 0xc8 ? 2 : 4;
        const len = lenBytes === 1 ? buf[pos] : lenBytes === 2 ? buf.readUInt16BE(pos) : buf.readUInt32BE(pos);
        const type = buf[pos + lenBytes];
        if (type !== TIMESTAMP || len !== 12) return `extension type ${(type << 24) >> 24} is not accepted; send standard msgpack (timestamps as extension -1)`;
        pos += lenBytes + 1 + len;
        continue;
      }
      case 0xca:
        pos += 4;
        continue;
      case 0xcb:
        pos += 8;
        continue;
      case 0xcc:
      case 0xd0:
        pos += 1;
        continue;
      case 0xcd:
      case 0xd1:
        pos += 2;
        continue;
      case 0xce:
      case 0xd2:
        pos += 4;
        continue;
      case 0xcf:
      case 0xd3:
        pos += 8;
        continue;
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8: {
        const type = buf[pos];
        if (type !== TIMESTAMP || (b !== 0xd6 && b !== 0xd7)) return `extension type ${(type << 24) >> 24} is not accepted; send standard msgpack (timestamps as extension -1)`;
        pos += 1 + (1 << (b - 0xd4));
        continue;
      }
      case 0xd9:
        pos += 1 + buf[pos];
        continue;
      case 0xda:
        pos += 2 + buf.readUInt16BE(pos);
        continue;
      case 0xdb:
        pos += 4 + buf.readUInt32BE(pos);
        continue;
      case 0xdc:
        need += buf.readUInt16BE(pos);
        pos += 2;
        continue;
      case 0xdd:
        need += buf.readUInt32BE(pos);
        pos += 4;
        continue;
      case 0xde:
        need += 2 * buf.readUInt16BE(pos);
        pos += 2;
        continue;
      case 0xdf:
        need += 2 * buf.readUInt32BE(pos);
        pos += 4;
        continue;
    }
  }
  return undefined;
}
