/**
 * The request body every scenario sends: a small object that encodes to about 100 bytes of
 * msgpack. A fresh object per request (its `seq` changes), so every client does the same
 * encoding work.
 */
const NOTE = 'sb-bench-payload-0123';

export function payload(seq) {
  return { seq, user: 'user-00042', op: 'echo', tags: ['alpha', 'beta', 'gamma'], score: 3.25, ok: true, note: NOTE };
}
