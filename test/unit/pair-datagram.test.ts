import { createHmac } from 'node:crypto';
import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  AsState,
  FRAME_HEAD,
  Head,
  MAX_PAIR_DATA_BYTES,
  PAIR_HEADER_BYTES,
  PAIR_TAG_BYTES,
  PAIR_VERSION,
  PairDropError,
  decodePairMessage,
  encodePairMessage,
  type DropReason,
  type PairData,
  type PairMessage,
} from '../../src/application-server/pair/pair-datagram.js';

/* The pair datagram of docs/pair.md §2: layout, round trip, and every reason to drop one. */

const SECRET = Buffer.from('0123456789abcdef0123456789abcdef');
const OTHER_SECRET = Buffer.from('0123456789abcdef0123456789abcdeF');

function message(over: Partial<PairMessage> = {}): PairMessage {
  return {
    head: Head.CONNECTED,
    state: AsState.ACTIVE,
    id: 0x01020304,
    nodeId: '0123456789abcdef',
    priority: 150,
    preempt: true,
    epoch: 0x0a0b0c0d,
    seq: 0x1122334455667788n,
    data: { client: { host: '10.0.0.1', port: 7100 } },
    ...over,
  };
}

const hmac = (b: Buffer, secret = SECRET): Buffer => createHmac('sha256', secret).update(b).digest();

/** Rewrites the tag of `b` for what precedes it, as a holder of `secret` would. */
function resign(b: Buffer, secret = SECRET): Buffer {
  hmac(b.subarray(0, b.length - PAIR_TAG_BYTES), secret).copy(b, b.length - PAIR_TAG_BYTES);
  return b;
}

/** A well-signed datagram whose data block is `data` (any bytes), with `n` in the data length field. */
function withData(data: Buffer, n = data.length, over: Partial<PairMessage> = {}): Buffer {
  const header = encodePairMessage(message(over), SECRET).subarray(0, PAIR_HEADER_BYTES);
  const b = Buffer.concat([header, data, Buffer.alloc(PAIR_TAG_BYTES)]);
  b.writeUInt16BE(n, 18);
  return resign(b);
}

function dropReason(b: Buffer, secret = SECRET): DropReason | 'decoded' {
  try {
    decodePairMessage(b, secret);
    return 'decoded';
  } catch (err) {
    if (err instanceof PairDropError) return err.reason;
    throw err;
  }
}

/** The data as it comes back from the wire. */
const roundTrip = (data: PairData): PairData => decodePairMessage(encodePairMessage(message({ data }), SECRET), SECRET).data;

describe('pair datagram: the constants', () => {
  it('match docs/pair.md', () => {
    expect([FRAME_HEAD, PAIR_VERSION, PAIR_HEADER_BYTES, PAIR_TAG_BYTES, MAX_PAIR_DATA_BYTES]).toEqual([0xff, 1, 32, 32, 256]);
    expect(Head).toEqual({ NEGOTIATE: 0xa0, DESIGNATE: 0xa5, CONNECTED: 0xaa, RESPONSED: 0xaf });
    expect(AsState).toEqual({ INITIAL: 0x00, ACTIVE: 0x01, STANDBY: 0x02 });
  });
});

describe('pair datagram: the byte layout', () => {
  it('puts every field at its offset, big-endian, and the tag (HMAC-SHA256 of what precedes) last', () => {
    const m = message();
    const b = encodePairMessage(m, SECRET);
    const n = b.length - PAIR_HEADER_BYTES - PAIR_TAG_BYTES;
    expect(b[0]).toBe(0xff);
    expect(b[1]).toBe(0xaa);
    expect(b[2]).toBe(0x01);
    expect(b[3]).toBe(1);
    expect(b.subarray(4, 8).toString('hex')).toBe('01020304');
    expect(b.subarray(8, 16).toString('hex')).toBe('0123456789abcdef');
    expect(b[16]).toBe(150);
    expect(b[17]).toBe(0x01);
    expect(b.readUInt16BE(18)).toBe(n);
    expect(b.subarray(20, 24).toString('hex')).toBe('0a0b0c0d');
    expect(b.subarray(24, 32).toString('hex')).toBe('1122334455667788');
    expect(b.subarray(0, 32).toString('hex')).toBe(`ffaa0101010203040123456789abcdef9601${n.toString(16).padStart(4, '0')}0a0b0c0d1122334455667788`);
    // The data: a msgpack map, at 32.
    expect(unpack(b.subarray(32, 32 + n))).toEqual({ client: { host: '10.0.0.1', port: 7100 } });
    // The tag: the last 32 bytes.
    expect(b.subarray(32 + n)).toHaveLength(32);
    expect(b.subarray(32 + n).equals(hmac(b.subarray(0, 32 + n)))).toBe(true);
    expect(b).toHaveLength(32 + n + 32);
  });

  it('flags bit 0 is the preempt flag; no flag is 0', () => {
    expect(encodePairMessage(message({ preempt: false }), SECRET)[17]).toBe(0);
    expect(encodePairMessage(message({ preempt: true }), SECRET)[17]).toBe(1);
  });

  it('a receiver reads only bit 0 of the flags as preempt', () => {
    for (const [flags, preempt] of [[0x00, false], [0x01, true], [0x02, false], [0xfe, false], [0xff, true]] as const) {
      const b = encodePairMessage(message({ preempt: false }), SECRET);
      b[17] = flags;
      expect(decodePairMessage(resign(b), SECRET).preempt).toBe(preempt);
    }
  });

  it('an empty data map is one byte', () => {
    const b = encodePairMessage(message({ head: Head.RESPONSED, data: {} }), SECRET);
    expect(b.readUInt16BE(18)).toBe(b.length - 64);
    expect(unpack(b.subarray(32, b.length - 32))).toEqual({});
  });
});

describe('pair datagram: round trip', () => {
  const dataOf: Record<number, PairData> = {
    [Head.NEGOTIATE]: { token: Buffer.from('0011223344556677', 'hex') },
    [Head.DESIGNATE]: { role: AsState.STANDBY },
    [Head.CONNECTED]: { client: { host: 'as-1.example', port: 65535 } },
    [Head.RESPONSED]: {},
  };
  const cases = Object.entries(Head).flatMap(([hn, head]) => Object.entries(AsState).map(([sn, state]) => ({ hn, sn, head, state })));

  it.each(cases)('$hn from $sn', ({ head, state }) => {
    const m = message({ head, state, data: dataOf[head], preempt: state === AsState.ACTIVE });
    expect(decodePairMessage(encodePairMessage(m, SECRET), SECRET)).toEqual(m);
  });

  it('keeps the extremes of every number', () => {
    for (const m of [
      message({ id: 0, priority: 0, epoch: 0, seq: 0n, preempt: false, nodeId: '0000000000000000' }),
      message({ id: 0xffffffff, priority: 255, epoch: 0xffffffff, seq: 0xffffffffffffffffn, nodeId: 'ffffffffffffffff' }),
      message({ head: Head.DESIGNATE, data: { role: AsState.ACTIVE } }),
    ]) {
      expect(decodePairMessage(encodePairMessage(m, SECRET), SECRET)).toEqual(m);
    }
  });

  it('a header and a tag with no data at all decode, with empty data', () => {
    const b = withData(Buffer.alloc(0));
    expect(b).toHaveLength(64);
    expect(decodePairMessage(b, SECRET).data).toEqual({});
  });
});

describe('pair datagram: the data block is at most 256 bytes', () => {
  /** The client host length that makes the data block exactly `bytes` long. */
  function hostFor(bytes: number): string {
    const base = pack({ client: { host: '', port: 7100 } }).length;
    for (let l = bytes - base - 4; l <= bytes; l++) {
      const host = 'h'.repeat(l);
      try {
        if (encodePairMessage(message({ data: { client: { host, port: 7100 } } }), SECRET).length - 64 === bytes) return host;
      } catch {
        /* too long */
      }
    }
    throw new Error(`no host makes ${bytes} bytes`);
  }

  it('256 bytes encode and decode', () => {
    const host = hostFor(256);
    const b = encodePairMessage(message({ data: { client: { host, port: 7100 } } }), SECRET);
    expect(b.readUInt16BE(18)).toBe(256);
    expect(decodePairMessage(b, SECRET).data.client?.host).toBe(host);
  });

  it('257 bytes refuse to encode', () => {
    const host = `${hostFor(256)}h`;
    expect(() => encodePairMessage(message({ data: { client: { host, port: 7100 } } }), SECRET)).toThrow(RangeError);
    expect(() => encodePairMessage(message({ data: { client: { host, port: 7100 } } }), SECRET)).toThrow(/257 bytes is over 256/);
    expect(() => encodePairMessage(message({ data: { token: Buffer.alloc(300) } }), SECRET)).toThrow(RangeError);
  });
});

describe('pair datagram: every reason to drop one', () => {
  const good = (): Buffer => encodePairMessage(message(), SECRET);

  it('the good one decodes', () => {
    expect(dropReason(good())).toBe('decoded');
  });

  it.each([0, 1, 32, 63])('short: %s bytes (less than a header and a tag)', (len) => {
    expect(dropReason(good().subarray(0, len))).toBe('short');
    expect(dropReason(Buffer.alloc(len, 0xff))).toBe('short');
  });

  it('frame-head: any first byte but 0xff, even with a good tag', () => {
    for (const fh of [0x00, 0xfe, 0x7f]) {
      const b = good();
      b[0] = fh;
      expect(dropReason(resign(b))).toBe('frame-head');
    }
  });

  it('version: any version but 1, even with a good tag', () => {
    for (const v of [0, 2, 0xff]) {
      const b = good();
      b[3] = v;
      expect(dropReason(resign(b))).toBe('version');
    }
  });

  it('tag: signed with another secret', () => {
    expect(dropReason(encodePairMessage(message(), OTHER_SECRET))).toBe('tag');
    expect(dropReason(good(), OTHER_SECRET)).toBe('tag');
  });

  it('tag (or an earlier check): one flipped bit anywhere', () => {
    const b = good();
    const n = b.readUInt16BE(18);
    const reasons = new Map<number, DropReason | 'decoded'>();
    for (let i = 0; i < b.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const c = Buffer.from(b);
        c[i] ^= 1 << bit;
        const r = dropReason(c);
        const expected = i === 0 ? 'frame-head' : i === 3 ? 'version' : i === 18 || i === 19 ? 'short' : 'tag';
        if (r !== expected) reasons.set(i * 8 + bit, r);
      }
    }
    expect(reasons).toEqual(new Map());
    // The tag covers the whole header and the data, and the tag itself is checked to its last bit.
    expect(b.length).toBe(32 + n + 32);
  });

  it('short: the data length does not match the datagram', () => {
    const b = good();
    const n = b.readUInt16BE(18);
    expect(dropReason(Buffer.concat([b, Buffer.from([0])]))).toBe('short');
    expect(dropReason(b.subarray(0, b.length - 1))).toBe('short');
    // A data length that claims one byte more, or one less, than there is (tag rewritten).
    expect(dropReason(withData(b.subarray(32, 32 + n), n + 1))).toBe('short');
    expect(dropReason(withData(b.subarray(32, 32 + n), n - 1))).toBe('short');
    expect(dropReason(withData(b.subarray(32, 32 + n), n))).toBe('decoded');
    expect(() => decodePairMessage(Buffer.concat([b, Buffer.from([0])]), SECRET)).toThrow(`datagram length ${b.length + 1} does not match its data length ${n} (a header of 32, the data and a tag of 32 make ${b.length})`);
  });

  it('short: a data length over 256, even when the datagram matches it', () => {
    const data = pack({ x: 'a'.repeat(249) });
    expect(data).toHaveLength(256);
    expect(dropReason(withData(data))).toBe('decoded');
    const over = pack({ x: 'a'.repeat(250) });
    expect(over).toHaveLength(257);
    expect(dropReason(withData(over))).toBe('short');
    // The datagram's length matches (32 + 257 + 32): the message names the real fault, the data length.
    expect(() => decodePairMessage(withData(over), SECRET)).toThrow(/^data length 257 is over 256, the most a pair datagram may carry$/);
  });

  it.each([
    { what: 'an unknown head', over: { head: 0xa1 } },
    { what: 'an unknown head (0x00)', over: { head: 0x00 } },
    { what: 'an unknown state', over: { state: 0x03 } },
    { what: 'an unknown state (0xff)', over: { state: 0xff } },
  ])('malformed: $what, with a good tag', ({ over }) => {
    const b = encodePairMessage(message(over as Partial<PairMessage>), SECRET);
    expect(dropReason(b)).toBe('malformed');
  });

  it.each([
    { what: 'a truncated map', hex: '81a1' },
    { what: 'a map with a missing value', hex: '81a174' },
    { what: 'trailing bytes after the map', hex: '8000' },
    { what: 'a string shorter than it says', hex: 'a5616263' },
  ])('malformed: data that is not msgpack ($what)', ({ hex }) => {
    expect(dropReason(withData(Buffer.from(hex, 'hex')))).toBe('malformed');
  });

  it.each([
    { what: 'a number', value: 5 },
    { what: 'a string', value: 'role' },
    { what: 'nil', value: null },
    { what: 'true', value: true },
  ])('malformed: data that is not a map ($what)', ({ value }) => {
    expect(dropReason(withData(pack(value)))).toBe('malformed');
  });

  // docs/pair.md: the data is "a msgpack map": an array, a bin, a timestamp, or the reserved byte
  // 0xc1 (which msgpackr decodes to an object) must not pass as a map read as empty data.
  it.each([
    { what: 'an array', bytes: pack([1, 2]) },
    { what: 'a bin', bytes: pack(Buffer.from([1, 2])) },
    { what: 'a timestamp', bytes: pack(new Date(0)) },
    { what: 'the reserved byte 0xc1', bytes: Buffer.from([0xc1]) },
  ])('BUG: malformed: data that is not a map ($what)', ({ bytes }) => {
    expect(dropReason(withData(bytes))).toBe('malformed');
  });

  it('the cheap checks come before the tag: a short, wrong-head or wrong-version datagram from a stranger is not hashed as good', () => {
    const b = encodePairMessage(message(), OTHER_SECRET);
    b[3] = 9;
    expect(dropReason(b)).toBe('version');
    b[0] = 0;
    expect(dropReason(b)).toBe('frame-head');
  });

  it('an unknown head is checked only after the tag: a forged one is a tag drop', () => {
    expect(dropReason(encodePairMessage(message({ head: 0xa1 as never }), OTHER_SECRET))).toBe('tag');
  });

  it('PairDropError carries its reason and a message', () => {
    try {
      decodePairMessage(Buffer.alloc(3), SECRET);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PairDropError);
      expect(err).toBeInstanceOf(Error);
      expect((err as PairDropError).reason).toBe('short');
      expect((err as PairDropError).message).toMatch(/3 bytes/);
    }
  });
});

describe('pair datagram: the data is sanitized', () => {
  it.each([
    { len: 3, kept: false },
    { len: 4, kept: true },
    { len: 8, kept: true },
    { len: 32, kept: true },
    { len: 33, kept: false },
  ])('a token of $len bytes is kept: $kept', ({ len, kept }) => {
    const token = Buffer.alloc(len, 0xab);
    const d = roundTrip({ token });
    if (kept) {
      expect(Buffer.isBuffer(d.token)).toBe(true);
      expect(Buffer.from(d.token!).equals(token)).toBe(true);
    } else expect(d).toEqual({});
  });

  it('a token that is not bytes is dropped', () => {
    expect(roundTrip({ token: 'abcdefgh' as never })).toEqual({});
    expect(roundTrip({ token: [1, 2, 3, 4, 5, 6, 7, 8] as never })).toEqual({});
  });

  it.each([
    { role: AsState.ACTIVE, kept: true },
    { role: AsState.STANDBY, kept: true },
    { role: AsState.INITIAL, kept: false },
    { role: 3, kept: false },
    { role: '1', kept: false },
    { role: 1.5, kept: false },
  ])('a role of $role is kept: $kept', ({ role, kept }) => {
    expect(roundTrip({ role: role as number })).toEqual(kept ? { role } : {});
  });

  it.each([
    { what: 'a good endpoint', client: { host: '10.0.0.1', port: 7100 }, kept: true },
    { what: 'port 1', client: { host: 'a', port: 1 }, kept: true },
    { what: 'port 65535', client: { host: 'a', port: 65535 }, kept: true },
    { what: 'port 0', client: { host: 'a', port: 0 }, kept: false },
    { what: 'port 65536', client: { host: 'a', port: 65536 }, kept: false },
    { what: 'a negative port', client: { host: 'a', port: -1 }, kept: false },
    { what: 'a fractional port', client: { host: 'a', port: 80.5 }, kept: false },
    { what: 'a port as a string', client: { host: 'a', port: '80' }, kept: false },
    { what: 'no port', client: { host: 'a' }, kept: false },
    { what: 'an empty host', client: { host: '', port: 80 }, kept: false },
    { what: 'a host that is not a string', client: { host: 7, port: 80 }, kept: false },
    { what: 'no host', client: { port: 80 }, kept: false },
    { what: 'a client that is a string', client: 'a:80', kept: false },
  ])('a client endpoint with $what is kept: $kept', ({ client, kept }) => {
    expect(roundTrip({ client: client as never })).toEqual(kept ? { client } : {});
  });

  it('a client endpoint keeps only host and port', () => {
    expect(roundTrip({ client: { host: 'a', port: 1, extra: true } as never })).toEqual({ client: { host: 'a', port: 1 } });
  });

  it('unknown keys are dropped, known ones kept together', () => {
    const token = Buffer.alloc(8, 1);
    const d = roundTrip({ token, role: AsState.ACTIVE, client: { host: 'a', port: 2 }, evil: 'x', __proto__x: 1 } as never);
    expect(Object.keys(d).sort()).toEqual(['client', 'role', 'token']);
  });
});
