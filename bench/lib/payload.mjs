/**
 * The request body every scenario sends: a small object that encodes to about 100 bytes of
 * msgpack. A fresh object per request (its `seq` changes), so every client does the same
 * encoding work.
 *
 * Larger bodies (`--bodies 4096,65536`) are the same object plus a `pad` string whose length is
 * chosen so the whole body encodes to about that many bytes of msgpack (within a few bytes, as
 * `seq` grows); JSON (the HTTP scenario) carries the same object.
 */
import { Packr } from 'msgpackr';

const NOTE = 'sb-bench-payload-0123';
export const DEFAULT_BODY_BYTES = 100;

export function payload(seq) {
  return { seq, user: 'user-00042', op: 'echo', tags: ['alpha', 'beta', 'gamma'], score: 3.25, ok: true, note: NOTE };
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
const TYPICAL_SEQ = 1_000_000; // a uint32 once a run is under way
const made = new Map();

/** The pad that brings the body to `bodyBytes` of msgpack: printable, not one repeated byte. */
function padOf(length) {
  const unit = 'switchboard-bench-pad-0123456789-';
  return unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
}

/**
 * A body maker for a target size: seq => object. Sizes up to the small body's own size give the
 * small body (so `--bodies 100` is exactly the ~100-byte body).
 */
export function payloadOf(bodyBytes = DEFAULT_BODY_BYTES) {
  const known = made.get(bodyBytes);
  if (known) return known;
  let make = payload;
  const small = packr.pack({ ...payload(TYPICAL_SEQ), pad: '' }).length;
  if (bodyBytes > small) {
    let length = bodyBytes - small;
    // The string's own header grows with its length (1, 2, 3 or 5 bytes): settle on the fitting length.
    while (length > 0 && packr.pack({ ...payload(TYPICAL_SEQ), pad: padOf(length) }).length > bodyBytes) length--;
    const pad = padOf(length);
    make = (seq) => ({ seq, user: 'user-00042', op: 'echo', tags: ['alpha', 'beta', 'gamma'], score: 3.25, ok: true, note: NOTE, pad });
  }
  made.set(bodyBytes, make);
  return make;
}

/** The encoded size of the body a run with `bodyBytes` sends, once its ids are large. */
export function encodedBytes(bodyBytes = DEFAULT_BODY_BYTES) {
  return packr.pack(payloadOf(bodyBytes)(TYPICAL_SEQ)).length;
}
