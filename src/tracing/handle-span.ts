import { ROOT_CONTEXT, SpanKind, context, trace, type Span } from '@opentelemetry/api';
import { Status, SwitchboardError, type RequestMetadata } from '../protocol/index.js';
import { RPC_SYSTEM, SpanNames, TraceAttributes, activeTracer, failSpan, remoteParent } from './tracer.js';

/** What the FS knows of the handler it is about to run. */
export interface HandlerInfo {
  name: string | undefined;
  pluginName: string;
  method: string;
}

/**
 * The FS's SERVER span for a request whose header extension carried a valid traceparent, child of
 * it, when an SDK is registered; undefined otherwise (the cheap checks come first). A span the
 * sampler does not record is still returned: the handler then runs in its context, so the spans it
 * makes follow the caller's sampling decision.
 */
export function startHandleSpan(meta: RequestMetadata | undefined, serviceKey: number, poolType: number, entry: HandlerInfo): Span | undefined {
  if (meta?.traceparent === undefined) return undefined;
  const tracer = activeTracer();
  if (tracer === undefined) return undefined;
  const parent = trace.setSpanContext(ROOT_CONTEXT, remoteParent(meta.traceparent, meta.tracestate));
  return tracer.startSpan(
    `${SpanNames.HANDLE} ${serviceKey}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        [TraceAttributes.RPC_SYSTEM]: RPC_SYSTEM,
        [TraceAttributes.RPC_METHOD]: entry.name ?? String(serviceKey),
        [TraceAttributes.SERVICE_KEY]: serviceKey,
        [TraceAttributes.POOL_TYPE]: poolType,
        [TraceAttributes.PLUGIN]: entry.pluginName,
        [TraceAttributes.METHOD]: entry.method,
      },
    },
    parent,
  );
}

/** Runs `handler.call(thisArg, body, ctx)` inside `span`'s context: spans the handler starts are its children. */
export function runInSpan<B, C, R>(span: Span, handler: (body: B, ctx: C) => R, thisArg: unknown, body: B, ctx: C): R {
  return context.with(trace.setSpan(ROOT_CONTEXT, span), handler, thisArg, body, ctx);
}

/** Ends the handler's span when the handler returned (or its promise resolved). */
export function endHandleSpan(span: Span | undefined): void {
  span?.end();
}

/**
 * Ends the handler's span when it threw (or its promise rejected): error status with the code the
 * caller gets, and the exception as an event. This goes to the operator's trace backend, as the FS
 * log does; the caller never sees more than its error code and message.
 */
export function failHandleSpan(span: Span | undefined, err: unknown, answeredTimeout = false): void {
  if (span === undefined) return;
  if (err instanceof Error) span.recordException(err);
  // Answered TIMEOUT already (handlerOverdue marked it): that is what the caller got, whatever the handler did after.
  if (!answeredTimeout) {
    if (err instanceof SwitchboardError) failSpan(span, Status.SERVICE_ERROR, err.code, err.message);
    else failSpan(span, Status.SERVICE_ERROR, 'SB_ERR_SERVICE', err instanceof Error ? err.message : String(err));
  }
  span.end();
}

/** The handler ran past its deadline: the caller was answered TIMEOUT; the span goes on until the handler ends. */
export function handlerOverdue(span: Span | undefined, limitMs: number): void {
  if (span === undefined) return;
  span.addEvent('switchboard.timeout', { 'switchboard.limit_ms': limitMs });
  failSpan(span, Status.TIMEOUT, 'SB_ERR_TIMEOUT', `did not answer within ${limitMs} ms`);
}
