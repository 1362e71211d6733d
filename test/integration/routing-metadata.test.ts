import 'reflect-metadata';
import { container as rootContainer } from 'tsyringe';
import { afterEach, describe, expect, it } from 'vitest';
import {
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  OFFSET,
  Serialization,
  Status,
  decodeBody,
  decodeBodyAt,
  encodeBody,
  encodeExtendedFrame,
  requestIdOf,
  statusOf,
} from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { useHarness, waitForAvailable } from '../fixtures/cluster.js';
import { recordingFs } from '../fixtures/hand-made-fs.js';
import { FS_NAME, METADATA_ECHO, MetadataEchoPlugin, WhoAmIPlugin } from '../fixtures/test-plugins.js';

const h = useHarness();
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** FSs that serve METADATA_ECHO; `weights` gives each one's --weight. */
async function metadataCluster(strategy: 'consistent-hash' | 'round-robin' | 'least-loaded', names: string[], weights: number[] = []): Promise<void> {
  await h.startAs({ strategy });
  for (const [i, name] of names.entries()) {
    const container = rootContainer.createChildContainer();
    container.register(FS_NAME, { useValue: name });
    await h.startFs({ name, plugins: [EchoPlugin, WhoAmIPlugin, MetadataEchoPlugin], container, weight: weights[i] });
  }
  await waitForAvailable(h.as, names.length);
}

/** A hand-made FS of an older version: its DESCRIBE names no `versions`; it records the frames it gets. */
async function versionOneFs(describe: Record<string, unknown> = {}): Promise<{ port: number; frames: Buffer[] }> {
  // A version-1 peer refuses what it cannot read; this one records, so the test can say what arrived.
  const fs = await recordingFs({ name: 'old-fs', poolType: 0, services: [{ key: 1, idempotent: false }], ...describe }, (f) => decodeBodyAt(f, 0, f.length));
  stops.push(() => fs.close());
  return fs;
}

describe('routing metadata in the header extension', () => {
  it('reaches the handler: routing key and W3C trace context, through the AS', async () => {
    await metadataCluster('least-loaded', ['fs-a']);
    const c = await h.client();
    expect(await c.call(METADATA_ECHO, {}, { routingKey: 'user-42', traceparent: TRACEPARENT, tracestate: 'vendor=1' })).toEqual({
      fs: 'fs-a',
      routingKey: 'user-42',
      traceparent: TRACEPARENT,
      tracestate: 'vendor=1',
    });
    // Without metadata the call is a plain version-1 request, and the handler sees nothing.
    expect(await c.call(METADATA_ECHO, {})).toEqual({ fs: 'fs-a', routingKey: null, traceparent: null, tracestate: null });
    // An invalid traceparent is dropped, as W3C asks; the routing key still goes.
    expect(await c.call(METADATA_ECHO, {}, { routingKey: 'k', traceparent: 'not-a-trace' })).toMatchObject({ routingKey: 'k', traceparent: null });
  });

  it('is refused per request when malformed or critical and unknown; the connection and its other calls go on', async () => {
    await metadataCluster('least-loaded', ['fs-a']);
    const raw = await h.raw();
    const body = encodeBody({ hello: 1 });
    const critical = Buffer.concat([Buffer.from([0x00, 0x03, 0x80, 0x01, 0x00]), body]);
    const frame = (id: number, ext: Buffer): Buffer => {
      const f = encodeExtendedFrame(FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK, 0, id, 1, 1000, {}, Buffer.alloc(0));
      const out = Buffer.concat([f.subarray(0, 24), ext]);
      out.writeUInt32BE(ext.length, OFFSET.bodyLength);
      return out;
    };
    raw.write(frame(1, critical));
    const refused = await raw.nextFrame();
    expect(requestIdOf(refused)).toBe(1);
    expect(statusOf(refused)).toBe(Status.BAD_REQUEST);
    expect(decodeBody(refused)).toMatchObject({ code: 'SB_ERR_UNKNOWN_EXTENSION' });
    // An entry that overruns its block.
    raw.write(frame(2, Buffer.concat([Buffer.from([0x00, 0x03, 0x01, 0x09, 0x41]), body])));
    const bad = await raw.nextFrame();
    expect(requestIdOf(bad)).toBe(2);
    expect(decodeBody(bad)).toMatchObject({ code: 'SB_ERR_BAD_EXTENSION' });
    // The same connection still carries calls, extended ones included.
    raw.write(frame(3, Buffer.concat([Buffer.from([0x00, 0x04, 0x01, 0x02, 0x6b, 0x31]), body])));
    const ok = await raw.nextFrame();
    expect(requestIdOf(ok)).toBe(3);
    expect(statusOf(ok)).toBe(Status.OK);
    expect(decodeBody(ok)).toEqual({ hello: 1 });
  });

  it('is stripped for an FS that did not say it reads version 2: it gets a version-1 frame with the same body', async () => {
    await h.startAs({});
    const old = await versionOneFs();
    h.as.addFunctionServer({ host: '127.0.0.1', port: old.port });
    await waitForAvailable(h.as, 1);
    const c = await h.client();
    expect(await c.call(1, { kept: 'body' }, { routingKey: 'user-7', traceparent: TRACEPARENT })).toEqual({ kept: 'body' });
    expect(old.frames).toHaveLength(1);
    expect(old.frames[0][OFFSET.version]).toBe(1);
    expect(old.frames[0].readUInt32BE(OFFSET.bodyLength)).toBe(encodeBody({ kept: 'body' }).length);
    expect(decodeBody(old.frames[0])).toEqual({ kept: 'body' });
  });
});

describe('the routing key the SDK sends', () => {
  it('is refused before sending when empty, over 255 bytes, or a string with a lone surrogate; bytes are sent as they are', async () => {
    await metadataCluster('least-loaded', ['fs-a']);
    const c = await h.client();
    const refused = (routingKey: string | Uint8Array) => (async () => c.call(METADATA_ECHO, {}, { routingKey }))();
    await expect(refused('')).rejects.toMatchObject({ code: 'SB_ERR_BAD_EXTENSION', message: expect.stringContaining('1 to 255 bytes, got 0') });
    await expect(refused('é'.repeat(128))).rejects.toMatchObject({ code: 'SB_ERR_BAD_EXTENSION', message: expect.stringContaining('got 256') });
    for (const lone of ['\ud800', 'a\udc00b']) {
      await expect(refused(lone)).rejects.toMatchObject({ code: 'SB_ERR_BAD_EXTENSION', message: expect.stringContaining('lone surrogate') });
    }
    expect(h.as.dispatcher.relayedAnswers.reduce((a, n) => a + n, 0)).toBe(0);
    expect(await c.call(METADATA_ECHO, {}, { routingKey: new Uint8Array([0xff, 0x00]) })).toMatchObject({ routingKey: '\ufffd\u0000' });
    expect(await c.call(METADATA_ECHO, {}, { routingKey: '\ud83d\ude00' })).toMatchObject({ routingKey: '😀' });
  });
});

describe('director mode and an FS that reads only version 1', () => {
  it('LOOKUP names it with versions [1], and the direct client sends it version-1 frames: the call runs there, not through the AS', async () => {
    await h.startAs({});
    const old = await versionOneFs({ services: [{ key: 1, idempotent: true }] });
    h.as.addFunctionServer({ host: '127.0.0.1', port: old.port });
    await waitForAvailable(h.as, 1);
    const c = await h.client({ mode: 'direct' });
    expect((await c.lookup(1)).endpoints).toEqual([expect.objectContaining({ port: old.port, versions: [1] })]);
    expect(await c.call(1, { kept: 'body' }, { routingKey: 'user-7', traceparent: TRACEPARENT })).toEqual({ kept: 'body' });
    expect(c.direct?.direct).toBe(1);
    expect(c.direct?.viaAs).toBe(0);
    expect(old.frames.map((f) => f[OFFSET.version])).toEqual([1]);
    expect(decodeBody(old.frames[0])).toEqual({ kept: 'body' });
  });

  it('LOOKUP leaves versions out for an FS that reads version 2', async () => {
    await metadataCluster('least-loaded', ['fs-a']);
    const c = await h.client({ mode: 'direct' });
    const [endpoint] = (await c.lookup(METADATA_ECHO)).endpoints;
    expect(endpoint).not.toHaveProperty('versions');
    expect(await c.call(METADATA_ECHO, {}, { routingKey: 'user-7' })).toMatchObject({ fs: 'fs-a', routingKey: 'user-7' });
  });
});

describe('consistent hashing on the routing key', () => {
  it('keeps each key on one FS, spreads keys, and when that FS leaves moves only its keys', async () => {
    await metadataCluster('consistent-hash', ['fs-a', 'fs-b', 'fs-c']);
    const c = await h.client();
    const where = async (key: string): Promise<string> => ((await c.call(METADATA_ECHO, {}, { routingKey: key })) as { fs: string }).fs;
    const keys = Array.from({ length: 60 }, (_, i) => `user-${i}`);
    const first = new Map<string, string>();
    for (const k of keys) first.set(k, await where(k));
    // The same key, again and again, under concurrent load: the same FS.
    const again = await Promise.all(Array.from({ length: 40 }, () => where('user-0')));
    expect(new Set(again)).toEqual(new Set([first.get('user-0')]));
    expect(new Set(first.values()).size).toBe(3);

    const leaver = first.get('user-0') as string;
    expect(h.as.removeFunctionServer(leaver)).toBe(true);
    const after = new Map<string, string>();
    for (const k of keys) after.set(k, await where(k));
    for (const k of keys) {
      if (first.get(k) === leaver) expect(after.get(k)).not.toBe(leaver);
      else expect(after.get(k), `${k} was on ${first.get(k)}, which is still there`).toBe(first.get(k));
    }
  });
});

describe('weights', () => {
  it('round-robin through the AS gives a weight-3 FS three of every five requests', async () => {
    await metadataCluster('round-robin', ['fs-w3', 'fs-a', 'fs-b'], [3, 1, 1]);
    expect(h.as.listFunctionServers().find((f) => f.id === 'fs-w3')?.weight).toBe(3);
    const c = await h.client();
    const counts = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const fs = ((await c.call(METADATA_ECHO, {})) as { fs: string }).fs;
      counts.set(fs, (counts.get(fs) ?? 0) + 1);
    }
    expect(counts).toEqual(new Map([['fs-w3', 60], ['fs-a', 20], ['fs-b', 20]]));
  });

  it('a DESCRIBE answer with a weight outside 1 to 1000 is malformed: the FS is never made available', async () => {
    await h.startAs({ connectTimeoutMs: 500, ejectAfterFailures: 2, reconnectBaseMs: 20, reconnectCapMs: 50 });
    const greedy = await versionOneFs({ weight: 5000 });
    h.as.addFunctionServer({ host: '127.0.0.1', port: greedy.port });
    await new Promise<void>((resolve) => h.as.on('fs-state', (i) => i.state === 'unavailable' && resolve()));
    expect(h.as.listFunctionServers()[0]).toMatchObject({ state: 'unavailable', weight: 1 });
  });

  it('an FS refuses a weight outside 1 to 1000 at construction', async () => {
    const { FunctionServer } = await import('../../src/index.js');
    expect(() => new FunctionServer({ name: 'x', plugins: [EchoPlugin], weight: 0 })).toThrow(/weight 0 must be an integer from 1 to 1000/);
    expect(() => new FunctionServer({ name: 'x', plugins: [EchoPlugin], weight: 1.5 })).toThrow(/weight/);
  });
});
