import { ROOT_CONTEXT, SpanKind, trace, type Span } from '@opentelemetry/api';
import { OFFSET, Status, decodeBodyAt, statusName, type RequestMetadata, type SwitchboardError } from '../protocol/index.js';
import { PARENT_ID_AT, RPC_SYSTEM, SpanNames, TraceAttributes, activeTracer, failSpan, remoteParent, traceparentAt } from './tracer.js';

/**
 * What the AS's dispatcher needs of a client connection (its IngressSession), spelled out here so
 * that tracing depends on no role.
 */
export interface DispatchSession {
  readonly closed: boolean;
  readonly inflight: number;
  readonly blocked: boolean;
  readonly maxInflight: number;
  lastRequestAt: number;
  admit(bytes: number): void;
  done(bytes: number): void;
  refuse(err: SwitchboardError): void;
  reply(frame: Buffer): void;
  replyFrom(buf: Buffer, off: number, len: number): void;
  pause(cause: object): void;
  resume(cause: object): void;
}

/**
 * The AS's span for one traced request: a SERVER span, child of the client's span, that lasts from
 * taking the request to relaying its answer (or answering it with an error). It stands in for the
 * client's session as the request's reply target, so it sees the answer go by and ends then; every
 * call is passed on unchanged. Only traced requests get one: the others never meet this class.
 */
export class TracedSession implements DispatchSession {
  readonly span: Span;
  readonly #session: DispatchSession;
  #ended = false;

  constructor(session: DispatchSession, span: Span) {
    this.#session = session;
    this.span = span;
  }

  get closed(): boolean {
    return this.#session.closed;
  }
  get inflight(): number {
    return this.#session.inflight;
  }
  get blocked(): boolean {
    return this.#session.blocked;
  }
  get maxInflight(): number {
    return this.#session.maxInflight;
  }
  get lastRequestAt(): number {
    return this.#session.lastRequestAt;
  }
  set lastRequestAt(at: number) {
    this.#session.lastRequestAt = at;
  }

  admit(bytes: number): void {
    this.#session.admit(bytes);
  }

  done(bytes: number): void {
    this.#session.done(bytes);
    // The answer goes nowhere when the client has gone: the request ends here.
    if (this.#session.closed) this.#end(Status.CHANNEL_CLOSED, 'SB_ERR_CHANNEL_CLOSED', 'the client closed its connection before the answer');
  }

  refuse(err: SwitchboardError): void {
    this.#end(err.status, err.code, err.message);
    this.#session.refuse(err);
  }

  /** An answer the AS made itself (no FS, overload, deadline, lost connection). */
  reply(frame: Buffer): void {
    this.#endWith(frame, 0, frame.length);
    this.#session.reply(frame);
  }

  /** An FS's answer, relayed. */
  replyFrom(buf: Buffer, off: number, len: number): void {
    this.#endWith(buf, off, len);
    this.#session.replyFrom(buf, off, len);
  }

  pause(cause: object): void {
    this.#session.pause(cause);
  }

  resume(cause: object): void {
    this.#session.resume(cause);
  }

  /** The request went to `fsId`: its first send, a re-send after a lost connection, or a hedge. */
  sent(fsId: string, attempt: number, hedge: boolean): void {
    if (this.#ended) return;
    this.span.setAttribute(TraceAttributes.FUNCTION_SERVER, fsId);
    this.span.setAttribute(TraceAttributes.ATTEMPTS, attempt);
    if (attempt > 1) this.span.addEvent(hedge ? 'switchboard.hedge' : 'switchboard.resend', { [TraceAttributes.FUNCTION_SERVER]: fsId });
  }

  #endWith(buf: Buffer, off: number, len: number): void {
    if (this.#ended) return;
    const status = buf[off + OFFSET.status];
    if (status === Status.OK) {
      this.span.setAttribute(TraceAttributes.STATUS, statusName(status));
      this.#ended = true;
      this.span.end();
      return;
    }
    // Only failed answers of traced requests are decoded here, for their code.
    // An answer without a readable code is named by its status.
    let code = statusName(status);
    let message: string | undefined;
    try {
      const b = decodeBodyAt(buf, off, len) as { code?: unknown; message?: unknown } | null;
      if (typeof b?.code === 'string') code = b.code;
      if (typeof b?.message === 'string') message = b.message;
    } catch {
      // An answer whose body does not decode still ends the span, with its status.
    }
    this.#end(status, code, message);
  }

  #end(status: number, code: string, message: string | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    failSpan(this.span, status, code, message);
    this.span.end();
  }
}

/**
 * Starts the AS's span for a two-way request whose header extension carried a valid traceparent
 * (`meta.traceparent`), when an SDK records it, and rewrites the frame's traceparent in place so
 * that its parent id is this span's id (same length; the FS's span becomes this span's child).
 * Returns the session to hand the dispatcher from here on, or undefined to go on untraced (no SDK,
 * or not sampled: the frame then goes unchanged).
 */
export function traceDispatch(session: DispatchSession, buf: Buffer, off: number, meta: RequestMetadata, serviceKey: number, poolType: number): TracedSession | undefined {
  const tracer = activeTracer();
  if (tracer === undefined || meta.traceparent === undefined) return undefined;
  const at = traceparentAt(buf, off);
  if (at < 0) return undefined;
  const parent = trace.setSpanContext(ROOT_CONTEXT, remoteParent(meta.traceparent, meta.tracestate));
  const span = tracer.startSpan(
    `${SpanNames.DISPATCH} ${serviceKey}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        [TraceAttributes.RPC_SYSTEM]: RPC_SYSTEM,
        [TraceAttributes.RPC_METHOD]: String(serviceKey),
        [TraceAttributes.SERVICE_KEY]: serviceKey,
        [TraceAttributes.POOL_TYPE]: poolType,
      },
    },
    parent,
  );
  if (!span.isRecording()) return undefined;
  buf.write(span.spanContext().spanId, at + PARENT_ID_AT, 16, 'latin1');
  return new TracedSession(session, span);
}
