import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { AuthError, decodeValue, encodeBody } from '../protocol/index.js';

/**
 * Director-mode tickets: the AS lets a client talk to FSs directly by signing what it may call.
 *
 *   claims      = msgpack { v: 1, client, keys, poolType, exp }
 *   mac         = HMAC-SHA256(joinSecret, "switchboard-ticket-v1\0mac\0" || claims)
 *   session key = HMAC-SHA256(joinSecret, "switchboard-ticket-v1\0key\0" || claims)
 *
 * The AS gives the client all three. On an FS connection the client answers CHALLENGE (nonce L)
 * with TICKET { claims, mac, nonce D, proof: HMAC(session key, "...\0dialer\0" || L || D) }; the
 * FS, which holds the join secret, checks the mac, derives the session key, checks the proof and
 * answers with its own. A recorded TICKET is worth nothing on another connection (fresh nonces),
 * and the claims alone, without the session key, prove nothing.
 */
const LABEL = 'switchboard-ticket-v1\0';
const NONCE_BYTES = 32;
/** Most keys one ticket names. */
export const MAX_TICKET_KEYS = 1024;

export interface TicketClaims {
  /** Who the AS gave it to (for logs): the AS's id for that client connection. */
  client: string;
  keys: number[];
  poolType: number;
  /** Epoch ms after which it is refused. */
  exp: number;
}

const claimsSchema = z.object({
  v: z.literal(1),
  client: z.string().min(1).max(128),
  keys: z.array(z.number().int().min(0).max(0xffffffff)).min(1).max(MAX_TICKET_KEYS),
  poolType: z.number().int().min(0).max(0xffff),
  exp: z.number().int().min(0),
});

function hmac(secret: Buffer, purpose: string, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', secret).update(`${LABEL}${purpose}\0`);
  for (const p of parts) h.update(p);
  return h.digest();
}

export interface SignedTicket {
  body: Buffer;
  mac: Buffer;
  key: Buffer;
  expiresAt: number;
}

export function signTicket(secret: Buffer, claims: TicketClaims): SignedTicket {
  const body = encodeBody({ v: 1, client: claims.client, keys: claims.keys, poolType: claims.poolType, exp: claims.exp });
  return { body, mac: hmac(secret, 'mac', body), key: hmac(secret, 'key', body), expiresAt: claims.exp };
}

/** The proof one side of a TICKET exchange gives: the session key over both nonces and its role. */
export function ticketProof(sessionKey: Uint8Array, role: 'dialer' | 'listener', listenerNonce: Uint8Array, dialerNonce: Uint8Array): Buffer {
  return hmac(Buffer.from(sessionKey), role, listenerNonce, dialerNonce);
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The FS's check of a TICKET: the mac, the claims, the expiry and the client's proof. Returns the
 * claims and the session key, or throws AuthError with the reason (a stable code).
 */
export function verifyTicket(secret: Buffer, t: { body: Uint8Array; mac: Uint8Array; nonce: Uint8Array; proof: Uint8Array }, listenerNonce: Uint8Array, now: number): { claims: TicketClaims; key: Buffer } {
  const body = Buffer.from(t.body);
  if (!same(t.mac, hmac(secret, 'mac', body))) {
    throw new AuthError('SB_ERR_TICKET_INVALID', 'the ticket was not signed with this function server’s join secret; get a fresh one from the AS (LOOKUP)');
  }
  let decoded: unknown;
  try {
    decoded = decodeValue(body);
  } catch {
    decoded = undefined;
  }
  const c = claimsSchema.safeParse(decoded);
  if (!c.success) throw new AuthError('SB_ERR_TICKET_INVALID', 'the ticket’s claims are malformed');
  if (c.data.exp <= now) throw new AuthError('SB_ERR_TICKET_EXPIRED', `the ticket expired ${now - c.data.exp} ms ago; renew it with LOOKUP`);
  const key = hmac(secret, 'key', body);
  if (!same(t.proof, ticketProof(key, 'dialer', listenerNonce, t.nonce))) {
    throw new AuthError('SB_ERR_TICKET_INVALID', 'wrong proof of the ticket’s session key; use the key the AS gave with the ticket');
  }
  return { claims: { client: c.data.client, keys: c.data.keys, poolType: c.data.poolType, exp: c.data.exp }, key };
}
