import { ProxyTracerProvider, SpanStatusCode, createTraceState, trace, type Span, type SpanContext, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { Extension, HEADER_SIZE, ServiceFailedError, Status, SwitchboardError, statusName } from '../protocol/index.js';

/** The name of the tracer every Switchboard span comes from (its instrumentation scope). */
export const TRACER_NAME = 'switchboard';

/** Span names: the prefix, then a space and the service key (`switchboard.call 101`). */
export const SpanNames = {
  /** The client's call, CLIENT kind. */
  CALL: 'switchboard.call',
  /** The AS's part: from taking the request to relaying the answer, SERVER kind. */
  DISPATCH: 'switchboard.dispatch',
  /** The FS's handler, SERVER kind. */
  HANDLE: 'switchboard.handle',
} as const;

/** Attribute keys set on Switchboard spans. */
export const TraceAttributes = {
  /** Always `switchboard`. */
  RPC_SYSTEM: 'rpc.system',
  /** The contract's name when the call or handler has one (`greeter.greet`), else the service key. */
  RPC_METHOD: 'rpc.method',
  SERVICE_KEY: 'switchboard.service_key',
  POOL_TYPE: 'switchboard.pool_type',
  /** Client: `via-as` or `direct` (director mode). */
  MODE: 'switchboard.mode',
  /** AS: the FS the request was last sent to. */
  FUNCTION_SERVER: 'switchboard.function_server',
  /** AS: how many times the request was sent (re-sends and hedges included). */
  ATTEMPTS: 'switchboard.attempts',
  /** FS: the plugin and method that served the request. */
  PLUGIN: 'switchboard.plugin',
  METHOD: 'switchboard.method',
  /** The answer's status name (`OK`, `TIMEOUT`, `SERVICE_ERROR`...). */
  STATUS: 'switchboard.status',
  /** The error code (`SB_ERR_TIMEOUT`, or a plugin's own code) when the call failed. */
  ERROR_TYPE: 'error.type',
} as const;

export const RPC_SYSTEM = 'switchboard';

// The provider @opentelemetry/api hands out while no SDK is registered.
const NOOP_PROVIDER: TracerProvider = new ProxyTracerProvider().getDelegate();
let cachedProvider: TracerProvider | undefined;
let cachedTracer: Tracer | undefined;

/**
 * Switchboard's tracer while an SDK is registered, or undefined: the cheap check every request path
 * makes first. It reads the global provider (a property lookup) and allocates nothing, so with no
 * SDK tracing costs a few nanoseconds a call. An SDK registered later is picked up on the next call.
 */
export function activeTracer(): Tracer | undefined {
  const global = trace.getTracerProvider();
  const provider = global instanceof ProxyTracerProvider ? global.getDelegate() : global;
  if (provider === NOOP_PROVIDER) return undefined;
  if (provider !== cachedProvider) {
    cachedProvider = provider;
    cachedTracer = provider.getTracer(TRACER_NAME);
  }
  return cachedTracer;
}

/**
 * The remote parent a request names: `traceparent` must already be valid W3C (readMetadata drops
 * invalid ones, and the client sends only valid ones). Every version keeps the layout of the
 * first four fields, so the ids are read at fixed places.
 */
export function remoteParent(traceparent: string, tracestate: string | undefined): SpanContext {
  return {
    traceId: traceparent.slice(3, 35),
    spanId: traceparent.slice(36, 52),
    traceFlags: parseInt(traceparent.slice(53, 55), 16),
    isRemote: true,
    traceState: tracestate === undefined ? undefined : createTraceState(tracestate),
  };
}

/** The W3C `traceparent` (version 00) of a span context. */
export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** Where the parent id starts inside a traceparent value. */
export const PARENT_ID_AT = 36;

/**
 * Offset of the traceparent value inside the version-2 request at buf[off], or -1. The block must
 * have been read by readMetadata already (it checks the lengths this walk relies on).
 */
export function traceparentAt(buf: Buffer, off: number): number {
  let p = off + HEADER_SIZE + 2;
  const end = p + buf.readUInt16BE(off + HEADER_SIZE);
  while (p + 2 <= end) {
    const n = buf[p + 1];
    if (buf[p] === Extension.TRACEPARENT) return n >= PARENT_ID_AT + 16 ? p + 2 : -1;
    p += 2 + n;
  }
  return -1;
}

/** Marks `span` failed with a Switchboard status and error code. */
export function failSpan(span: Span, status: number, code: string, message: string | undefined): void {
  span.setAttribute(TraceAttributes.STATUS, statusName(status));
  span.setAttribute(TraceAttributes.ERROR_TYPE, code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: message === undefined ? code : `${code}: ${message}` });
}

/**
 * Marks `span` failed by `err`: a SwitchboardError's status and the code it came with on the wire (a
 * plugin's own code for SERVICE_ERROR), or SERVER_ERROR for anything else.
 */
export function failSpanWith(span: Span, err: unknown): void {
  if (err instanceof ServiceFailedError && err.serviceCode !== undefined) failSpan(span, err.status, err.serviceCode, err.message);
  else if (err instanceof SwitchboardError) failSpan(span, err.status, err.code, err.message);
  else failSpan(span, Status.SERVER_ERROR, 'SB_ERR_SERVER', err instanceof Error ? err.message : String(err));
}
