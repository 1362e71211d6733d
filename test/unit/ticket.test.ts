import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MAX_TICKET_KEYS, signTicket, ticketProof, verifyTicket } from '../../src/security/index.js';
import { DirectGrant } from '../../src/function-server/direct-grant.js';

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

describe('DirectGrant: what one direct connection may call', () => {
  const secret = Buffer.from('example-join-secret-0123456789');
  const L = Buffer.alloc(32, 0x11);
  const now = 1_700_000_000_000;
  const present = (keys: number[], poolType = 0): unknown => {
    const t = signTicket(secret, { client: 'c', keys, poolType, exp: now + 60_000 });
    const D = Buffer.alloc(32, keys.length & 0xff);
    return { body: t.body, mac: t.mac, nonce: D, proof: ticketProof(t.key, 'dialer', L, D) };
  };
  const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

  it('grants at most MAX_TICKET_KEYS keys per connection; a renewal past it is refused and changes nothing', () => {
    const g = new DirectGrant(L, 0);
    expect(g.accept(secret, present(range(1, 700)), now).keys).toHaveLength(700);
    // Keys it already holds do not count twice.
    expect(g.accept(secret, present(range(1, 300).concat(range(701, 324))), now).keys).toHaveLength(MAX_TICKET_KEYS);
    expect(() => g.accept(secret, present([5000]), now)).toThrow(expect.objectContaining({ code: 'SB_ERR_TICKET_INVALID', message: expect.stringContaining(`more than ${MAX_TICKET_KEYS}`) }));
    expect(g.keys.size).toBe(MAX_TICKET_KEYS);
    expect(g.keys.has(5000)).toBe(false);
  });

  it('takes a ticket for pool type 0 (any) or its own, and refuses one for another', () => {
    expect(new DirectGrant(L, 3).accept(secret, present([1], 3), now).keys).toEqual([1]);
    expect(new DirectGrant(L, 3).accept(secret, present([1], 0), now).keys).toEqual([1]);
    expect(() => new DirectGrant(L, 3).accept(secret, present([1], 4), now)).toThrow(expect.objectContaining({ code: 'SB_ERR_TICKET_INVALID' }));
  });
});
