import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  AuthError,
  EventKind,
  Status,
  authReplySchema,
  authRequestSchema,
  challengeSchema,
  decodeBody,
  encodeEventRequest,
  encodeEventResponse,
  eventKindOf,
  isRequest,
  isTwoWay,
  nodeTimers,
  requestIdOf,
  statusOf,
  tryDecodeBody,
  type FrameConnection,
  type FrameHandlers,
  type Timers,
} from '../protocol/index.js';

/**
 * Challenge–response proof of a shared secret, both ways, without the secret on the wire:
 *
 *   listener → CHALLENGE { v: 1, realm, nonce: L, mechanisms: ['hmac-sha256'] }     (one-way event)
 *   dialer   → AUTH      { mechanism, nonce: D, proof: HMAC(secret, tag(realm, 'dialer', L, D)) }
 *   listener → AUTH answer, status OK, { proof: HMAC(secret, tag(realm, 'listener', L, D)) }
 *
 * Both nonces are fresh per connection, so a recorded proof is worth nothing on another one, and
 * each side's proof names its role, so one cannot be reflected back as the other's.
 */
export const AUTH_MECHANISM = 'hmac-sha256';
const NONCE_BYTES = 32;

/** Which secret a port asks for: FSs and ASs prove the join secret, clients the client secret. */
export type AuthRealm = 'join' | 'client';

export function proofOf(secret: Buffer, realm: string, role: 'dialer' | 'listener', listenerNonce: Uint8Array, dialerNonce: Uint8Array): Buffer {
  return createHmac('sha256', secret)
    .update(`switchboard-auth-v1\0${realm}\0${role}\0`)
    .update(listenerNonce)
    .update(dialerNonce)
    .digest();
}

function sameProof(a: Uint8Array, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface AuthSettings {
  secret: Buffer;
  realm: AuthRealm;
  /** The peer must finish its part within this. */
  timeoutMs: number;
  timers?: Timers;
}

export interface GateHooks {
  /** The peer proved the secret; `conn` now runs `handlers`. */
  onAuthenticated?: (conn: FrameConnection) => void;
  /** The peer failed; the connection is being closed with reason 'auth'. */
  onRefused?: (conn: FrameConnection, err: AuthError) => void;
  /**
   * A direct client's TICKET in place of AUTH (director mode). Returns the answer's body, or throws
   * AuthError to refuse. Without this hook, TICKET is refused like anything else but AUTH.
   */
  onTicket?: (conn: FrameConnection, body: unknown, listenerNonce: Buffer) => Record<string, unknown>;
}

/**
 * Puts a listener's connection behind the gate: sends CHALLENGE, lets only heartbeats and AUTH
 * through, and hands the connection to `handlers` once the dialer's proof is right. Anything else
 * first, a wrong proof, or no proof within the timeout closes the connection with a
 * connection-level UNAUTHORIZED error.
 */
export function guardListener(conn: FrameConnection, auth: AuthSettings, handlers: FrameHandlers, hooks: GateHooks = {}): void {
  const timers = auth.timers ?? nodeTimers;
  const nonce = randomBytes(NONCE_BYTES);
  let done = false;
  const refuse = (err: AuthError): void => {
    if (done) return;
    done = true;
    timers.clearTimeout(timer);
    hooks.onRefused?.(conn, err);
    conn.refuse(err, 'auth');
  };
  const timer = timers.setTimeout(
    () => refuse(new AuthError('SB_ERR_AUTH_TIMEOUT', `no proof of the ${auth.realm} secret within ${auth.timeoutMs} ms; answer CHALLENGE with AUTH${hooks.onTicket ? ' (or, a direct client, with TICKET)' : ''} at once`)),
    auth.timeoutMs,
  );
  // A peer that hangs up before its proof leaves nothing to time out.
  conn.socket.once('close', () => {
    if (done) return;
    done = true;
    timers.clearTimeout(timer);
  });
  const required = (): void =>
    refuse(new AuthError('SB_ERR_AUTH_REQUIRED', `this port requires proof of the ${auth.realm} secret before anything else; configure the secret on this peer (answer CHALLENGE with AUTH)${hooks.onTicket ? ', or, a direct client, present a ticket from the AS (answer CHALLENGE with TICKET)' : ''}`));
  conn.setHandlers({
    onFrameAt: required,
    onEvent: (frame) => {
      if (done) return;
      if (eventKindOf(frame) === EventKind.TICKET && hooks.onTicket !== undefined && isRequest(frame) && isTwoWay(frame)) {
        let reply: Record<string, unknown>;
        try {
          reply = hooks.onTicket(conn, tryDecodeBody(frame), nonce);
        } catch (err) {
          return refuse(err instanceof AuthError ? err : new AuthError('SB_ERR_TICKET_INVALID', (err as Error).message));
        }
        done = true;
        timers.clearTimeout(timer);
        conn.send(encodeEventResponse(EventKind.TICKET, requestIdOf(frame), reply));
        conn.setHandlers(handlers);
        hooks.onAuthenticated?.(conn);
        return;
      }
      if (eventKindOf(frame) !== EventKind.AUTH || !isRequest(frame) || !isTwoWay(frame)) return required();
      const body = authRequestSchema.safeParse(tryDecodeBody(frame));
      if (!body.success) return refuse(new AuthError('SB_ERR_AUTH_FAILED', `AUTH is malformed: ${body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`));
      const expected = proofOf(auth.secret, auth.realm, 'dialer', nonce, body.data.nonce);
      if (!sameProof(body.data.proof, expected)) return refuse(new AuthError('SB_ERR_AUTH_FAILED', `wrong proof of the ${auth.realm} secret; both sides must use the same secret file`));
      done = true;
      timers.clearTimeout(timer);
      conn.send(encodeEventResponse(EventKind.AUTH, requestIdOf(frame), { proof: proofOf(auth.secret, auth.realm, 'listener', nonce, body.data.nonce) }));
      conn.setHandlers(handlers);
      hooks.onAuthenticated?.(conn);
    },
  });
  conn.send(encodeEventRequest(EventKind.CHALLENGE, 0, { v: 1, realm: auth.realm, nonce, mechanisms: [AUTH_MECHANISM] }, false));
}

/**
 * The dialer's side: waits for CHALLENGE, answers AUTH, checks the listener's own proof, then hands
 * the connection to `handlers`. Rejects (and closes the connection) when the listener asks for
 * nothing in time (it has no secret: talking to it would be unauthenticated), refuses the proof,
 * or proves a different secret.
 */
export function authenticateDialer(conn: FrameConnection, auth: AuthSettings, handlers: FrameHandlers): Promise<void> {
  const timers = auth.timers ?? nodeTimers;
  const nonce = randomBytes(NONCE_BYTES);
  return new Promise<void>((resolve, reject) => {
    let listenerNonce: Uint8Array | undefined;
    let settled = false;
    const fail = (err: AuthError): void => {
      if (settled) return;
      settled = true;
      timers.clearTimeout(timer);
      conn.destroy('auth', err);
      reject(err);
    };
    const timer = timers.setTimeout(
      () =>
        fail(
          new AuthError(
            'SB_ERR_AUTH_TIMEOUT',
            listenerNonce === undefined
              ? `the peer at ${conn.remote} did not ask for proof within ${auth.timeoutMs} ms; it has no ${auth.realm} secret set: give it the same secret`
              : `the peer at ${conn.remote} did not answer AUTH within ${auth.timeoutMs} ms`,
          ),
        ),
      auth.timeoutMs,
    );
    conn.setHandlers({
      onFrame: (frame) => {
        // A connection-level refusal (request id 0) or anything else before the proof is done.
        const body = tryDecodeBody(frame) as { code?: string; message?: string } | undefined;
        fail(new AuthError(body?.code ?? 'SB_ERR_AUTH_FAILED', `the peer at ${conn.remote} refused us: ${body?.message ?? `status ${statusOf(frame)}`}`));
      },
      onEvent: (frame) => {
        if (settled) return;
        const kind = eventKindOf(frame);
        if (kind === EventKind.CHALLENGE && isRequest(frame) && listenerNonce === undefined) {
          const c = challengeSchema.safeParse(tryDecodeBody(frame));
          if (!c.success || c.data.realm !== auth.realm || !c.data.mechanisms.includes(AUTH_MECHANISM)) {
            return fail(new AuthError('SB_ERR_AUTH_FAILED', `the peer at ${conn.remote} asked for proof we cannot give (${c.success ? `realm ${c.data.realm}, mechanisms ${c.data.mechanisms.join(',')}` : 'malformed CHALLENGE'}); is it the right port?`));
          }
          // A copy: the decoded bin may be a view of a read buffer the socket reuses (onread).
          listenerNonce = Buffer.from(c.data.nonce);
          const proof = proofOf(auth.secret, auth.realm, 'dialer', listenerNonce, nonce);
          conn.send(encodeEventRequest(EventKind.AUTH, 1, { mechanism: AUTH_MECHANISM, nonce, proof }, true));
          return;
        }
        if (kind === EventKind.AUTH && !isRequest(frame) && listenerNonce !== undefined) {
          let body: unknown;
          try {
            body = decodeBody(frame);
          } catch {
            body = undefined;
          }
          if (statusOf(frame) !== Status.OK) {
            const e = body as { code?: string; message?: string } | undefined;
            return fail(new AuthError(e?.code ?? 'SB_ERR_AUTH_FAILED', `the peer at ${conn.remote} refused our proof: ${e?.message ?? 'no reason given'}`));
          }
          const r = authReplySchema.safeParse(body);
          if (!r.success || !sameProof(r.data.proof, proofOf(auth.secret, auth.realm, 'listener', listenerNonce, nonce))) {
            return fail(new AuthError('SB_ERR_AUTH_FAILED', `the peer at ${conn.remote} could not prove the ${auth.realm} secret; it is not who we meant to reach`));
          }
          settled = true;
          timers.clearTimeout(timer);
          conn.setHandlers(handlers);
          resolve();
          return;
        }
        if (isRequest(frame) && isTwoWay(frame)) conn.rejectEvent(frame);
      },
    });
  });
}
