import { randomBytes } from 'node:crypto';
import {
  BadRequestError,
  BodyDecodeError,
  clampDelay,
  DeadlineExceededError,
  FLAG_TWO_WAY,
  HEADER_SIZE,
  OFFSET,
  Serialization,
  Status,
  ServiceFailedError,
  SwitchboardError,
  decodeBodyAt,
  encodeBody,
  encodeErrorResponse,
  encodeResponse,
  readMetadata,
  VERSION_EXTENDED,
  type BadExtensionError,
  type RequestMetadata,
} from '../protocol/index.js';
import { describeIssues } from '../contracts/index.js';
import { RequestContext, type ServiceEntry, type ServiceTable } from '../plugins/index.js';
import type { Logger } from '../common/logger.js';
import { RateLimitedLog } from '../common/rate-limited-log.js';
import { endHandleSpan, failHandleSpan, handlerOverdue, runInSpan, startHandleSpan } from '../tracing/index.js';
import type { Span } from '@opentelemetry/api';

/** Where answers go: a pool connection, or the test bed's in-memory sink. */
export interface AnswerSink {
  send(frame: Buffer): void;
  sendFrame(flags: number, status: number, requestId: number, serviceKey: number, poolType: number, budgetMs: number, body: Buffer): void;
  refuse(err: SwitchboardError): void;
  /** The largest answer body the caller accepts. */
  readonly peerMaxBodyBytes: number;
}

/** A handler error's message reaches the caller up to this many characters; the rest is cut. */
export const MAX_ERROR_MESSAGE_CHARS = 4096;
/** And its code up to this many (PluginError refuses longer ones). */
export const MAX_ERROR_CODE_CHARS = 128;

function cut(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length - max} more characters cut)`;
}

/** One-way requests may take half the handler slots: the other half stays for two-way callers. */
export function defaultMaxOneWayInflight(maxInflight: number): number {
  return Math.floor(maxInflight / 2);
}

export interface RequestHandlerOptions {
  /** The first table; replaced whole by a reload (see `table`). */
  table: ServiceTable;
  logger: Logger;
  /** Requests in flight on this FS beyond which new ones get OVERLOADED. */
  maxInflight: number;
  /**
   * One-way requests running at once beyond which new ones are dropped (default half of
   * maxInflight): they send no answer, so nothing else bounds them, and without this a stream of
   * slow one-way requests could take every slot from two-way callers.
   */
  maxOneWayInflight?: number;
  /** Deadline for a request that names none and whose service sets none; 0 means none. */
  defaultTimeoutMs: number;
  /** Largest answer body; the peer's own announced cap may be smaller. */
  maxBodyBytes: number;
  /** Check answers against their contract's response schema (SERVER_ERROR when one does not match). */
  validateResponses?: boolean;
}

interface Thenable {
  then(ok: (v: unknown) => void, fail: (e: unknown) => void): unknown;
}
const isThenable = (v: unknown): v is Thenable => typeof (v as Thenable | null)?.then === 'function';

/** Decodes a request, runs its handler, encodes the answer. Knows nothing about sockets beyond `send`. */
export class RequestHandler {
  readonly #opts: RequestHandlerOptions;
  readonly #log: RateLimitedLog;
  /**
   * The services served now. A reload swaps it; a request takes its entry when it arrives, so the
   * requests already running finish on the code they started on.
   */
  table: ServiceTable;
  /** Handlers running now, overdue ones included: they hold memory and CPU until they really end. */
  #inflight = 0;
  /** Of #inflight, one-way requests; at most #maxOneWay. */
  #oneWayInflight = 0;
  readonly #maxOneWay: number;
  /** One-way requests dropped at maxOneWayInflight. */
  oneWayDropped = 0;
  /** Handlers whose deadline was answered with TIMEOUT but which have not ended (they ignore their signal). */
  #overdue = 0;
  /** Requests whose handler holds their AbortSignal: the only ones a drain timeout must abort. */
  readonly #active = new Set<RequestContext>();
  readonly #watch = (ctx: RequestContext): void => {
    this.#active.add(ctx);
  };
  #idleWaiters: (() => void)[] = [];

  constructor(opts: RequestHandlerOptions) {
    this.#opts = opts;
    this.table = opts.table;
    this.#maxOneWay = opts.maxOneWayInflight ?? defaultMaxOneWayInflight(opts.maxInflight);
    this.#log = new RateLimitedLog(opts.logger, { burst: 10, windowMs: 10_000 });
  }

  get inflight(): number {
    return this.#inflight;
  }

  get overdue(): number {
    return this.#overdue;
  }

  /** Resolves once no request is in flight. */
  idle(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  /** The request lies at buf[off, off + len). */
  handle(buf: Buffer, off: number, len: number, conn: AnswerSink): void {
    const id = buf.readUInt32BE(off + OFFSET.requestId);
    const key = buf.readUInt32BE(off + OFFSET.serviceKey);
    const twoWay = (buf[off + OFFSET.flags] & FLAG_TWO_WAY) !== 0;
    if (twoWay && id === 0) {
      conn.refuse(new BadRequestError('request id 0 is reserved for connection-level errors; number two-way requests from 1'));
      return;
    }
    const entry = this.table.get(key);
    if (entry === undefined) {
      if (twoWay) conn.send(encodeErrorResponse(id, Status.SERVICE_NOT_FOUND, 'SB_ERR_SERVICE_NOT_FOUND', `this function server has no service ${key}`, key));
      return;
    }
    if (!twoWay && this.#oneWayInflight >= this.#maxOneWay) {
      this.oneWayDropped++;
      this.#log.warn('one-way-full', { serviceKey: key, oneWayInflight: this.#oneWayInflight }, 'one-way request dropped: as many one-way requests are running as maxOneWayInflight allows');
      return;
    }
    if (this.#inflight >= this.#opts.maxInflight) {
      const overdue = this.#overdue > 0 ? ` (${this.#overdue} of them past their deadline and still running)` : '';
      if (twoWay) conn.send(encodeErrorResponse(id, Status.OVERLOADED, 'SB_ERR_OVERLOADED', `function server has ${this.#inflight} requests in flight${overdue}; retry later`, key));
      return;
    }
    let meta: RequestMetadata | undefined;
    let body: unknown;
    try {
      if (buf[off + OFFSET.version] === VERSION_EXTENDED) meta = readMetadata(buf, off, len);
      body = decodeBodyAt(buf, off, len);
    } catch (err) {
      const e = err as BodyDecodeError | BadExtensionError;
      if (twoWay) conn.send(encodeErrorResponse(id, Status.BAD_REQUEST, e.code, e.message, key));
      return;
    }
    if (entry.request !== undefined) {
      // The contract's schema: a handler never runs on a body that does not match it.
      const r = entry.request.safeParse(body);
      if (!r.success) {
        if (twoWay) {
          const issues = describeIssues(r.error);
          const message = `the body does not match ${entry.name ?? `service ${key}`}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`;
          conn.send(encodeResponse(id, Status.BAD_REQUEST, { code: 'SB_ERR_VALIDATION', message, issues }, key));
        }
        return;
      }
      body = r.data;
    }
    const budget = buf.readUInt32BE(off + OFFSET.budget);
    const limit = minPositive(budget, entry.timeoutMs ?? 0) || this.#opts.defaultTimeoutMs;
    const ctx = new RequestContext(
      key,
      buf.readUInt16BE(off + OFFSET.poolType),
      id,
      limit > 0 ? Date.now() + limit : Number.POSITIVE_INFINITY,
      entry.pluginName,
      this.#watch,
      meta,
    );
    // Tracing (docs/tracing.md): a SERVER span, child of the request's traceparent, when an SDK is
    // registered; the handler runs in its context. Untraced requests skip it on the first check.
    const span = meta === undefined ? undefined : startHandleSpan(meta, key, ctx.poolType, entry);
    let result: unknown;
    try {
      result = span === undefined ? entry.handler(body, ctx) : runInSpan(span, entry.handler, entry, body, ctx);
    } catch (err) {
      this.#active.delete(ctx);
      if (twoWay) this.#sendFailure(conn, id, key, entry, err);
      failHandleSpan(span, err);
      return;
    }
    if (!isThenable(result)) {
      this.#active.delete(ctx); // a synchronous handler that looked at its signal is done with it
      if (twoWay) this.#answer(conn, id, key, entry, result);
      endHandleSpan(span);
      return;
    }
    this.#track(result, ctx, entry, twoWay ? conn : undefined, limit, this.table, span);
  }

  #track(result: Thenable, ctx: RequestContext, entry: ServiceEntry, conn: AnswerSink | undefined, limit: number, table: ServiceTable, span: Span | undefined): void {
    const id = ctx.requestId;
    const key = ctx.serviceKey;
    this.#inflight++;
    if (conn === undefined) this.#oneWayInflight++;
    table.running++;
    let answered = false;
    let overdue = false;
    let timer: NodeJS.Timeout | undefined;
    const answer = (send: (c: AnswerSink) => void): void => {
      if (answered) return;
      answered = true;
      if (timer) clearTimeout(timer);
      if (conn) send(conn);
    };
    // The request counts as in flight until the handler really ends, even after TIMEOUT was sent:
    // a handler that ignores its signal still holds what it holds, so it counts against maxInflight.
    const ended = (): void => {
      table.running--;
      this.#active.delete(ctx);
      if (overdue) this.#overdue--;
      if (conn === undefined) this.#oneWayInflight--;
      if (--this.#inflight === 0) this.#wakeIdle();
    };
    if (limit > 0) {
      timer = setTimeout(() => {
        this.#log.warn(`timeout:${key}`, { serviceKey: key, plugin: entry.pluginName, limitMs: limit }, 'service handler timed out');
        answer((c) => c.send(encodeErrorResponse(id, Status.TIMEOUT, 'SB_ERR_TIMEOUT', `service ${key} did not answer within ${limit} ms`, key)));
        overdue = true;
        this.#overdue++;
        handlerOverdue(span, limit);
        ctx.abort(new DeadlineExceededError(`service ${key} did not answer within ${limit} ms; its answer is no longer wanted`));
      }, clampDelay(limit));
      timer.unref();
    }
    result.then(
      (v) => {
        answer((c) => this.#answer(c, id, key, entry, v));
        ended();
        endHandleSpan(span);
      },
      (e) => {
        answer((c) => this.#sendFailure(c, id, key, entry, e));
        ended();
        failHandleSpan(span, e, overdue);
      },
    );
  }

  /** Aborts the signal of every request still running (the FS is closing without them). */
  abortAll(reason: Error): void {
    for (const ctx of this.#active) ctx.abort(reason);
  }

  /** Encodes the value and sends it, or a clear error when it cannot be encoded or is over the cap. */
  #answer(conn: AnswerSink, id: number, key: number, entry: ServiceEntry, value: unknown): void {
    if (this.#opts.validateResponses && entry.response !== undefined) {
      const r = entry.response.safeParse(value);
      if (!r.success) {
        const issues = describeIssues(r.error);
        this.#log.error(`response:${key}`, { serviceKey: key, plugin: entry.pluginName, issues }, 'the handler answered something its contract does not allow');
        conn.send(encodeErrorResponse(id, Status.SERVER_ERROR, 'SB_ERR_VALIDATION', `${entry.name ?? `service ${key}`} answered something its contract does not allow; see the FS log`, key));
        return;
      }
    }
    let body: Buffer;
    try {
      body = encodeBody(value);
    } catch (err) {
      this.#log.error(`encode:${key}`, { err, serviceKey: key, plugin: entry.pluginName }, 'service result cannot be encoded as msgpack');
      conn.send(encodeErrorResponse(id, Status.SERVER_ERROR, 'SB_ERR_SERVER', `service ${key} returned a value msgpack cannot encode`, key));
      return;
    }
    if (this.#fits(conn, id, key, entry, body.length, 'answer')) conn.sendFrame(Serialization.MSGPACK, Status.OK, id, key, 0, 0, body);
  }

  /** Sends a handler's error; one that would not fit the caller's body cap is sent as FRAME_TOO_LARGE, like an answer. */
  #sendFailure(conn: AnswerSink, id: number, key: number, entry: ServiceEntry, err: unknown): void {
    const frame = this.#failure(id, key, entry, err);
    if (this.#fits(conn, id, key, entry, frame.length - HEADER_SIZE, 'error')) conn.send(frame);
  }

  /** Whether a body of `bytes` fits the caller's cap; when not, the caller gets SERVER_ERROR SB_ERR_FRAME_TOO_LARGE instead and the log says so. */
  #fits(conn: AnswerSink, id: number, key: number, entry: ServiceEntry, bytes: number, what: 'answer' | 'error'): boolean {
    const cap = Math.min(this.#opts.maxBodyBytes, conn.peerMaxBodyBytes);
    if (bytes <= cap) return true;
    this.#log.warn(`cap:${key}`, { serviceKey: key, plugin: entry.pluginName, bytes, cap }, what === 'answer' ? 'answer exceeds the body cap' : 'error answer exceeds the body cap');
    const advice = what === 'answer' ? '; ask for less or raise maxBodyBytes on the AS and the client' : '';
    conn.send(encodeErrorResponse(id, Status.SERVER_ERROR, 'SB_ERR_FRAME_TOO_LARGE', `the ${what} of service ${key} is ${bytes} bytes, over the ${cap}-byte cap${advice}`, key));
    return false;
  }

  /**
   * A handler's error as the caller sees it. A SwitchboardError (PluginError included) carries a
   * code and a message meant for callers, cut to MAX_ERROR_MESSAGE_CHARS. Anything else may hold
   * internals (a path, a query, a secret): the caller gets a generic message with an error id, the
   * detail stays in this log.
   */
  #failure(id: number, key: number, entry: ServiceEntry, err: unknown): Buffer {
    if (err instanceof SwitchboardError) {
      // A call's ServiceFailedError rethrown: its plugin's own code goes on, not SB_ERR_SERVICE.
      const code = (err instanceof ServiceFailedError && err.serviceCode) || err.code;
      this.#opts.logger.debug({ code, serviceKey: key }, 'service failed');
      return encodeErrorResponse(id, Status.SERVICE_ERROR, code.slice(0, MAX_ERROR_CODE_CHARS), cut(err.message, MAX_ERROR_MESSAGE_CHARS), key);
    }
    const errorId = randomBytes(6).toString('hex');
    this.#log.error(`throw:${key}`, { err, errorId, serviceKey: key, plugin: entry.pluginName, method: entry.method }, 'service handler threw');
    return encodeErrorResponse(
      id,
      Status.SERVICE_ERROR,
      'SB_ERR_SERVICE',
      `${entry.pluginName}.${entry.method}() failed unexpectedly; error id ${errorId} (the function server's log has the detail)`,
      key,
    );
  }

  #wakeIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}

function minPositive(a: number, b: number): number {
  if (a <= 0) return b;
  if (b <= 0) return a;
  return Math.min(a, b);
}
