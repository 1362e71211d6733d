import {
  AuthError,
  ChannelClosedError,
  DeadlineExceededError,
  UnavailableError,
  EventKind,
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  FrameConnection,
  OFFSET,
  Serialization,
  Status,
  VERSION_EXTENDED,
  decodeBodyAt,
  encodeEventRequest,
  errorFromStatus,
  refusalAt,
  eventKindOf,
  isRequest,
  statusOf,
  ticketReplySchema,
  tryDecodeBody,
  type LookupReply,
  type SwitchboardError,
  type TicketGrant,
} from '../protocol/index.js';
import { dial, newNonce, ticketProof, type TlsOptions } from '../security/index.js';
import { PendingTable } from '../common/pending-table.js';
import type { CallSpec } from './call-table.js';

const REQUEST_FLAGS = FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK;
const SWEEP_MS = 100;
/** Grace past a call's deadline: the FS answers TIMEOUT itself; this guards against a silent FS. */
const LOCAL_GRACE_MS = 1000;
/** A lost FS is not dialled again for this long (other candidates, or the AS, take its calls). */
const DOWN_MS = 1000;
/** A key not called for this many leases is forgotten, and its lease no longer renewed. */
const IDLE_LEASES = 2;
/** Sends of one idempotent call at most (the first and two re-sends), as the AS does. */
const MAX_ATTEMPTS = 3;

/** What the router needs of the Client that owns it. */
export interface DirectHost {
  /** LOOKUP at the current AS. */
  lookup(serviceKey: number, poolType: number): Promise<LookupReply>;
  /** The usual path, through the AS: used when no FS can be reached directly. */
  viaAs(spec: CallSpec, timeoutMs: number): Promise<unknown>;
}

export interface DirectOptions {
  tls?: TlsOptions;
  heartbeatMs: number;
  connectTimeoutMs: number;
  maxBodyBytes?: number;
}

interface Endpoint {
  id: string;
  host: string;
  port: number;
  weight: number;
  addr: string;
  /** False for an FS that reads only version 1 (LOOKUP said so): its requests go without the extension block. */
  extension: boolean;
}

/** What the AS said about one (key, pool type): where to go, until when, and the ticket to show. */
interface Route {
  endpoints: Endpoint[];
  ticket: TicketGrant | undefined;
  /** The listed FSs declare the service idempotent: lost calls are re-sent whatever the call said. */
  idempotent: boolean;
  leaseEnds: number;
  /** The lease's length as the AS gave it (renewAt moves on after a failed renewal; this does not). */
  leaseMs: number;
  renewAt: number;
  renewing: boolean;
  lastUsed: number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: SwitchboardError) => void;
  spec: CallSpec;
  deadlineAt: number;
  attempts: number;
}

/** A call queued on a connection that is not ready yet, with the answer it was routed by. */
interface Waiting {
  p: Pending;
  route: Route;
}

/** One connection to one FS. */
class FsLink {
  /** Calls sent on this connection, by request id (slots, not a Map: no hashing or rehashing per call). */
  readonly pending = new PendingTable<Pending>();
  /** Calls waiting for the connection to open (and its ticket to be taken): counted in the choice like those in flight. */
  readonly waiting = new Set<Waiting>();
  ready = false;
  draining = false;
  /** The nonce of the FS's CHALLENGE: renewals of our ticket are proved over it. */
  listenerNonce: Buffer | undefined;
  /** Tickets shown on this connection (by their claims), so each is shown once. */
  readonly shown = new WeakSet<Uint8Array>();
  /** The FS's connection-level error (request id 0), sent before it closes: the calls on it fail with it. */
  closeError: SwitchboardError | undefined;

  constructor(
    readonly addr: string,
    readonly conn: FrameConnection,
    /** Whether requests on it may carry the extension block (the FS reads version 2). */
    readonly extension: boolean,
  ) {}
}

/**
 * Director mode in the client: ask the AS once where a key is served (LOOKUP), then call those FSs
 * straight, choosing between two at random by their weight and this client's own in-flight count
 * (power of two choices). Leases are renewed in the background at half their time; a lost FS's
 * idempotent calls go to the next candidate at once; with no FS left to reach, calls go through the
 * AS as usual.
 */
export class DirectRouter {
  readonly #host: DirectHost;
  readonly #o: DirectOptions;
  readonly #routes = new Map<number, Route>();
  readonly #lookups = new Map<number, Promise<Route | undefined>>();
  readonly #links = new Map<string, FsLink>();
  readonly #downUntil = new Map<string, number>();
  readonly #sweeper: NodeJS.Timeout;
  #closed = false;
  #resolve: (v: unknown) => void = noop;
  #reject: (e: SwitchboardError) => void = noop;
  readonly #executor = (resolve: (v: unknown) => void, reject: (e: SwitchboardError) => void): void => {
    this.#resolve = resolve;
    this.#reject = reject;
  };
  /** Calls answered by an FS directly, and calls that went through the AS instead (for tests and tools). */
  direct = 0;
  viaAs = 0;
  /** Calls sent again to another FS after theirs was lost. */
  resent = 0;

  constructor(host: DirectHost, opts: DirectOptions) {
    this.#host = host;
    this.#o = opts;
    this.#sweeper = setInterval(() => this.#sweep(Date.now()), SWEEP_MS);
    this.#sweeper.unref();
  }

  get inflight(): number {
    let n = 0;
    for (const l of this.#links.values()) n += l.pending.size;
    return n;
  }

  /** FS connections open now. */
  get connections(): number {
    return this.#links.size;
  }

  /** LOOKUP answers held now, one per (key, pool type) in use. */
  get leases(): number {
    return this.#routes.size;
  }

  /** Calls waiting for an answer from the FS at `host:port`. */
  pendingOn(addr: string): number {
    return this.#links.get(addr)?.pending.size ?? 0;
  }

  call(spec: CallSpec, timeoutMs: number): Promise<unknown> {
    const now = Date.now();
    const deadlineAt = now + timeoutMs;
    const route = this.#routes.get(routeKey(spec));
    if (route !== undefined && route.leaseEnds > now) {
      route.lastUsed = now;
      return this.#send(route, spec, deadlineAt, 1, undefined, now);
    }
    // The first call for a key waits for its LOOKUP, but no longer than its own deadline; later ones
    // never wait (renewals run in the background).
    return beforeDeadline(this.#lookup(spec), deadlineAt, spec.serviceKey).then((r) =>
      r === undefined ? this.#fallback(spec, deadlineAt) : this.#send(r, spec, deadlineAt, 1, undefined, Date.now()),
    );
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const l of this.#links.values()) l.conn.close('local');
    this.#links.clear();
  }

  #lookup(spec: CallSpec): Promise<Route | undefined> {
    const k = routeKey(spec);
    let p = this.#lookups.get(k);
    if (p === undefined) {
      p = this.#host.lookup(spec.serviceKey, spec.poolType).then(
        (reply) => this.#adopt(k, reply),
        () => undefined,
      );
      void p.finally(() => this.#lookups.delete(k));
      this.#lookups.set(k, p);
    }
    return p;
  }

  #adopt(k: number, reply: LookupReply): Route {
    const now = Date.now();
    const prev = this.#routes.get(k);
    const route: Route = {
      endpoints: reply.endpoints.map((e) => ({ id: e.id, host: e.host, port: e.port, weight: e.weight, addr: `${e.host}:${e.port}`, extension: e.versions?.includes(VERSION_EXTENDED) ?? true })),
      ticket: reply.ticket,
      idempotent: reply.idempotent === true,
      leaseEnds: now + reply.leaseMs,
      leaseMs: reply.leaseMs,
      renewAt: now + reply.leaseMs / 2,
      renewing: false,
      lastUsed: prev?.lastUsed ?? now,
    };
    this.#routes.set(k, route);
    return route;
  }

  /** The calls of a key whose FSs cannot be reached go the usual way. */
  #fallback(spec: CallSpec, deadlineAt: number): Promise<unknown> {
    const left = deadlineAt - Date.now();
    if (left <= 0) return Promise.reject(new DeadlineExceededError(`no function server for service ${spec.serviceKey} answered before the deadline`));
    this.viaAs++;
    return this.#host.viaAs(spec, left);
  }

  #send(route: Route, spec: CallSpec, deadlineAt: number, attempts: number, avoid: string | undefined, now: number): Promise<unknown> {
    const ep = this.#pick(route, avoid, now);
    if (ep === undefined) return this.#fallback(spec, deadlineAt);
    const link = this.#link(ep, route.ticket);
    // One shared executor, not a closure per call: the per-call path allocates the promise and its record only.
    const promise = new Promise<unknown>(this.#executor);
    const p: Pending = { resolve: this.#resolve, reject: this.#reject, spec, deadlineAt, attempts };
    if (link.ready) this.#write(link, p, route.ticket, now);
    else link.waiting.add({ p, route });
    return promise;
  }

  #write(link: FsLink, p: Pending, ticket: TicketGrant | undefined, now: number): void {
    if (link.conn.closed) {
      this.#retry(p, link.addr, undefined);
      return;
    }
    // A ticket this connection has not seen (another key, or a renewal) goes first: the FS reads in order.
    if (ticket !== undefined && !link.shown.has(ticket.body)) this.#showTicket(link, ticket);
    const id = link.pending.add(p);
    const budget = Math.max(1, p.deadlineAt - now);
    const s = p.spec;
    // Without the block for an FS that reads only version 1, as the AS forwards to it: the routing
    // key has done its work (the choice), and the trace context is lost there either way.
    link.conn.sendFrame(REQUEST_FLAGS, 0, id, s.serviceKey, s.poolType, budget, s.body, link.extension ? s.extension : undefined);
  }

  /** Power of two choices on (own in flight + 1) / weight, among FSs not down or draining. */
  #pick(route: Route, avoid: string | undefined, now: number): Endpoint | undefined {
    let a: Endpoint | undefined;
    let b: Endpoint | undefined;
    let seen = 0;
    // Reservoir-sample two usable endpoints in one pass: no array per call.
    for (const e of route.endpoints) {
      if (e.addr === avoid || (this.#downUntil.get(e.addr) ?? 0) > now || this.#links.get(e.addr)?.draining === true) continue;
      seen++;
      if (seen === 1) a = e;
      else if (seen === 2) b = e;
      else {
        const r = Math.floor(Math.random() * seen);
        if (r === 0) a = e;
        else if (r === 1) b = e;
      }
    }
    if (b === undefined || a === undefined) return a;
    return this.#score(b) < this.#score(a) ? b : a;
  }

  #score(e: Endpoint): number {
    const link = this.#links.get(e.addr);
    return ((link === undefined ? 0 : link.pending.size + link.waiting.size) + 1) / e.weight;
  }

  #link(ep: Endpoint, ticket: TicketGrant | undefined): FsLink {
    let link = this.#links.get(ep.addr);
    if (link !== undefined) return link;
    const socket = dial({ host: ep.host, port: ep.port, tls: this.#o.tls }, () => {
      connected = true;
      if (ticket === undefined) ready();
      // With a ticket, the FS speaks first (CHALLENGE); onEvent answers it, within the same time.
    });
    let connected = false;
    const timer = setTimeout(() => {
      const why = connected
        ? `the function server at ${ep.addr} did not take our ticket within ${this.#o.connectTimeoutMs} ms (no CHALLENGE, or no answer to TICKET); is it an FS of this cluster?`
        : `connect to ${ep.addr} timed out`;
      conn.destroy(connected ? 'auth' : 'error', new Error(why));
    }, this.#o.connectTimeoutMs);
    const ready = (): void => {
      clearTimeout(timer);
      this.#ready(link as FsLink);
    };
    let nonce: Buffer | undefined;
    const conn = new FrameConnection(socket, {
      heartbeatMs: this.#o.heartbeatMs,
      maxBodyBytes: this.#o.maxBodyBytes,
      earlyFlushBytes: 8192,
      onFrameAt: (buf, off, len) => this.#answer(link as FsLink, buf, off, len),
      onEvent: (frame) => {
        const l = link as FsLink;
        const kind = eventKindOf(frame);
        if (kind === EventKind.CHALLENGE && isRequest(frame) && ticket !== undefined && nonce === undefined) {
          // Our proof of the ticket's session key over the FS's nonce and ours.
          const listener = Buffer.from((tryDecodeBody(frame) as { nonce?: Uint8Array } | undefined)?.nonce ?? []);
          nonce = newNonce();
          l.listenerNonce = listener;
          const proof = ticketProof(ticket.key, 'dialer', listener, nonce);
          l.shown.add(ticket.body);
          conn.send(encodeEventRequest(EventKind.TICKET, 1, { body: ticket.body, mac: ticket.mac, nonce, proof }, true));
          const expected = ticketProof(ticket.key, 'listener', listener, nonce);
          gate = (reply) => {
            const r = ticketReplySchema.safeParse(tryDecodeBody(reply));
            if (statusOf(reply) !== Status.OK || !r.success || !Buffer.from(r.data.proof).equals(expected)) {
              conn.destroy('auth', new AuthError('SB_ERR_TICKET_INVALID', `the function server at ${ep.addr} did not accept our ticket or could not prove the join secret`));
              return;
            }
            ready();
          };
          return;
        }
        if (kind === EventKind.TICKET && !isRequest(frame) && gate !== undefined) {
          const g = gate;
          gate = undefined;
          g(frame);
          return;
        }
        // The FS is stopping: choose it no more; what it has in flight still finishes.
        if (kind === EventKind.DRAIN && isRequest(frame)) l.draining = true;
      },
      onClose: (_reason, err) => {
        clearTimeout(timer);
        this.#lost(link as FsLink, err);
      },
    });
    let gate: ((reply: Buffer) => void) | undefined;
    link = new FsLink(ep.addr, conn, ep.extension);
    this.#links.set(ep.addr, link);
    return link;
  }

  /** The connection is open (and took our ticket): the calls that waited for it go now. */
  #ready(link: FsLink): void {
    link.ready = true;
    const now = Date.now();
    for (const w of link.waiting) this.#write(link, w.p, w.route.ticket, now);
    link.waiting.clear();
  }

  #showTicket(link: FsLink, ticket: TicketGrant): void {
    link.shown.add(ticket.body);
    // Renewals are proved over a fresh nonce of ours; the FS checks them against its CHALLENGE's.
    // Without that nonce (a connection admitted without proof) there is nothing to renew.
    const listener = link.listenerNonce;
    if (listener === undefined) return;
    const nonce = newNonce();
    link.conn.send(encodeEventRequest(EventKind.TICKET, 2, { body: ticket.body, mac: ticket.mac, nonce, proof: ticketProof(ticket.key, 'dialer', listener, nonce) }, true));
  }

  #answer(link: FsLink, buf: Buffer, off: number, len: number): void {
    const id = buf.readUInt32BE(off + OFFSET.requestId);
    const status = buf[off + OFFSET.status];
    if (id === 0 && status !== Status.OK) {
      // A connection-level refusal (a frame error, say): the FS closes next, and the calls on it fail with it.
      link.closeError = refusalAt(buf, off, len);
      return;
    }
    const p = link.pending.take(id);
    if (p === undefined) return; // late (given up by the sweep) or not ours
    let body: unknown;
    try {
      body = decodeBodyAt(buf, off, len);
    } catch (err) {
      p.reject(err as SwitchboardError);
      return;
    }
    if (status === Status.OK) {
      this.direct++;
      p.resolve(body);
    } else p.reject(errorFromStatus(status, body as { code?: string; message?: string }));
  }

  /** An FS connection closed: its idempotent calls go to the next candidate now, the others fail. */
  #lost(link: FsLink, err: Error | undefined): void {
    if (this.#links.get(link.addr) === link) this.#links.delete(link.addr);
    if (!this.#closed) this.#downUntil.set(link.addr, Date.now() + DOWN_MS);
    // Calls that waited for it never reached the FS: they may go elsewhere, whatever they are.
    const waited = [...link.waiting];
    link.waiting.clear();
    for (const w of waited) this.#retry(w.p, link.addr, w.route);
    const orphans = link.pending.takeAll();
    for (const p of orphans) this.#retry(p, link.addr, undefined, err, link.closeError);
  }

  #retry(p: Pending, from: string, route: Route | undefined, err?: Error, refusal?: SwitchboardError): void {
    const now = Date.now();
    if (this.#closed) {
      p.reject(new ChannelClosedError('the client was closed before the answer came'));
      return;
    }
    // A call that never reached the FS (its connection did not open) may go elsewhere whatever it is.
    const neverSent = route !== undefined;
    const r = route ?? this.#routes.get(routeKey(p.spec));
    // Re-sent as the AS would: the call said idempotent, or the service declares it (LOOKUP said so).
    if ((neverSent || p.spec.idempotent || r?.idempotent === true) && p.attempts < MAX_ATTEMPTS && now < p.deadlineAt) {
      if (r !== undefined) {
        if (!neverSent) this.resent++;
        this.#send(r, p.spec, p.deadlineAt, p.attempts + 1, from, now).then(p.resolve, p.reject);
        return;
      }
    }
    if (err instanceof AuthError) p.reject(err);
    else if (refusal !== undefined) p.reject(refusal);
    else if (neverSent && now >= p.deadlineAt) p.reject(new DeadlineExceededError(`no function server for service ${p.spec.serviceKey} could be reached before the deadline (the call was not sent)`));
    else if (neverSent) p.reject(new UnavailableError(`${p.attempts} function servers for service ${p.spec.serviceKey} could not be reached; the call was not sent, retry it`));
    else p.reject(new ChannelClosedError(`the connection to function server ${from} closed before it answered; the request may or may not have run`));
  }

  #sweep(now: number): void {
    for (const link of this.#links.values()) {
      // A call still waiting for its connection was never sent: it ends at its deadline, no grace.
      for (const w of link.waiting) {
        if (w.p.deadlineAt > now) continue;
        link.waiting.delete(w);
        w.p.reject(new DeadlineExceededError(`the connection to function server ${link.addr} was not ready before the deadline of a call for service ${w.p.spec.serviceKey}`));
      }
      if (link.pending.size === 0) continue;
      // Their slots wait for the late answers, so an id is never reused under one.
      for (const p of link.pending.takeExpired(now - LOCAL_GRACE_MS)) {
        p.reject(new DeadlineExceededError(`function server ${link.addr} did not answer service ${p.spec.serviceKey} before the deadline`));
      }
    }
    for (const [k, route] of this.#routes) {
      if (now - route.lastUsed > route.leaseMs * IDLE_LEASES) {
        this.#routes.delete(k);
        continue;
      }
      if (now < route.renewAt || route.renewing) continue;
      // In the background: calls keep using the old answer until the new one comes.
      route.renewing = true;
      this.#host.lookup(Math.floor(k / 65536), k % 65536).then(
        (reply) => this.#adopt(k, reply),
        () => {
          route.renewing = false;
          route.renewAt = Date.now() + SWEEP_MS * 10;
        },
      );
    }
  }
}

/** One number for (key, pool type): key × 65536 + pool type, exact below 2^53. */
function routeKey(s: { serviceKey: number; poolType: number }): number {
  return s.serviceKey * 65536 + s.poolType;
}

function noop(): void {}

/** `p`, or a TIMEOUT once `deadlineAt` passes first (the LOOKUP itself goes on for later calls). */
function beforeDeadline<T>(p: Promise<T>, deadlineAt: number, serviceKey: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new DeadlineExceededError(`the application server did not answer LOOKUP for service ${serviceKey} before the call's deadline; is it overloaded or stopped?`)),
      Math.max(0, deadlineAt - Date.now()),
    );
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
