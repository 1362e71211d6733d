import { AuthError, OFFSET, FLAG_TWO_WAY, Status, encodeErrorResponse, ticketRequestSchema, type FrameConnection } from '../protocol/index.js';
import { MAX_TICKET_KEYS, ticketProof, verifyTicket } from '../security/index.js';

/** Marks an FS connection on which the AS asked DESCRIBE: a pool connection, not a direct client. */
export const AS_POOL = Symbol('as pool connection');

/**
 * What a direct client (director mode) may call on one FS connection: the keys its tickets named,
 * each until its ticket expires. Renewals add keys and push expiries forward.
 */
export class DirectGrant {
  client = '';
  /** Service key → epoch ms its ticket expires. */
  readonly keys = new Map<number, number>();

  /**
   * `nonce`: the one this connection's CHALLENGE carried; every TICKET on it is proved over it.
   * `poolType`: this FS's; a ticket for another pool type (0 in a ticket means any) is not for it.
   */
  constructor(
    readonly nonce: Buffer,
    readonly poolType: number,
  ) {}

  /** Checks a TICKET body; on success grants its keys and returns the answer's body, else throws AuthError. */
  accept(secret: Buffer, body: unknown, now: number): { proof: Buffer; keys: number[]; expiresAt: number } {
    const t = ticketRequestSchema.safeParse(body);
    if (!t.success) throw new AuthError('SB_ERR_TICKET_INVALID', `TICKET is malformed: ${t.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
    const { claims, key } = verifyTicket(secret, t.data, this.nonce, now);
    if (claims.poolType !== 0 && claims.poolType !== this.poolType) {
      throw new AuthError('SB_ERR_TICKET_INVALID', `the ticket is for pool type ${claims.poolType} and this function server is in pool type ${this.poolType}; LOOKUP again and call the FSs it names`);
    }
    for (const [k, exp] of this.keys) if (exp <= now) this.keys.delete(k);
    const fresh = claims.keys.filter((k) => !this.keys.has(k)).length;
    if (this.keys.size + fresh > MAX_TICKET_KEYS) throw new AuthError('SB_ERR_TICKET_INVALID', `this connection would hold more than ${MAX_TICKET_KEYS} granted keys; open another connection`);
    for (const k of claims.keys) this.keys.set(k, Math.max(this.keys.get(k) ?? 0, claims.exp));
    this.client = claims.client;
    return { proof: ticketProof(key, 'listener', this.nonce, t.data.nonce), keys: [...this.keys.keys()], expiresAt: claims.exp };
  }

  /** Whether the request at buf[off] is within the grant; if not, it is answered UNAUTHORIZED here. */
  allows(buf: Buffer, off: number, conn: FrameConnection): boolean {
    const key = buf.readUInt32BE(off + OFFSET.serviceKey);
    const exp = this.keys.get(key);
    const now = Date.now();
    if (exp !== undefined && exp > now) return true;
    if ((buf[off + OFFSET.flags] & FLAG_TWO_WAY) !== 0) {
      const [code, message] =
        exp === undefined
          ? ['SB_ERR_TICKET_SCOPE', `your ticket does not name service ${key}; LOOKUP that key at the AS first`]
          : ['SB_ERR_TICKET_EXPIRED', `your ticket for service ${key} expired ${now - exp} ms ago; renew it with LOOKUP`];
      conn.send(encodeErrorResponse(buf.readUInt32BE(off + OFFSET.requestId), Status.UNAUTHORIZED, code, message, key));
    }
    return false;
  }
}
