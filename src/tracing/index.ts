/**
 * OpenTelemetry tracing (docs/tracing.md): spans for the client's call, the AS's dispatch and the
 * FS's handler, joined by the W3C trace context in the header extension. Through @opentelemetry/api
 * only, so it records nothing and costs next to nothing until the application registers an SDK.
 */
export { TRACER_NAME, SpanNames, TraceAttributes, activeTracer, formatTraceparent, remoteParent } from './tracer.js';
export { startCallSpan, callTraceContext, endWithCall, type CallTraceContext } from './call-span.js';
export { traceDispatch, TracedSession, type DispatchSession } from './dispatch-span.js';
export { startHandleSpan, runInSpan, endHandleSpan, failHandleSpan, handlerOverdue, type HandlerInfo } from './handle-span.js';
