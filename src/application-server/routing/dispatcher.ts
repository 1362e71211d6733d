import type { Logger } from '../../common/logger.js';
import {
  BadRequestError,
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  OFFSET,
  Status,
  encodeErrorResponse,
  encodeResponse,
  type SwitchboardError,
  VERSION_EXTENDED,
  readMetadata,
  stripExtension,
  type BadExtensionError,
  type RequestMetadata,
} from '../../protocol/index.js';
import { TracedSession, traceDispatch } from '../../tracing/index.js';
import type { FunctionServerEntry } from '../registry/function-server-entry.js';
import type { FsManager, TrafficSink } from '../registry/fs-manager.js';
import type { Pool } from '../registry/pool.js';
import type { SchedulingContext, SchedulingStrategy } from './scheduler.js';
import { PendingRequest, type ReplyTarget, type UpstreamConnection } from '../registry/upstream-connection.js';
import { LatencyRecorder } from './latency.js';

/**
 * What the dispatcher needs of a client connection, whichever ingress took it: the binary client
 * port (ClientSession) or the HTTP ingress (HttpSession).
 */
export interface IngressSession extends ReplyTarget {
  /** The client is not reading its answers: read no more of its requests until it does. */
  readonly blocked: boolean;
  /** When the client last sent a request the dispatcher took (epoch ms). */
  lastRequestAt: number;
  readonly maxInflight: number;
  /** A request of `bytes` is taken: count it against the session's budgets. */
  admit(bytes: number): void;
  /** A connection-level error: answered with request id 0, then the connection closes. */
  refuse(err: SwitchboardError): void;
}

/** Why a request could not be routed: the status, code and message the client gets. */
type RouteFailure = [status: number, code: string, message: string];

export interface DispatcherOptions {
  strategy: SchedulingStrategy;
  /** Deadline for a request whose header carries no budget. */
  defaultTimeoutMs: number;
  /** Requests in flight to one FS beyond which new ones are refused with OVERLOADED. */
  maxInflightPerFs: number;
  /** Times an idempotent request may be sent in all (first send included). */
  maxAttempts: number;
  /** How often pending requests are checked against their deadlines. */
  sweepMs: number;
  /** A timeout counts toward an FS's ejection only if the request was given at least this long. */
  minTimeoutMs: number;
  /**
   * An idempotent request with no answer after this share of its budget is also sent to another
   * FS; the first answer wins (a hedged request). 0 turns hedging off.
   */
  hedgeAfterRatio: number;
  logger: Logger;
  random?: () => number;
}

/**
 * Takes a request frame from a client, asks the scheduler for an FS, rewrites the request id and
 * the remaining budget in place, and forwards the same bytes; relays the answer back the same way.
 * It never decodes a request body.
 */
export class Dispatcher implements TrafficSink {
  readonly #o: DispatcherOptions;
  readonly #ctx: SchedulingContext;
  #manager: FsManager | undefined;
  /** Runs only while some request is pending: an idle AS does not wake every sweepMs. */
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;
  /** Requests the AS answered itself (no FS, overload, deadline, lost connection), by status code. */
  readonly localAnswers = new Map<number, number>();
  /** Answers relayed from FSs, indexed by status code. */
  readonly relayedAnswers = new Float64Array(256);
  /** Idempotent requests sent again after a connection dropped under them. */
  resent = 0;
  /** Idempotent requests sent to a second FS because the first was slow to answer. */
  hedged = 0;
  /** Copies of hedged requests that ended after another copy had answered: dropped, not relayed. */
  hedgeLosers = 0;
  /** How long requests sent to FSs took, from the AS taking them to their answer, by service key. */
  readonly latency = new LatencyRecorder();
  /** The clock read for the last answers' chunk: the answers of one read share it (Date.now costs ~80 ns here). */
  #answerChunk: Buffer | null = null;
  #answerNow = 0;
  /** The FS and time of the sweep under way (read by #hedge). */
  #sweepFs: FunctionServerEntry | undefined;
  #sweepNow = 0;
  readonly #hedge = (p: PendingRequest): void => this.#sendHedge(p);
  /**
   * Set while this AS is not the active of its pair: every request is answered NOT_ACTIVE, naming
   * the active's client endpoint when known. Null while serving.
   */
  notActive: (() => { host: string; port: number } | undefined) | null = null;
  /** Until then (epoch ms; set at start), a key no FS serves is answered UNAVAILABLE, not SERVICE_NOT_FOUND. */
  unknownKeysUnavailableUntil = 0;
  /** Set while the AS stops: new requests are refused UNAVAILABLE with this message; those in flight finish. */
  stopping: string | null = null;

  /** Two-way requests sent to FSs and not yet answered. */
  get inflight(): number {
    let n = 0;
    if (this.#manager) for (const fs of this.#manager.withConnections()) n += fs.inflight;
    return n;
  }

  constructor(opts: DispatcherOptions) {
    this.#o = opts;
    this.#ctx = { now: 0, random: opts.random ?? Math.random, serviceKey: 0, poolType: 0, routingKey: undefined, again: false };
  }

  /** True in the start-up grace: a key or name no FS serves may yet come back with its FS. */
  inStartupGrace(now: number): boolean {
    return now < this.unknownKeysUnavailableUntil;
  }

  attach(manager: FsManager): void {
    this.#manager = manager;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  /** Whether the deadline sweep is scheduled (it is while any request is pending). */
  get sweeping(): boolean {
    return this.#sweeper !== undefined;
  }

  /** The request frame lies at buf[off, off + len): a chunk the ingress read, never reused. */
  dispatch(session: IngressSession, buf: Buffer, off: number, len: number): void {
    // The client is not reading its answers: read no more of its requests until it does.
    if (session.blocked) session.pause(session);
    const flags = buf[off + OFFSET.flags];
    const clientId = buf.readUInt32BE(off + OFFSET.requestId);
    if ((flags & FLAG_REQUEST) === 0) {
      // An answer numbered 0 would read as a connection-level error: say so at that level and close.
      if (clientId === 0) {
        session.refuse(new BadRequestError('a response frame with request id 0 from a client; clients send requests: set the request flag', 'SB_ERR_BAD_REQUEST'));
        return;
      }
      this.#answer(session, clientId, Status.BAD_REQUEST, 'SB_ERR_BAD_REQUEST', 'clients send requests, not responses; set the request flag');
      return;
    }
    if (clientId === 0 && (flags & FLAG_TWO_WAY) !== 0) {
      // Id 0 is how a connection-level error is told apart from an answer: a call numbered 0 could
      // never be answered unambiguously, so the client is broken; tell it and close.
      session.refuse(new BadRequestError('request id 0 is reserved for connection-level errors; number two-way requests from 1', 'SB_ERR_BAD_REQUEST'));
      return;
    }
    const serviceKey = buf.readUInt32BE(off + OFFSET.serviceKey);
    const poolType = buf.readUInt16BE(off + OFFSET.poolType);
    const now = Date.now();
    if (this.notActive !== null) {
      this.#refuseNotActive(session, clientId, serviceKey, (flags & FLAG_TWO_WAY) !== 0);
      return;
    }
    if (this.stopping !== null) {
      if ((flags & FLAG_TWO_WAY) !== 0) this.#answer(session, clientId, Status.UNAVAILABLE, 'SB_ERR_UNAVAILABLE', this.stopping);
      return;
    }
    const budget = buf.readUInt32BE(off + OFFSET.budget);
    const deadlineAt = now + (budget > 0 ? budget : this.#o.defaultTimeoutMs);
    let routingKey: Buffer | undefined;
    if (buf[off + OFFSET.version] === VERSION_EXTENDED) {
      let meta: RequestMetadata | undefined;
      try {
        meta = readMetadata(buf, off, len);
      } catch (err) {
        // Only this request is refused: its framing was sound, so the connection goes on.
        const e = err as BadExtensionError;
        if ((flags & FLAG_TWO_WAY) !== 0) this.#answer(session, clientId, Status.BAD_REQUEST, e.code, e.message);
        return;
      }
      routingKey = meta?.routingKey;
      // A traced two-way request (docs/tracing.md): the AS's span, and the frame's parent id
      // rewritten to it. The span stands in for the session as the reply target, to end with the answer.
      if (meta?.traceparent !== undefined && (flags & FLAG_TWO_WAY) !== 0) session = traceDispatch(session, buf, off, meta, serviceKey, poolType) ?? session;
    }
    if ((flags & FLAG_TWO_WAY) === 0) {
      this.#forwardOneWay(session, buf, off, len, serviceKey, poolType, deadlineAt, now, routingKey);
      return;
    }
    if (session.inflight >= session.maxInflight) {
      this.#answer(session, clientId, Status.OVERLOADED, 'SB_ERR_OVERLOADED', `this connection has ${session.inflight} requests in flight, the most allowed; wait for answers or open another connection`);
      return;
    }
    session.admit(len);
    const p = new PendingRequest(session, clientId, serviceKey, poolType, deadlineAt, now, len, null, 1);
    if (routingKey !== undefined) p.routingKey = routingKey;
    const failure = this.#route(p, buf, off, len, now, undefined);
    // Only a request the AS took keeps the connection from the idle close; a refused one does not.
    if (failure !== undefined) this.#fail(p, ...failure);
    else session.lastRequestAt = now;
  }

  /**
   * A response from an FS: un-pend it and relay it under the client's own request id. It lies at
   * buf[off, off + len) of a chunk read from the FS, rewritten in place and forwarded without a copy.
   */
  response(up: UpstreamConnection, buf: Buffer, off: number, len: number): void {
    if ((buf[off + OFFSET.flags] & FLAG_REQUEST) !== 0) {
      // An FS never sends requests on a pool connection: it is confused, so is this connection.
      (up.conn.owner as Pool).markDamaged(up, 'the function server sent a request on a pool connection');
      return;
    }
    const id = buf.readUInt32BE(off + OFFSET.requestId);
    const p = up.pending.take(id);
    if (p === undefined) return; // answered already (deadline passed) or not ours
    const fs = (up.conn.owner as Pool).owner as FunctionServerEntry;
    fs.inflight--;
    const status = buf[off + OFFSET.status];
    if (buf !== this.#answerChunk) {
      this.#answerChunk = buf;
      this.#answerNow = Date.now();
    }
    const g = p.group;
    // Another copy of this hedged request answered first: this answer is dropped, so it is not
    // counted as relayed or served.
    const lost = g !== null && g.done;
    if (lost) this.hedgeLosers++;
    else {
      this.relayedAnswers[status]++;
      if (status === Status.OK) fs.served++;
    }
    // An FS that times out or cannot answer counts toward ejection; a plugin's own error does not.
    if (status === Status.OK) (this.#manager as FsManager).recordOutcome(fs, false);
    else if (status === Status.SERVER_ERROR) (this.#manager as FsManager).recordOutcome(fs, true);
    else this.#outcome(fs, p, status === Status.TIMEOUT, this.#answerNow);
    if (fs.retired) this.#manager?.closeIfRetiredAndIdle(fs);
    if (g !== null) {
      g.live--;
      if (lost) return;
      g.done = true;
    }
    this.latency.record(p.serviceKey, this.#answerNow - p.startedAt);
    const t = p.target;
    t.done(p.bytes);
    if (t.closed) return;
    buf.writeUInt32BE(p.clientId, off + OFFSET.requestId);
    t.replyFrom(buf, off, len);
  }

  /** Requests left pending on a connection that died: send the idempotent ones elsewhere, fail the rest now. */
  orphaned(fs: FunctionServerEntry, orphans: PendingRequest[]): void {
    const now = Date.now();
    let resent = 0;
    for (const p of orphans) {
      fs.inflight--;
      const g = p.group;
      if (g !== null) {
        g.live--;
        // Answered already, or another copy of this hedged request is still on its way.
        if (g.done || g.live > 0) continue;
      }
      if (p.target.closed) {
        p.target.done(p.bytes);
        continue;
      }
      if (p.frame !== null && p.attempts < this.#o.maxAttempts && now < p.deadlineAt) {
        p.attempts++;
        resent++;
        const failure = this.#route(p, p.frame, p.frameOffset, p.bytes, now, fs);
        if (failure !== undefined) this.#failSent(p, now, ...failure);
        else if (g !== null) g.live++;
      } else {
        this.#failSent(p, now, Status.CHANNEL_CLOSED, 'SB_ERR_CHANNEL_CLOSED', `the connection to function server ${fs.id} closed before it answered; the request may or may not have run`);
      }
    }
    this.resent += resent;
    this.#o.logger.info({ fs: fs.id, orphans: orphans.length, resent }, 'requests pending on a lost connection were re-sent or failed');
  }

  /** Answers TIMEOUT for every pending request whose deadline has passed, and hedges slow idempotent ones. */
  sweep(now: number): void {
    const m = this.#manager;
    if (!m) return;
    let idleRetired: FunctionServerEntry[] | undefined;
    this.#sweepNow = now;
    let pending = 0;
    for (const fs of m.withConnections()) {
      this.#sweepFs = fs;
      for (const up of fs.pool.connections()) {
        if (up.pending.size === 0) continue;
        for (const p of up.pending.takeExpired(now, this.#hedge)) {
          fs.inflight--;
          this.#outcome(fs, p, true, now);
          const g = p.group;
          if (g !== null) {
            g.live--;
            if (g.done) {
              this.hedgeLosers++;
              continue;
            }
          }
          this.#failSent(p, now, Status.TIMEOUT, 'SB_ERR_TIMEOUT', `function server ${fs.id} did not answer service ${p.serviceKey} before the deadline`);
        }
        pending += up.pending.size;
      }
      if (fs.retired && fs.inflight === 0) (idleRetired ??= []).push(fs);
    }
    if (idleRetired) for (const fs of idleRetired) m.closeIfRetiredAndIdle(fs);
    // Nothing left to watch: stop until the next request is sent (#route starts it again).
    if (pending === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /**
   * A second copy of a slow idempotent request, to another FS; whichever answers first is relayed.
   * When no other FS can take it, nothing happens: the first copy still has its chance.
   */
  #sendHedge(p: PendingRequest): void {
    const fs = this.#sweepFs as FunctionServerEntry;
    if (p.frame === null || p.target.closed || p.attempts >= this.#o.maxAttempts || (p.group !== null && p.group.done)) return;
    const copy = new PendingRequest(p.target, p.clientId, p.serviceKey, p.poolType, p.deadlineAt, p.startedAt, p.bytes, p.frame, p.attempts + 1);
    copy.frameOffset = p.frameOffset;
    copy.hedgeCopy = true;
    const g = p.group ?? { done: false, live: 1 };
    copy.group = g;
    if (this.#route(copy, p.frame, p.frameOffset, p.bytes, this.#sweepNow, fs, true) !== undefined) return;
    p.group = g;
    g.live++;
    p.attempts = copy.attempts;
    this.hedged++;
  }

  /** Sends `p` to an FS; returns why it could not, for the caller to answer (or ignore, for a hedge). */
  #route(p: PendingRequest, buf: Buffer, off: number, len: number, now: number, exclude: FunctionServerEntry | undefined, onlyOthers = false): RouteFailure | undefined {
    const m = this.#manager as FsManager;
    const set = m.candidates(p.serviceKey, p.poolType);
    let tier = set.active.length > 0 ? set.active : set.standby;
    if (exclude !== undefined && tier.includes(exclude)) {
      tier = tier.filter((e) => e !== exclude);
      if (tier.length === 0 && set.active.length > 0) tier = set.standby.filter((e) => e !== exclude);
    }
    if (tier.length === 0) {
      if (onlyOthers) return [Status.UNAVAILABLE, '', ''];
      if (set.known) return [Status.UNAVAILABLE, 'SB_ERR_UNAVAILABLE', `no function server for service ${p.serviceKey} (pool type ${p.poolType}) is available now; retry later`];
      // Just started: the FSs that serve it may not have come back yet. Not found would be a lie.
      if (this.inStartupGrace(now)) return [Status.UNAVAILABLE, 'SB_ERR_UNAVAILABLE', `this application server started moments ago and may not have heard from every function server yet (no FS serves service ${p.serviceKey} in pool type ${p.poolType} so far); retry shortly, or at another AS`];
      return [Status.SERVICE_NOT_FOUND, 'SB_ERR_SERVICE_NOT_FOUND', `no function server serves service ${p.serviceKey} in pool type ${p.poolType}; check the key, the pool type and that the plugin is loaded`];
    }
    const ctx = this.#ctx;
    ctx.now = now;
    ctx.serviceKey = p.serviceKey;
    ctx.poolType = p.poolType;
    ctx.routingKey = p.routingKey;
    ctx.again = exclude !== undefined;
    let fs = this.#o.strategy.pick(tier, ctx) as FunctionServerEntry;
    if (fs.inflight >= this.#o.maxInflightPerFs) {
      // The pick is full; choose again among those with room before refusing.
      const max = this.#o.maxInflightPerFs;
      ctx.again = true;
      const roomy = tier.filter((e) => e.inflight < max);
      const again = roomy.length > 0 ? (this.#o.strategy.pick(roomy, ctx) as FunctionServerEntry) : undefined;
      if (again === undefined) {
        return [Status.OVERLOADED, 'SB_ERR_OVERLOADED', `every function server for service ${p.serviceKey} has ${max} requests in flight, the most allowed; back off and retry`];
      }
      fs = again;
    }
    const up = fs.pool.rent();
    if (up === undefined) {
      return [Status.UNAVAILABLE, 'SB_ERR_UNAVAILABLE', `function server ${fs.id} has no open connection; retry later`];
    }
    if (p.frame !== null && buf === p.frame) {
      // A re-send or a hedge: the first send may still sit, by reference, in a backed-up socket's
      // buffer, so this one gets its own bytes to rewrite.
      buf = Buffer.from(buf.subarray(off, off + len));
      off = 0;
    }
    // Kept (the chunk and the frame's offset in it: no copy, no view) only while it may be sent again.
    if (p.frame === null && fs.isIdempotent(p.serviceKey)) {
      p.frame = buf;
      p.frameOffset = off;
      const r = this.#o.hedgeAfterRatio;
      if (r > 0 && r < 1 && p.group === null) p.hedgeAt = p.startedAt + (p.deadlineAt - p.startedAt) * r;
    }
    const id = up.pending.add(p);
    fs.inflight++;
    if (this.#sweeper === undefined && !this.#closed) {
      this.#sweeper = setInterval(() => this.sweep(Date.now()), this.#o.sweepMs);
      this.#sweeper.unref();
    }
    if (buf[off + OFFSET.version] === VERSION_EXTENDED && !fs.readsExtension) {
      // An FS that did not say it reads version 2 gets the request without its extension block.
      buf = stripExtension(buf, off, len);
      off = 0;
      len = buf.length;
    }
    buf.writeUInt32BE(id, off + OFFSET.requestId);
    buf.writeUInt32BE(Math.max(1, p.deadlineAt - now), off + OFFSET.budget);
    up.conn.forward(buf, off, len);
    if (p.target instanceof TracedSession) p.target.sent(fs.id, p.attempts, onlyOthers);
    if (up.conn.blocked && !up.waiting.has(p.target)) {
      // The FS's socket is backed up: hold this client's reading rather than buffer without limit.
      p.target.pause(up);
      up.waiting.add(p.target);
    }
    return undefined;
  }

  /** An FS connection's socket drained: let the clients held on it read again. */
  drained(up: UpstreamConnection): void {
    for (const s of up.waiting) s.resume(up);
    up.waiting.clear();
  }

  #forwardOneWay(session: IngressSession, buf: Buffer, off: number, len: number, serviceKey: number, poolType: number, deadlineAt: number, now: number, routingKey: Buffer | undefined): void {
    const set = (this.#manager as FsManager).candidates(serviceKey, poolType);
    const tier = set.active.length > 0 ? set.active : set.standby;
    const ctx = this.#ctx;
    ctx.now = now;
    ctx.serviceKey = serviceKey;
    ctx.poolType = poolType;
    ctx.routingKey = routingKey;
    ctx.again = false;
    const fs = this.#o.strategy.pick(tier, ctx) as FunctionServerEntry | undefined;
    const up = fs?.pool.rent();
    // One-way: nobody waits for an answer, so there is nobody to tell.
    if (fs === undefined || up === undefined) return;
    if (buf[off + OFFSET.version] === VERSION_EXTENDED && !fs.readsExtension) {
      buf = stripExtension(buf, off, len);
      off = 0;
      len = buf.length;
    }
    buf.writeUInt32BE(Math.max(1, deadlineAt - now), off + OFFSET.budget);
    up.conn.forward(buf, off, len);
    session.lastRequestAt = now;
    // Nothing comes back to count against a budget, so backpressure is the only bound: a client
    // flooding one-way requests at a slow FS is read no faster than that FS reads.
    if (up.conn.blocked && !up.waiting.has(session)) {
      session.pause(up);
      up.waiting.add(session);
    }
  }

  /**
   * Counts an answer for outlier detection; `timedOut` for a TIMEOUT (the AS's or the FS's). A
   * timeout counts against the FS only when the request had at least minTimeoutMs: a client that
   * asks for 1 ms answers must not get healthy FSs ejected. Nor does a hedge copy's: it was sent
   * with only what was left of the budget, so hedging alone would eject healthy FSs. A black hole
   * is still caught by the first sends it gets.
   */
  #outcome(fs: FunctionServerEntry, p: PendingRequest, timedOut: boolean, now: number): void {
    if (timedOut && (p.hedgeCopy || now - p.startedAt < this.#o.minTimeoutMs)) return;
    (this.#manager as FsManager).recordOutcome(fs, timedOut);
  }

  /** The standby's answer: the request did not run; here is where the active is. */
  #refuseNotActive(session: IngressSession, clientId: number, serviceKey: number, twoWay: boolean): void {
    this.localAnswers.set(Status.NOT_ACTIVE, (this.localAnswers.get(Status.NOT_ACTIVE) ?? 0) + 1);
    if (!twoWay) return;
    const active = (this.notActive as () => { host: string; port: number } | undefined)();
    const message = active
      ? `this application server is the standby of its pair; the active one serves clients at ${active.host}:${active.port}`
      : 'this application server is not the active of its pair (the pair is negotiating, or the active is unknown); try the other one';
    session.reply(encodeResponse(clientId, Status.NOT_ACTIVE, active ? { code: 'SB_ERR_NOT_ACTIVE', message, active } : { code: 'SB_ERR_NOT_ACTIVE', message }, serviceKey));
  }

  /** #fail for a request that was sent to an FS: its time until now goes into the duration histogram. */
  #failSent(p: PendingRequest, now: number, status: number, code: string, message: string): void {
    this.latency.record(p.serviceKey, now - p.startedAt);
    this.#fail(p, status, code, message);
  }

  /** Ends a pending request with an answer from the AS itself. */
  #fail(p: PendingRequest, status: number, code: string, message: string): void {
    if (p.group !== null) p.group.done = true;
    p.target.done(p.bytes);
    this.#answer(p.target, p.clientId, status, code, message, p.serviceKey);
  }

  #answer(t: ReplyTarget, clientId: number, status: number, code: string, message: string, serviceKey = 0): void {
    this.localAnswers.set(status, (this.localAnswers.get(status) ?? 0) + 1);
    if (!t.closed) t.reply(encodeErrorResponse(clientId, status, code, message, serviceKey));
  }
}
