import { unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  decodeBody,
  encodeErrorResponse,
  encodeEventRequest,
  encodeEventResponse,
  encodeFrameRaw,
  encodeRequest,
  encodeResponse,
} from '../../src/protocol/codec.js';
import { BodyDecodeError } from '../../src/protocol/errors.js';
import { EventKind } from '../../src/protocol/events.js';
import { FLAG_EVENT, FLAG_REQUEST, FLAG_TWO_WAY, HEADER_SIZE, Serialization, bodyOf, decodeHeader } from '../../src/protocol/header.js';
import { Status } from '../../src/protocol/status.js';

const MSGPACK = 1;

/** A msgpack-flagged frame carrying exactly these body bytes. */
const frameWithBody = (bytes: number[]): Buffer =>
  encodeFrameRaw({ flags: FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK, requestId: 1, serviceKey: 1 }, Buffer.from(bytes));

describe('flags written by each encoder', () => {
  it('encodeRequest: request + two-way + msgpack, with key, pool type and budget', () => {
    const f = encodeRequest(9, 101, { city: 'Beijing' }, { poolType: 3, budgetMs: 250 });
    const h = decodeHeader(f);
    expect(h.flags).toBe(FLAG_REQUEST | FLAG_TWO_WAY | MSGPACK);
    expect(h.flags).toBe(0xc1);
    expect(h).toMatchObject({ requestId: 9, serviceKey: 101, poolType: 3, budgetMs: 250, status: 0, eventKind: 0 });
    expect(h.bodyLength).toBe(f.length - HEADER_SIZE);
    expect(decodeBody(f)).toEqual({ city: 'Beijing' });
  });

  it('encodeRequest with twoWay false drops the two-way bit', () => {
    const f = encodeRequest(1, 2, 'x', { twoWay: false });
    expect(decodeHeader(f).flags).toBe(FLAG_REQUEST | MSGPACK);
  });

  it('encodeResponse: neither request nor event, msgpack, with status', () => {
    const f = encodeResponse(9, Status.OK, [1, 2, 3], 101);
    const h = decodeHeader(f);
    expect(h.flags).toBe(MSGPACK);
    expect(h).toMatchObject({ requestId: 9, status: Status.OK, serviceKey: 101 });
    expect(decodeBody(f)).toEqual([1, 2, 3]);
  });

  it('encodeErrorResponse: status plus { code, message } body', () => {
    const f = encodeErrorResponse(5, Status.SERVICE_ERROR, 'UNKNOWN_CITY', 'no such city');
    const h = decodeHeader(f);
    expect(h.flags).toBe(MSGPACK);
    expect(h.status).toBe(Status.SERVICE_ERROR);
    expect(h.requestId).toBe(5);
    expect(decodeBody(f)).toEqual({ code: 'UNKNOWN_CITY', message: 'no such city' });
  });

  it('encodeEventRequest: request + event (+ two-way when asked) + msgpack, kind in byte 5', () => {
    const ping = encodeEventRequest(EventKind.HEARTBEAT, 77, undefined, true);
    expect(decodeHeader(ping)).toMatchObject({ flags: FLAG_REQUEST | FLAG_EVENT | FLAG_TWO_WAY | MSGPACK, eventKind: 1, requestId: 77 });
    expect(decodeHeader(ping).flags).toBe(0xe1);
    const load = encodeEventRequest(EventKind.LOAD, 78, { cpu: 0.5 }, false);
    expect(decodeHeader(load)).toMatchObject({ flags: FLAG_REQUEST | FLAG_EVENT | MSGPACK, eventKind: 3 });
    expect(decodeBody(load)).toEqual({ cpu: 0.5 });
  });

  it('encodeEventResponse: event + msgpack, status OK by default', () => {
    const pong = encodeEventResponse(EventKind.HEARTBEAT, 77, undefined);
    expect(decodeHeader(pong)).toMatchObject({ flags: FLAG_EVENT | MSGPACK, status: Status.OK, eventKind: 1, requestId: 77 });
    const refused = encodeEventResponse(EventKind.HELLO, 3, { code: 'X', message: 'no' }, Status.BAD_REQUEST);
    expect(decodeHeader(refused).status).toBe(Status.BAD_REQUEST);
    expect(decodeBody(refused)).toEqual({ code: 'X', message: 'no' });
  });
});

describe('decodeBody', () => {
  it.each([
    ['string', 'hello'],
    ['number', 3.5],
    ['negative int', -12],
    ['null', null],
    ['boolean', false],
    ['nested object', { a: [1, { b: 'c' }], d: null }],
    ['array of objects', [{ x: 1 }, { x: 2 }]],
  ])('returns the encoded value (%s)', (_label, value) => {
    expect(decodeBody(encodeRequest(1, 1, value))).toEqual(value);
  });

  it('an undefined body is zero bytes and decodes to undefined', () => {
    const f = encodeRequest(1, 1, undefined);
    expect(f.length).toBe(HEADER_SIZE);
    expect(decodeHeader(f).bodyLength).toBe(0);
    expect(decodeBody(f)).toBeUndefined();
  });

  it('a raw-serialization frame hands back the body bytes untouched', () => {
    const f = encodeFrameRaw({ flags: FLAG_REQUEST | Serialization.RAW, requestId: 1 }, Buffer.from([0xc1, 0x83]));
    const body = decodeBody(f) as Buffer;
    expect(Buffer.isBuffer(body)).toBe(true);
    expect(body.toString('hex')).toBe('c183');
  });

  it.each([
    ['truncated map header 0x83', [0x83]],
    ['map missing its value', [0x81, 0xa1, 0x61]],
    ['truncated str8', [0xd9]],
    ['two values where one was expected', [0x01, 0x02]],
  ])('throws BodyDecodeError SB_ERR_BAD_BODY on malformed bytes (%s)', (_label, bytes) => {
    const f = frameWithBody(bytes);
    expect(() => decodeBody(f)).toThrow(BodyDecodeError);
    try {
      decodeBody(f);
    } catch (err) {
      expect((err as BodyDecodeError).code).toBe('SB_ERR_BAD_BODY');
      expect((err as BodyDecodeError).status).toBe(Status.BAD_REQUEST);
      expect((err as BodyDecodeError).cause).toBeDefined();
    }
  });

  it('throws BodyDecodeError on the never-used msgpack byte 0xc1, alone or nested', () => {
    for (const bytes of [[0xc1], [0x81, 0xa1, 0x61, 0xc1]]) {
      const f = frameWithBody(bytes);
      expect(() => decodeBody(f)).toThrow(BodyDecodeError);
    }
  });
});

describe('bodies are plain msgpack', () => {
  it('a fresh msgpackr unpack (no shared structures) reads them', () => {
    const value = { city: 'Beijing', days: 3, list: [{ a: 1 }, { a: 2 }, { a: 3 }], nested: { deep: { x: 'y' } } };
    // Encode the same shape twice: with records enabled the second would refer to a shared structure.
    encodeRequest(1, 1, value);
    const f = encodeRequest(2, 1, value);
    expect(unpack(bodyOf(f))).toEqual(value);
    expect(unpack(bodyOf(encodeResponse(2, 0, value)))).toEqual(value);
  });

  it('maps are encoded with standard map headers, not the records extension', () => {
    for (let i = 0; i < 3; i++) {
      const body = bodyOf(encodeRequest(1, 1, { a: 1 }));
      // fixmap (0x80-0x8f), map16 (0xde) or map32 (0xdf); a msgpackr record would start with 0xd4 0x72 or 0x40-0x7f.
      const isMapHeader = (body[0] & 0xf0) === 0x80 || body[0] === 0xde || body[0] === 0xdf;
      expect(isMapHeader, `first byte 0x${body[0].toString(16)}`).toBe(true);
      expect(body.subarray(body.length - 3).toString('hex')).toBe('a16101'); // fixstr "a", fixint 1
    }
  });
});

describe('decodeBody and serialization ids', () => {
  it('refuses a body whose serialization id is neither raw nor msgpack', () => {
    const frame = encodeFrameRaw({ flags: FLAG_REQUEST | FLAG_TWO_WAY | 7, requestId: 1 }, Buffer.from([0x01]));
    expect(() => decodeBody(frame)).toThrow(/serialization id 7 is not supported/);
  });

  it('hands a raw body back as bytes', () => {
    const frame = encodeFrameRaw({ flags: FLAG_REQUEST | Serialization.RAW, requestId: 1 }, Buffer.from('abc'));
    expect(Buffer.from(decodeBody(frame) as Buffer).toString()).toBe('abc');
  });
});
