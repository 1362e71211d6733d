import { SpanKind, context, propagation, trace, type Span } from '@opentelemetry/api';
import { validTraceparent } from '../protocol/index.js';
import { RPC_SYSTEM, SpanNames, TraceAttributes, activeTracer, failSpanWith, formatTraceparent } from './tracer.js';

/** The trace context a call carries in its header extension. */
export interface CallTraceContext {
  traceparent: string;
  tracestate: string | undefined;
}

/** The extension's tracestate entry holds at most 255 bytes. */
const MAX_TRACESTATE = 255;

/**
 * A recording CLIENT span for one call, or undefined: no SDK registered (the usual case, and the
 * cheap check comes first), or the sampler did not record this one. Undefined means the call
 * carries no trace context and goes as a version-1 request unless it has a routing key.
 */
export function startCallSpan(serviceKey: number, poolType: number, method: string | undefined, direct: boolean): Span | undefined {
  const tracer = activeTracer();
  if (tracer === undefined) return undefined;
  const span = tracer.startSpan(`${SpanNames.CALL} ${serviceKey}`, {
    kind: SpanKind.CLIENT,
    attributes: {
      [TraceAttributes.RPC_SYSTEM]: RPC_SYSTEM,
      [TraceAttributes.RPC_METHOD]: method ?? String(serviceKey),
      [TraceAttributes.SERVICE_KEY]: serviceKey,
      [TraceAttributes.POOL_TYPE]: poolType,
      [TraceAttributes.MODE]: direct ? 'direct' : 'via-as',
    },
  });
  // A span that does not record keeps nothing and ends as a no-op: drop it.
  return span.isRecording() ? span : undefined;
}

/**
 * The call's trace context, as the registered propagator writes it for `span`. A propagator that
 * writes no W3C traceparent (none registered, or another format) gets the span's own context in
 * W3C form: the header extension speaks W3C whatever the process propagates elsewhere.
 */
export function callTraceContext(span: Span): CallTraceContext {
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  let traceparent = carrier.traceparent;
  let tracestate: string | undefined = carrier.tracestate;
  if (traceparent === undefined || !validTraceparent(traceparent)) {
    const sc = span.spanContext();
    traceparent = formatTraceparent(sc);
    tracestate = sc.traceState?.serialize();
  }
  return { traceparent, tracestate: fitTracestate(tracestate) };
}

/** Ends `span` when `call` settles (error status and code on a rejection); returns `call` itself. */
export function endWithCall<T>(span: Span | undefined, call: Promise<T>): Promise<T> {
  if (span === undefined) return call;
  call.then(
    () => span.end(),
    (err: unknown) => {
      failSpanWith(span, err);
      span.end();
    },
  );
  return call;
}

/**
 * W3C lets a tracestate run to 512 characters; the extension entry takes 255 bytes. Members are
 * dropped from the right, as W3C allows when a value must be cut; empty means none.
 */
function fitTracestate(s: string | undefined): string | undefined {
  if (s === undefined || s.length === 0) return undefined;
  if (s.length <= MAX_TRACESTATE && /^[\x20-\x7e]*$/.test(s)) return s;
  const kept: string[] = [];
  let size = 0;
  for (const member of s.split(',')) {
    const m = member.trim();
    if (m.length === 0 || !/^[\x20-\x7e]*$/.test(m)) continue;
    const add = (kept.length > 0 ? 1 : 0) + m.length;
    if (size + add > MAX_TRACESTATE) break;
    kept.push(m);
    size += add;
  }
  return kept.length > 0 ? kept.join(',') : undefined;
}
