import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoleProcess } from '../../src/cli/child-process.js';
import {
  EventKind,
  FrameParser,
  OFFSET,
  Plugin,
  Service,
  Status,
  TRACER_NAME,
  decodeBodyAt,
  encodeEventResponse,
  encodeResponse,
  eventKindOf,
  isEvent,
  isRequest,
  readMetadata,
  requestIdOf,
  type RequestMetadata,
} from '../../src/index.js';
import { ECHO_DELAYED, EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { activeTracer } from '../../src/tracing/index.js';
import { FaultyPlugin, THROWS_CUSTOM, THROWS_PLAIN } from '../fixtures/test-plugins.js';
import { OTEL_REGISTER, SPANS_FILE_ENV, readSpansFile, registerInMemoryTracing, type SpanRecord } from '../fixtures/otel-sdk.js';
import { DIST_CLI, HOST, connectClient, listenRaw, startAs, startFs, useCleanup, waitFor, waitForState, type Cleanup } from '../resilience/helpers.js';

const c = useCleanup();

const VALID_TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const NESTED = 7301;

/** A service whose handler starts a span of its own: it must nest under the FS's span. */
@Plugin({ name: 'nesting' })
class NestingPlugin {
  @Service(NESTED)
  async nested(): Promise<{ traceId: string | undefined }> {
    await new Promise((r) => setTimeout(r, 5));
    const inner = trace.getTracer('test-plugin').startSpan('inner work');
    inner.end();
    return { traceId: trace.getActiveSpan()?.spanContext().traceId };
  }
}

/**
 * A hand-made AS on a raw socket: it records the version byte and the extension block of every
 * request it gets, answers each with its own body, and answers heartbeat pings.
 */
async function recordingAs(cleanup: Cleanup): Promise<{ port: number; seen: { version: number; meta: RequestMetadata | undefined }[] }> {
  const seen: { version: number; meta: RequestMetadata | undefined }[] = [];
  const { port } = await listenRaw(cleanup, 0, (s) => {
    const parser = new FrameParser({
      onFrame: (f) => {
        if (isEvent(f)) {
          if (isRequest(f) && eventKindOf(f) === EventKind.HEARTBEAT) s.write(encodeEventResponse(EventKind.HEARTBEAT, requestIdOf(f), null));
          return;
        }
        seen.push({ version: f[OFFSET.version], meta: readMetadata(f, 0, f.length) });
        s.write(encodeResponse(requestIdOf(f), Status.OK, decodeBodyAt(f, 0, f.length), f.readUInt32BE(OFFSET.serviceKey)));
      },
      onError: () => s.destroy(),
    });
    s.on('data', (d: Buffer) => parser.push(d));
  });
  return { port, seen };
}

/** An AS or FS child process from the built CLI, with the SDK registered by --import; stopped by PID at teardown. */
function tracedRole(label: string, args: string[], spansFile: string): RoleProcess {
  const nodeOptions = [process.env.NODE_OPTIONS, `--import ${OTEL_REGISTER}`].filter(Boolean).join(' ');
  const p = new RoleProcess(label, args, { cliPath: DIST_CLI, env: { ...process.env, NODE_OPTIONS: nodeOptions, [SPANS_FILE_ENV]: spansFile } });
  c.defer(async () => {
    p.signal('SIGCONT');
    await p.stop('SIGKILL', 2000);
  });
  return p;
}

const only = (spans: SpanRecord[], prefix: string): SpanRecord[] => spans.filter((s) => s.name.startsWith(prefix));

describe('tracing with no OpenTelemetry SDK registered', () => {
  it('sends plain version-1 requests, and an invalid explicit traceparent is dropped while the call works', async () => {
    expect(activeTracer()).toBeUndefined();
    const as = await recordingAs(c);
    const client = await connectClient(c, as.port);
    expect(await client.call(1, { n: 1 })).toEqual({ n: 1 });
    expect(as.seen[0]).toEqual({ version: 1, meta: undefined });

    expect(await client.call(1, { n: 2 }, { traceparent: 'not-a-traceparent', tracestate: 'a=1' })).toEqual({ n: 2 });
    expect(as.seen[1].meta?.traceparent).toBeUndefined();
    expect(as.seen[1].meta?.tracestate).toBeUndefined();

    // A valid explicit trace context still goes as given (that is the caller's own tracing).
    expect(await client.call(1, { n: 3 }, { traceparent: VALID_TRACEPARENT })).toEqual({ n: 3 });
    expect(as.seen[2]).toMatchObject({ version: 2, meta: { traceparent: VALID_TRACEPARENT } });
  });

  it('leaves a traced request unchanged through a real AS and FS', async () => {
    const { as, port, controlPort } = await startAs(c);
    await startFs(c, 'fs-plain', controlPort, { plugins: [EchoPlugin] });
    await waitForState(as, 'fs-plain', 'available');
    const client = await connectClient(c, port);
    await expect(client.call(1, { ok: true }, { traceparent: 'garbage' })).resolves.toEqual({ ok: true });
    await expect(client.call(1, { ok: true }, { traceparent: VALID_TRACEPARENT })).resolves.toEqual({ ok: true });
  });
});

describe('tracing with an SDK registered', () => {
  let otel: ReturnType<typeof registerInMemoryTracing>;
  beforeAll(() => {
    otel = registerInMemoryTracing();
  });
  afterAll(async () => {
    await otel.disable();
  });

  it('gives one trace across three processes: client span → AS span → FS span', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-tracing-'));
    c.defer(() => rmSync(dir, { recursive: true, force: true }));
    const asSpans = join(dir, 'as.json');
    const fsSpans = join(dir, 'fs.json');
    const as = tracedRole('as', ['as', '--port', '0', '--control-port', '0', '--heartbeat-ms', '500'], asSpans);
    const listening = await as.waitForLog('application server listening', 15_000);
    const fs = tracedRole('fs', ['fs', '--as', `${HOST}:${listening.controlPort as number}`, '--host', HOST, '--port', '0', '--plugins', 'echo', '--name', 'traced-fs'], fsSpans);
    await as.waitForLog('function server is available', 15_000);

    otel.exporter.reset();
    const client = await connectClient(c, listening.port as number);
    expect(await client.call(1, { hello: 'traced' })).toEqual({ hello: 'traced' });

    // SIGTERM: the FS drains and exits, then the AS; each writes its spans as it exits.
    expect(await fs.stop('SIGTERM', 10_000)).toBe(0);
    expect(await as.stop('SIGTERM', 10_000)).toBe(0);
    const fromAs = readSpansFile(asSpans);
    const fromFs = readSpansFile(fsSpans);
    expect(new Set([process.pid, fromAs.pid, fromFs.pid]).size).toBe(3);

    const [call] = only(otel.spans(), 'switchboard.call');
    const [dispatch] = only(fromAs.spans, 'switchboard.dispatch');
    const [handle] = only(fromFs.spans, 'switchboard.handle');
    expect(call).toMatchObject({ name: 'switchboard.call 1', kind: SpanKind.CLIENT, scope: TRACER_NAME });
    expect(call.attributes).toMatchObject({ 'rpc.system': 'switchboard', 'switchboard.service_key': 1, 'switchboard.pool_type': 0 });
    expect(dispatch).toMatchObject({ name: 'switchboard.dispatch 1', kind: SpanKind.SERVER, scope: TRACER_NAME });
    expect(dispatch.attributes).toMatchObject({ 'switchboard.function_server': 'traced-fs', 'switchboard.status': 'OK' });
    expect(handle).toMatchObject({ name: 'switchboard.handle 1', kind: SpanKind.SERVER, scope: TRACER_NAME });
    expect(handle.attributes).toMatchObject({ 'switchboard.plugin': 'echo' });

    // One trace; the AS span is the client span's child, the FS span the AS span's child.
    expect(dispatch.traceId).toBe(call.traceId);
    expect(handle.traceId).toBe(call.traceId);
    expect(call.parentSpanId).toBeUndefined();
    expect(dispatch.parentSpanId).toBe(call.spanId);
    expect(handle.parentSpanId).toBe(dispatch.spanId);
    for (const s of [call, dispatch, handle]) expect(s.status.code).not.toBe(SpanStatusCode.ERROR);
  });

  it('nests the handler’s own spans under the FS span, and marks failures on every span', async () => {
    const { as, port, controlPort } = await startAs(c);
    await startFs(c, 'fs-in-process', controlPort, { plugins: [EchoPlugin, FaultyPlugin, NestingPlugin] });
    await waitForState(as, 'fs-in-process', 'available');
    const client = await connectClient(c, port);

    otel.exporter.reset();
    // A call made inside an active span of the application's.
    const answer = (await trace.getTracer('test').startActiveSpan('caller', (s) => client.call(NESTED, {}).finally(() => s.end()))) as { traceId: string };
    await waitFor(() => otel.spans().length >= 5, 'five spans');
    const spans = otel.spans();
    const caller = spans.find((s) => s.name === 'caller') as SpanRecord;
    const [call] = only(spans, `switchboard.call ${NESTED}`);
    const [dispatch] = only(spans, `switchboard.dispatch ${NESTED}`);
    const [handle] = only(spans, `switchboard.handle ${NESTED}`);
    const inner = spans.find((s) => s.name === 'inner work') as SpanRecord;
    expect(call.parentSpanId).toBe(caller.spanId); // the client span is the active span's child
    expect(dispatch.parentSpanId).toBe(call.spanId);
    expect(handle.parentSpanId).toBe(dispatch.spanId);
    expect(inner.parentSpanId).toBe(handle.spanId);
    expect(new Set([caller, call, dispatch, handle, inner].map((s) => s.traceId))).toEqual(new Set([answer.traceId]));

    // A plugin's error: every span records it with the code the caller gets.
    otel.exporter.reset();
    await expect(client.call(THROWS_CUSTOM, {})).rejects.toMatchObject({ code: 'SB_ERR_SERVICE', serviceCode: 'CUSTOM' });
    await expect(client.call(THROWS_PLAIN, {})).rejects.toMatchObject({ code: 'SB_ERR_SERVICE' });
    await waitFor(() => otel.spans().length >= 6, 'six spans');
    for (const [key, code] of [
      [THROWS_CUSTOM, 'CUSTOM'],
      [THROWS_PLAIN, 'SB_ERR_SERVICE'],
    ] as const) {
      const failed = otel.spans().filter((s) => s.name.endsWith(` ${key}`));
      expect(failed.map((s) => s.name.split(' ')[0]).sort()).toEqual(['switchboard.call', 'switchboard.dispatch', 'switchboard.handle']);
      for (const s of failed) {
        expect(s.status.code).toBe(SpanStatusCode.ERROR);
        expect(s.attributes['error.type']).toBe(code);
        expect(s.attributes['switchboard.status']).toBe('SERVICE_ERROR');
      }
      expect(failed.find((s) => s.name.startsWith('switchboard.handle'))?.events).toContain('exception');
    }

    // A handler past its deadline: the caller gets TIMEOUT, and so does the FS span, though the
    // handler, aborted, then rejects with its own error (kept as an exception event).
    otel.exporter.reset();
    await expect(client.call(ECHO_DELAYED, { ms: 2000 }, { timeoutMs: 150 })).rejects.toMatchObject({ code: 'SB_ERR_TIMEOUT' });
    await waitFor(() => otel.spans().some((s) => s.name === `switchboard.handle ${ECHO_DELAYED}`), 'the FS span to end');
    const late = otel.spans().find((s) => s.name === `switchboard.handle ${ECHO_DELAYED}`) as SpanRecord;
    expect(late.status.code).toBe(SpanStatusCode.ERROR);
    expect([late.attributes['switchboard.status'], late.attributes['error.type']]).toEqual(['TIMEOUT', 'SB_ERR_TIMEOUT']);
    expect(late.events).toEqual(expect.arrayContaining(['switchboard.timeout', 'exception']));

    // An answer the AS makes itself (no FS serves the key) ends its span and the client's, failed.
    otel.exporter.reset();
    await expect(client.call(4242, {})).rejects.toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND' });
    await waitFor(() => otel.spans().length >= 2, 'two spans');
    const notFound = otel.spans();
    expect(notFound.map((s) => s.name).sort()).toEqual(['switchboard.call 4242', 'switchboard.dispatch 4242']);
    for (const s of notFound) expect(s.attributes['switchboard.status']).toBe('SERVICE_NOT_FOUND');
  });

  it('sends the trace context only while recording; keeps a valid explicit one; replaces an invalid one', async () => {
    const as = await recordingAs(c);
    const client = await connectClient(c, as.port);
    otel.exporter.reset();

    expect(await client.call(1, { n: 1 })).toEqual({ n: 1 });
    const [call] = only(otel.spans(), 'switchboard.call');
    expect(as.seen[0].version).toBe(2);
    expect(as.seen[0].meta?.traceparent).toBe(`00-${call.traceId}-${call.spanId}-01`);

    // The caller's own valid trace context goes as given, and no client span is made for it.
    expect(await client.call(1, { n: 2 }, { traceparent: VALID_TRACEPARENT, tracestate: 'v=1' })).toEqual({ n: 2 });
    expect(as.seen[1].meta).toMatchObject({ traceparent: VALID_TRACEPARENT, tracestate: 'v=1' });
    expect(only(otel.spans(), 'switchboard.call')).toHaveLength(1);

    // An invalid one is dropped, as W3C asks, and the call is traced as if none had been given.
    expect(await client.call(1, { n: 3 }, { traceparent: 'nonsense', routingKey: 'k' })).toEqual({ n: 3 });
    const calls = only(otel.spans(), 'switchboard.call');
    expect(calls).toHaveLength(2);
    expect(as.seen[2].meta?.traceparent).toBe(`00-${calls[1].traceId}-${calls[1].spanId}-01`);
    expect(as.seen[2].meta?.routingKey?.toString()).toBe('k');
  });
});
