import { describe, expect, it } from 'vitest';
import { encodeEventRequest, encodeRequest, encodeResponse } from '../../src/protocol/codec.js';
import { BadMagicError, BadVersionError, type SwitchboardError } from '../../src/protocol/errors.js';
import { encodeExtendedFrame } from '../../src/protocol/extension.js';
import { FLAG_REQUEST, FLAG_TWO_WAY, HEADER_SIZE, OFFSET, Serialization } from '../../src/protocol/header.js';
import { FrameParser } from '../../src/protocol/frame-parser.js';

// Edges of the frame parser: partial headers, version-2 requests in pieces, the state it is left in
// after an error, and zero-copy hand-out on every chunk.

function collect() {
  const frames: Buffer[] = [];
  const errors: SwitchboardError[] = [];
  const parser = new FrameParser({ onFrame: (f) => frames.push(f), onError: (e) => errors.push(e) });
  return { parser, frames, errors };
}

const hex = (bufs: Buffer[]): string[] => bufs.map((b) => b.toString('hex'));

const v1 = encodeRequest(5, 101, { city: 'Oslo' }, { poolType: 1, budgetMs: 300 });
const v2 = encodeExtendedFrame(FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK, 1, 6, 101, 300, { routingKey: Buffer.from('user-9') }, Buffer.from([0x81, 0xa1, 0x61, 0x01]));
const resp = encodeResponse(5, 0, { ok: true });

const withVersion = (frame: Buffer, version: number): Buffer => {
  const c = Buffer.from(frame);
  c[OFFSET.version] = version;
  return c;
};

describe('FrameParser: partial headers', () => {
  it('a version-2 request split at every byte boundary is emitted whole', () => {
    for (let cut = 1; cut < v2.length; cut++) {
      const { parser, frames, errors } = collect();
      parser.push(v2.subarray(0, cut));
      expect(parser.buffered, `cut at ${cut}`).toBe(cut);
      parser.push(v2.subarray(cut));
      expect(errors, `cut at ${cut}`).toEqual([]);
      expect(hex(frames), `cut at ${cut}`).toEqual(hex([v2]));
    }
  });

  it('a version-2 request whose header starts after another frame in the same chunk is emitted whole', () => {
    for (let cut = 1; cut < HEADER_SIZE; cut++) {
      const { parser, frames, errors } = collect();
      parser.push(Buffer.concat([v1, v2.subarray(0, cut)]));
      parser.push(v2.subarray(cut));
      expect(errors, `cut at ${cut}`).toEqual([]);
      expect(hex(frames), `cut at ${cut}`).toEqual(hex([v1, v2]));
    }
  });

  it('one correct magic byte, then the rest, is a frame', () => {
    const { parser, frames, errors } = collect();
    parser.push(v1.subarray(0, 1));
    expect(errors).toEqual([]);
    parser.push(v1.subarray(1));
    expect(hex(frames)).toEqual(hex([v1]));
  });

  it('a wrong first byte is refused at once and nothing is held', () => {
    const { parser, errors } = collect();
    parser.push(Buffer.from([0x47]));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(BadMagicError);
    expect(errors[0].message).toContain('got 0x4700');
    expect(parser.failed).toBe(true);
    expect(parser.buffered).toBe(0);
  });

  it('a wrong magic in two bytes is refused at once and nothing is held', () => {
    const { parser, errors } = collect();
    parser.push(Buffer.from('GE'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(BadMagicError);
    expect(errors[0].message).toContain('got 0x4745');
    expect(parser.buffered).toBe(0);
  });

  it('an unknown version in the first three bytes is refused at once, naming the version', () => {
    for (const at of [0, v1.length]) {
      const { parser, frames, errors } = collect();
      const bad = withVersion(v1, 7).subarray(0, 3);
      parser.push(at === 0 ? bad : Buffer.concat([v1, bad]));
      expect(frames).toHaveLength(at === 0 ? 0 : 1);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(BadVersionError);
      expect(errors[0].message).toContain('protocol version 7 is not supported');
      expect(parser.buffered).toBe(0);
    }
  });

  it('version 2 on a response or an event is refused once the flags byte arrives; on a request it waits for the header', () => {
    for (const flags of [0x01, 0xe1, 0x21]) {
      const { parser, errors } = collect();
      parser.push(Buffer.from([0x53, 0x42, 0x02]));
      expect(errors).toEqual([]);
      parser.push(Buffer.from([flags]));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(BadVersionError);
      expect(errors[0].message).toContain('version 2');
      expect(parser.buffered).toBe(0);
    }
    const { parser, errors } = collect();
    parser.push(Buffer.from([0x53, 0x42, 0x02, 0xc1]));
    expect(errors).toEqual([]);
    expect(parser.buffered).toBe(4);
  });

  it('an error found when a split header completes leaves nothing buffered', () => {
    const { parser, errors } = collect();
    const bad = withVersion(v1, 9);
    parser.push(bad.subarray(0, 2));
    expect(parser.buffered).toBe(2);
    parser.push(bad.subarray(2, 30));
    expect(errors).toHaveLength(1);
    expect(parser.failed).toBe(true);
    expect(parser.buffered).toBe(0);
  });
});

describe('FrameParser: version checks on a whole header', () => {
  it('an unknown version on a request says it is not supported, wherever the frame starts', () => {
    for (const lead of [[], [v1], [resp]]) {
      const { parser, errors } = collect();
      parser.push(Buffer.concat([...lead, withVersion(v1, 3)]));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(BadVersionError);
      expect(errors[0].message).toContain('protocol version 3 is not supported');
    }
  });

  it('a version-2 event is refused as for requests only', () => {
    const ev = withVersion(encodeEventRequest(1, 9, { a: 1 }, true), 2);
    for (const lead of [[], [v1]]) {
      const { parser, frames, errors } = collect();
      parser.push(Buffer.concat([...lead, ev]));
      expect(frames).toHaveLength(lead.length);
      expect(errors).toHaveLength(1);
      expect(errors[0].code).toBe('SB_ERR_BAD_VERSION');
      expect(errors[0].message).toContain('protocol version 2 is for requests only');
    }
  });

  it('a version-2 response is refused as for requests only', () => {
    const { parser, errors } = collect();
    parser.push(withVersion(resp, 2));
    expect(errors[0].message).toContain('for requests only');
  });
});

describe('FrameParser: after a failure', () => {
  it('later pushes are ignored: no frame, no second error, nothing buffered', () => {
    const { parser, frames, errors } = collect();
    parser.push(withVersion(v1, 4));
    expect(errors).toHaveLength(1);
    parser.push(v1);
    parser.push(v1.subarray(0, 10));
    parser.push(Buffer.from('GET / HTTP/1.1\r\n'));
    expect(frames).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(parser.buffered).toBe(0);
  });
});

describe('FrameParser: zero-copy on every chunk', () => {
  it('a frame lying whole in a chunk is a view of that chunk, also after a chunk that ended on a frame boundary', () => {
    const { parser, frames } = collect();
    const first = Buffer.concat([v1, resp]);
    const second = Buffer.concat([v2, v1]);
    parser.push(first);
    parser.push(second);
    expect(hex(frames)).toEqual(hex([v1, resp, v2, v1]));
    expect(frames[2].buffer).toBe(second.buffer);
    expect(frames[2].byteOffset).toBe(second.byteOffset);
    expect(frames[3].byteOffset).toBe(second.byteOffset + v2.length);
    expect(parser.buffered).toBe(0);
  });
});
