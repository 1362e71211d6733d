import { describe, expect, it } from 'vitest';
import { authReplySchema, authRequestSchema, challengeSchema } from '../../src/protocol/events.js';

// The handshake bodies carry msgpack bins whose sizes are bounded both ways: a proof is exactly an
// HMAC-SHA256, a nonce 16 to 64 bytes. A longer value is refused, not truncated or kept.
const bin = (n: number): Uint8Array => new Uint8Array(n).fill(7);

describe('handshake bins are bounded', () => {
  it('a proof of exactly 32 bytes passes; 31 and 33 do not', () => {
    expect(authReplySchema.safeParse({ proof: bin(32) }).success).toBe(true);
    expect(authReplySchema.safeParse({ proof: bin(31) }).success).toBe(false);
    expect(authReplySchema.safeParse({ proof: bin(33) }).success).toBe(false);
  });

  it('a nonce of 16 to 64 bytes passes; 15 and 65 do not', () => {
    const req = (n: number) => authRequestSchema.safeParse({ mechanism: 'hmac-sha256', nonce: bin(n), proof: bin(32) }).success;
    expect([req(15), req(16), req(64), req(65)]).toEqual([false, true, true, false]);
    const ch = (n: number) => challengeSchema.safeParse({ v: 1, realm: 'r', nonce: bin(n), mechanisms: ['hmac-sha256'] }).success;
    expect([ch(15), ch(16), ch(64), ch(65)]).toEqual([false, true, true, false]);
  });

  it('a string is not a bin', () => {
    expect(authReplySchema.safeParse({ proof: 'x'.repeat(32) }).success).toBe(false);
  });
});
