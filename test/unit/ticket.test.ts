import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { signTicket, ticketProof, verifyTicket } from '../../src/security/index.js';

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
const worked = (label: string): string => {
  const m = new RegExp(`^${label}\\s+([0-9a-f]+)$`, 'm').exec(doc);
  if (!m) throw new Error(`docs/protocol.md has no "${label}" line in section 6.10`);
  return m[1];
};

describe('director tickets', () => {
  const secret = Buffer.from('example-join-secret-0123456789');
  const t = signTicket(secret, { client: 'client-1', keys: [101], poolType: 0, exp: 1800000000000 });
  const L = Buffer.alloc(32, 0x11);
  const D = Buffer.alloc(32, 0x22);

  it('match the worked values of docs/protocol.md, section 6.10', () => {
    expect(t.body.toString('hex')).toBe(worked('claims \\(52 bytes\\)'));
    expect(t.mac.toString('hex')).toBe(worked('mac'));
    expect(t.key.toString('hex')).toBe(worked('session key'));
    expect(ticketProof(t.key, 'dialer', L, D).toString('hex')).toBe(worked("client's proof"));
    expect(ticketProof(t.key, 'listener', L, D).toString('hex')).toBe(worked("FS's proof"));
  });

  it('verify with the right secret, proof and clock, and name what is wrong otherwise', () => {
    const proof = ticketProof(t.key, 'dialer', L, D);
    const ok = verifyTicket(secret, { body: t.body, mac: t.mac, nonce: D, proof }, L, 1_700_000_000_000);
    expect(ok.claims).toEqual({ client: 'client-1', keys: [101], poolType: 0, exp: 1800000000000 });
    expect(ok.key.equals(t.key)).toBe(true);
    const bad = (over: object, now = 1_700_000_000_000, nonce = L) => () => verifyTicket(secret, { body: t.body, mac: t.mac, nonce: D, proof, ...over }, nonce, now);
    expect(bad({ mac: Buffer.alloc(32) })).toThrow(expect.objectContaining({ code: 'SB_ERR_TICKET_INVALID' }));
    expect(bad({}, 1800000000000)).toThrow(expect.objectContaining({ code: 'SB_ERR_TICKET_EXPIRED' }));
    // A proof made for another connection's nonce is worth nothing here.
    expect(bad({}, 1_700_000_000_000, Buffer.alloc(32, 0x33))).toThrow(expect.objectContaining({ code: 'SB_ERR_TICKET_INVALID' }));
    // Claims altered after signing fail the mac.
    const altered = Buffer.from(t.body);
    altered[altered.length - 1] ^= 1;
    expect(bad({ body: altered })).toThrow(expect.objectContaining({ code: 'SB_ERR_TICKET_INVALID' }));
    // Bytes that are not claims, under a mac made for other claims.
    const junk = signTicket(secret, { client: 'x', keys: [1], poolType: 0, exp: 1 });
    const body = Buffer.from([0xc0]);
    expect(() => verifyTicket(secret, { body, mac: junk.mac, nonce: D, proof }, L, 0)).toThrow(expect.objectContaining({ code: 'SB_ERR_TICKET_INVALID' }));
  });
});
