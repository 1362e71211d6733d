import { describe, expect, it } from 'vitest';
import { encodeEventRequest, encodeRequest, encodeResponse } from '../../src/protocol/codec.js';
import { BadMagicError, BadVersionError, FrameTooLargeError, type SwitchboardError } from '../../src/protocol/errors.js';
import { HEADER_SIZE } from '../../src/protocol/header.js';
import { FrameParser } from '../../src/protocol/frame-parser.js';

/** A parser that keeps every frame it emits (as handed out, not copied) and every error. */
function collect(maxBodyBytes?: number) {
  const frames: Buffer[] = [];
  const errors: SwitchboardError[] = [];
  const parser = new FrameParser({ maxBodyBytes, onFrame: (f) => frames.push(f), onError: (e) => errors.push(e) });
  return { parser, frames, errors };
}

const hex = (bufs: Buffer[]): string[] => bufs.map((b) => b.toString('hex'));

const frameA = encodeRequest(1, 101, { city: 'Beijing', days: 3 }, { poolType: 2, budgetMs: 500 });
const frameB = encodeResponse(1, 0, { ok: true, list: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] });
const frameC = encodeEventRequest(1, 99, undefined, true); // header only
const frameD = encodeRequest(0xffffffff, 0xffffffff, 'x'.repeat(300));

function withHeaderPatch(frame: Buffer, patch: (f: Buffer) => void): Buffer {
  const copy = Buffer.from(frame);
  patch(copy);
  return copy;
}

describe('FrameParser: framing', () => {
  it('emits one frame delivered in one chunk', () => {
    const { parser, frames, errors } = collect();
    parser.push(frameA);
    expect(hex(frames)).toEqual(hex([frameA]));
    expect(errors).toEqual([]);
    expect(parser.buffered).toBe(0);
  });

  it('emits many frames coalesced into one chunk, in order', () => {
    const { parser, frames, errors } = collect();
    const sent = [frameA, frameB, frameC, frameD, frameA, frameC];
    parser.push(Buffer.concat(sent));
    expect(hex(frames)).toEqual(hex(sent));
    expect(errors).toEqual([]);
    expect(parser.buffered).toBe(0);
  });

  it('emits a frame split at every possible byte boundary, header included', () => {
    for (const frame of [frameA, frameC]) {
      for (let cut = 1; cut < frame.length; cut++) {
        const { parser, frames, errors } = collect();
        parser.push(frame.subarray(0, cut));
        expect(frames, `cut at ${cut}`).toHaveLength(0);
        expect(parser.buffered, `cut at ${cut}`).toBe(cut);
        parser.push(frame.subarray(cut));
        expect(hex(frames), `cut at ${cut}`).toEqual(hex([frame]));
        expect(errors).toEqual([]);
        expect(parser.buffered).toBe(0);
      }
    }
  });

  it('emits frames split at every boundary when two frames share the chunks', () => {
    const stream = Buffer.concat([frameA, frameB]);
    for (let cut = 1; cut < stream.length; cut++) {
      const { parser, frames } = collect();
      parser.push(stream.subarray(0, cut));
      parser.push(stream.subarray(cut));
      expect(hex(frames), `cut at ${cut}`).toEqual(hex([frameA, frameB]));
    }
  });

  it('emits a frame delivered one byte at a time', () => {
    const { parser, frames, errors } = collect();
    const stream = Buffer.concat([frameA, frameC, frameB]);
    for (let i = 0; i < stream.length; i++) parser.push(stream.subarray(i, i + 1));
    expect(hex(frames)).toEqual(hex([frameA, frameC, frameB]));
    expect(errors).toEqual([]);
    expect(parser.buffered).toBe(0);
  });

  it('emits 3 frames split across 5 irregular chunks, byte-identical and in order', () => {
    const sent = [frameA, frameD, frameB];
    const stream = Buffer.concat(sent);
    // Cuts land inside A's header, inside A's body, inside D's header (across A/D), deep in D's body, and in B.
    const cuts = [5, frameA.length - 3, frameA.length + 10, frameA.length + 200, stream.length];
    const { parser, frames, errors } = collect();
    let from = 0;
    for (const to of cuts) {
      parser.push(stream.subarray(from, to));
      from = to;
    }
    expect(cuts).toHaveLength(5);
    expect(hex(frames)).toEqual(hex(sent));
    expect(errors).toEqual([]);
  });

  it('frames handed out stay intact after later pushes (no scratch buffer is reused under them)', () => {
    const { parser, frames } = collect();
    const stream = Buffer.concat([frameC, frameA, frameC, frameB]);
    for (let i = 0; i < stream.length; i += 7) parser.push(Buffer.from(stream.subarray(i, i + 7)));
    expect(hex(frames)).toEqual(hex([frameC, frameA, frameC, frameB]));
  });

  it('handles zero-length bodies alone, coalesced and split', () => {
    expect(frameC.length).toBe(HEADER_SIZE);
    const { parser, frames } = collect();
    parser.push(Buffer.concat([frameC, frameC, frameC]));
    parser.push(frameC.subarray(0, 10));
    parser.push(frameC.subarray(10));
    expect(hex(frames)).toEqual(hex([frameC, frameC, frameC, frameC]));
    expect(parser.buffered).toBe(0);
  });

  it('buffered reports the bytes held of a partial frame', () => {
    const { parser } = collect();
    expect(parser.buffered).toBe(0);
    parser.push(frameA.subarray(0, 10));
    expect(parser.buffered).toBe(10);
    parser.push(frameA.subarray(10, 30));
    expect(parser.buffered).toBe(30);
    parser.push(Buffer.concat([frameA.subarray(30), frameB.subarray(0, 4)]));
    expect(parser.buffered).toBe(4);
    parser.push(frameB.subarray(4));
    expect(parser.buffered).toBe(0);
  });

  it('accepts a body exactly at the cap', () => {
    const body = Buffer.alloc(64, 7);
    const { parser, frames, errors } = collect(64);
    const frame = Buffer.concat([encodeRequest(1, 1, undefined), body]);
    frame.writeUInt32BE(64, 20);
    parser.push(frame.subarray(0, 30));
    parser.push(frame.subarray(30));
    expect(errors).toEqual([]);
    expect(hex(frames)).toEqual(hex([frame]));
  });
});

describe('FrameParser: errors', () => {
  it('rejects a bad magic with BadMagicError and emits nothing after', () => {
    const { parser, frames, errors } = collect();
    const bad = withHeaderPatch(frameA, (f) => f.writeUInt16BE(0x4854, 0)); // "HT", as in HTTP
    parser.push(Buffer.concat([frameB, bad, frameC]));
    expect(hex(frames)).toEqual(hex([frameB]));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(BadMagicError);
    expect(errors[0].code).toBe('SB_ERR_BAD_MAGIC');
    expect(errors[0].message).toContain('0x4854');
    expect(parser.failed).toBe(true);
  });

  it('rejects a bad magic as soon as its first byte arrives, not when the header is whole', () => {
    const { parser, frames, errors } = collect();
    const bad = withHeaderPatch(frameA, (f) => (f[0] = 0x00));
    parser.push(bad.subarray(0, 1));
    expect(errors.map((e) => e.code)).toEqual(['SB_ERR_BAD_MAGIC']);
    parser.push(bad.subarray(1));
    expect(errors).toHaveLength(1);
    expect(frames).toHaveLength(0);
  });

  it('rejects a bad second magic byte and a bad version from a partial header, across chunks', () => {
    const a = collect();
    const badMagic = withHeaderPatch(frameA, (f) => (f[1] = 0x00));
    a.parser.push(badMagic.subarray(0, 1));
    expect(a.errors).toHaveLength(0); // 0x53 is a valid first byte
    a.parser.push(badMagic.subarray(1, 2));
    expect(a.errors.map((e) => e.code)).toEqual(['SB_ERR_BAD_MAGIC']);

    const b = collect();
    const badVersion = withHeaderPatch(frameA, (f) => (f[2] = 9));
    b.parser.push(badVersion.subarray(0, 2));
    expect(b.errors).toHaveLength(0);
    b.parser.push(badVersion.subarray(2, 3));
    expect(b.errors.map((e) => e.code)).toEqual(['SB_ERR_BAD_VERSION']);
    expect(b.frames).toHaveLength(0);
  });

  it('rejects a bad version with BadVersionError', () => {
    const { parser, frames, errors } = collect();
    parser.push(withHeaderPatch(frameA, (f) => (f[2] = 3)));
    expect(frames).toHaveLength(0);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(BadVersionError);
    expect(errors[0].code).toBe('SB_ERR_BAD_VERSION');
  });

  it('takes version 2 on requests only: an event or a response in version 2 is refused', () => {
    const ok = collect();
    ok.parser.push(withHeaderPatch(frameA, (f) => (f[2] = 2)));
    expect(ok.errors).toHaveLength(0);
    expect(ok.frames).toHaveLength(1);
    for (const flags of [0x01, 0xe1, 0x21]) {
      const bad = collect();
      bad.parser.push(withHeaderPatch(frameA, (f) => ((f[2] = 2), (f[3] = flags))));
      expect(bad.frames).toHaveLength(0);
      expect(bad.errors.map((e) => e.message)).toEqual([expect.stringMatching(/for requests only/)]);
    }
  });

  it('rejects an oversize declared length as soon as the header is complete, before any body byte', () => {
    const { parser, frames, errors } = collect(1024);
    const header = Buffer.from(encodeRequest(1, 1, undefined));
    header.writeUInt32BE(1025, 20);
    parser.push(header); // the header alone, no body
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(FrameTooLargeError);
    expect(errors[0].code).toBe('SB_ERR_FRAME_TOO_LARGE');
    expect(frames).toHaveLength(0);
    expect(parser.buffered).toBe(0);
  });

  it('rejects an oversize length when the header itself arrives in pieces', () => {
    const { parser, errors } = collect(1024);
    const header = Buffer.from(encodeRequest(1, 1, undefined));
    header.writeUInt32BE(0xffffffff, 20);
    parser.push(header.subarray(0, 12));
    expect(errors).toHaveLength(0);
    parser.push(header.subarray(12));
    expect(errors.map((e) => e.code)).toEqual(['SB_ERR_FRAME_TOO_LARGE']);
  });

  it('the default cap is 8 MiB', () => {
    const { parser, errors } = collect();
    const header = Buffer.from(encodeRequest(1, 1, undefined));
    header.writeUInt32BE(8 * 1024 * 1024 + 1, 20);
    parser.push(header);
    expect(errors.map((e) => e.code)).toEqual(['SB_ERR_FRAME_TOO_LARGE']);
  });

  it('after an error, further pushes emit nothing and report nothing', () => {
    const { parser, frames, errors } = collect();
    parser.push(withHeaderPatch(frameA, (f) => (f[2] = 9)));
    parser.push(frameA);
    parser.push(Buffer.concat([frameB, frameC]));
    expect(frames).toHaveLength(0);
    expect(errors).toHaveLength(1);
    expect(parser.buffered).toBe(0);
  });

  it('an error in the middle of a partial frame stops the parser too', () => {
    const { parser, frames, errors } = collect();
    parser.push(frameA.subarray(0, frameA.length - 1));
    const bad = withHeaderPatch(frameB, (f) => f.writeUInt16BE(0xdead, 0));
    parser.push(Buffer.concat([frameA.subarray(frameA.length - 1), bad, frameC]));
    expect(hex(frames)).toEqual(hex([frameA]));
    expect(errors.map((e) => e.code)).toEqual(['SB_ERR_BAD_MAGIC']);
  });
});
