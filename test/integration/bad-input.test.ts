import { describe, expect, it } from 'vitest';
import {
  DeadlineExceededError,
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  HEADER_SIZE,
  OFFSET,
  Serialization,
  ServerError,
  ServiceFailedError,
  Status,
  decodeBody,
  encodeFrameRaw,
  encodeRequest,
  encodeResponse,
  isEvent,
  requestIdOf,
  statusOf,
  writeHeader,
  type SwitchboardError,
} from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { WeatherPlugin } from '../../src/plugins/samples/weather-plugin.js';
import { errorBodyOf, expectRefusedAndClosed, expectTrafficUnharmed, useHarness, waitFor, type Background } from '../fixtures/cluster.js';
import { FaultyPlugin, NEVER_ANSWERS, NEVER_ANSWERS_TIMEOUT_MS, RETHROWS, THROWS_CUSTOM, THROWS_LONG, THROWS_PLAIN, WhoAmIPlugin } from '../fixtures/test-plugins.js';

const h = useHarness();
const MAX_BODY = 1024;
const TWO_WAY_MSGPACK = FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK;

/** AS (1 KiB body cap) with two FSs, plus a well-behaved client calling echo in the background. */
async function setup(): Promise<Background> {
  await h.cluster({ maxBodyBytes: MAX_BODY }, [
    { name: 'fs-1', plugins: [EchoPlugin, WhoAmIPlugin, FaultyPlugin] },
    { name: 'fs-2', plugins: [EchoPlugin, WhoAmIPlugin, FaultyPlugin] },
  ]);
  const bg = await h.background();
  await waitFor(() => bg.ok() >= 10, 'background traffic to flow');
  return bg;
}

async function rejection(p: Promise<unknown>): Promise<SwitchboardError> {
  return p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: SwitchboardError) => e,
  );
}

describe('bad input on the AS client port', () => {
  it('refuses a short HTTP request with one BAD_MAGIC frame and closes that socket only', async () => {
    const bg = await setup();
    const raw = await h.raw();
    raw.write('GET / HTTP/1.1\r\n\r\n');
    await expectRefusedAndClosed(raw, 'SB_ERR_BAD_MAGIC');
    await expectTrafficUnharmed(bg);
  });

  it('refuses a full HTTP request with one BAD_MAGIC frame and closes that socket only', async () => {
    const bg = await setup();
    const raw = await h.raw();
    raw.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n');
    const f = await expectRefusedAndClosed(raw, 'SB_ERR_BAD_MAGIC');
    expect(errorBodyOf(f).message).toContain('0x4745'); // "GE"
    await waitFor(() => h.as.clientConnections === 1, 'the AS to drop the raw connection');
    await expectTrafficUnharmed(bg);
  });

  it('refuses a wrong protocol version with BAD_VERSION', async () => {
    const bg = await setup();
    const raw = await h.raw();
    const frame = encodeRequest(1, 1, { hi: 1 });
    frame[OFFSET.version] = 9;
    raw.write(frame);
    await expectRefusedAndClosed(raw, 'SB_ERR_BAD_VERSION');
    await expectTrafficUnharmed(bg);
  });

  it('refuses an oversize declared body length before the body is sent', async () => {
    const bg = await setup();
    const raw = await h.raw();
    const header = Buffer.alloc(HEADER_SIZE);
    writeHeader(header, { flags: TWO_WAY_MSGPACK, status: 0, eventKind: 0, poolType: 0, requestId: 1, serviceKey: 1, budgetMs: 0, bodyLength: 1024 * 1024 });
    raw.write(header); // the header alone: the AS must not wait for 1 MiB to arrive
    const f = await expectRefusedAndClosed(raw, 'SB_ERR_FRAME_TOO_LARGE');
    expect(errorBodyOf(f).message).toContain(String(MAX_BODY));
    await expectTrafficUnharmed(bg);
  });

  it('drops a connection that ends in the middle of a frame, and nothing else', async () => {
    const bg = await setup();
    const raw = await h.raw();
    await waitFor(() => h.as.clientConnections === 2, 'the AS to accept the raw socket');
    const frame = encodeRequest(1, 1, { some: 'body', more: 'x'.repeat(100) });
    raw.write(frame.subarray(0, HEADER_SIZE + 10));
    raw.socket.end();
    await raw.waitClosed();
    await waitFor(() => h.as.clientConnections === 1, 'the AS to drop the cut-off connection');
    expect(raw.frames.filter((x) => !isEvent(x))).toEqual([]);
    await expectTrafficUnharmed(bg);
  });

  it('passes a malformed msgpack body to the FS, which answers BAD_BODY; the connection carries on', async () => {
    const bg = await setup();
    const raw = await h.raw();
    raw.write(encodeFrameRaw({ flags: TWO_WAY_MSGPACK, requestId: 7, serviceKey: 1 }, Buffer.from([0xa5, 0x61, 0x62])));
    const bad = await raw.nextFrame();
    expect(requestIdOf(bad)).toBe(7);
    expect(statusOf(bad)).toBe(Status.BAD_REQUEST);
    expect(errorBodyOf(bad).code).toBe('SB_ERR_BAD_BODY');
    raw.write(encodeRequest(8, 1, { good: true }));
    const good = await raw.nextFrame();
    expect(requestIdOf(good)).toBe(8);
    expect(statusOf(good)).toBe(Status.OK);
    expect(decodeBody(good)).toEqual({ good: true });
    expect(raw.isClosed).toBe(false);
    await expectTrafficUnharmed(bg);
  });

  it('answers an unknown service key with SERVICE_NOT_FOUND and a response frame sent as a request with BAD_REQUEST', async () => {
    const bg = await setup();
    const raw = await h.raw();
    raw.write(encodeRequest(41, 77_777, { x: 1 }));
    const nf = await raw.nextFrame();
    expect([requestIdOf(nf), statusOf(nf), errorBodyOf(nf).code]).toEqual([41, Status.SERVICE_NOT_FOUND, 'SB_ERR_SERVICE_NOT_FOUND']);
    raw.write(encodeResponse(42, Status.OK, { not: 'a request' }));
    const br = await raw.nextFrame();
    expect([requestIdOf(br), statusOf(br), errorBodyOf(br).code]).toEqual([42, Status.BAD_REQUEST, 'SB_ERR_BAD_REQUEST']);
    raw.write(encodeRequest(43, 1, 'ok'));
    expect(decodeBody(await raw.nextFrame())).toBe('ok');
    await expectTrafficUnharmed(bg);
  });

  it('fails only the call whose answer exceeds the AS body cap', async () => {
    await h.cluster({ maxBodyBytes: MAX_BODY }, [{ name: 'fs-1', plugins: [EchoPlugin, WeatherPlugin] }]);
    const bg = await h.background();
    await waitFor(() => bg.ok() >= 10, 'background traffic to flow');
    const states: string[] = [];
    h.as.on('fs-state', (i, from) => states.push(`${from}->${i.state}`));
    const c = await h.client();
    // A small request whose 14-day answer is larger than 1 KiB.
    const err = await rejection(c.call(101, { city: 'Beijing', days: 14, from: '2026-01-01' }));
    // The FS knows the AS's cap from DESCRIBE and refuses the answer itself: one call fails with
    // SERVER_ERROR, and the client keeps the SB_ERR_ code from the body (errorFromStatus).
    expect(err).toBeInstanceOf(ServerError);
    expect(err.status).toBe(Status.SERVER_ERROR);
    expect(err.code).toBe('SB_ERR_FRAME_TOO_LARGE');
    expect(err.message).toContain(`over the ${MAX_BODY}-byte cap`);
    // Relayed from the FS, not made up by the AS; and the pool connection was not closed under it.
    expect(h.as.dispatcher.relayedAnswers[Status.SERVER_ERROR]).toBe(1);
    expect(h.as.dispatcher.localAnswers.get(Status.CHANNEL_CLOSED) ?? 0).toBe(0);
    expect(h.as.closedConnections().client.get('protocol')).toBe(0);
    expect(states).toEqual([]);
    await expectTrafficUnharmed(bg);
  });
});

describe('failing plugins', () => {
  it('turns a plain Error into SERVICE_ERROR naming the plugin method and an error id, never the error text', async () => {
    const bg = await setup();
    const c = await h.client();
    const err = await rejection(c.call(THROWS_PLAIN, {}));
    expect(err).toBeInstanceOf(ServiceFailedError);
    expect(err.status).toBe(Status.SERVICE_ERROR);
    expect(err.status).toBe(50);
    expect(err.code).toBe('SB_ERR_SERVICE');
    expect(err.message).toContain('faulty.explode()');
    // The thrown text may hold anything (a path, a query, a secret): it stays in the FS log.
    expect(err.message).not.toContain('kaboom');
    expect(err.message).toMatch(/error id [0-9a-f]{12}/);
    await expectTrafficUnharmed(bg);
  });

  it("carries a PluginError's own code as serviceCode", async () => {
    const bg = await setup();
    const c = await h.client();
    const err = await rejection(c.call(THROWS_CUSTOM, {}));
    expect(err).toBeInstanceOf(ServiceFailedError);
    expect(err.status).toBe(Status.SERVICE_ERROR);
    expect((err as ServiceFailedError).serviceCode).toBe('CUSTOM');
    expect(err.message).toBe('refused on purpose');
    await expectTrafficUnharmed(bg);
  });

  it("cuts a PluginError's message at 4096 characters; one still over the AS's cap fails that call alone, and the pool connection stays open", async () => {
    const bg = await setup(); // the AS's cap: 1 KiB
    const states: string[] = [];
    h.as.on('fs-state', (i, from) => states.push(`${from}->${i.state}`));
    const c = await h.client();
    const fits = await rejection(c.call(THROWS_LONG, { chars: 600 }));
    expect([(fits as ServiceFailedError).serviceCode, fits.message.length]).toEqual(['LONG', 600]);
    const over = await rejection(c.call(THROWS_LONG, { chars: 9 * 1024 * 1024 }));
    expect(over.code).toBe('SB_ERR_FRAME_TOO_LARGE');
    expect(over.message).toMatch(/^the error of service 906 is \d+ bytes, over the 1024-byte cap$/);
    // Answered by the FS, not by a closed connection: nothing else was lost.
    expect(h.as.dispatcher.localAnswers.get(Status.CHANNEL_CLOSED) ?? 0).toBe(0);
    expect(states).toEqual([]);
    await expectTrafficUnharmed(bg);
  });

  it('sends at most 4096 characters of a long PluginError message, saying how many were cut', async () => {
    await h.cluster({}, [{ name: 'fs-1', plugins: [FaultyPlugin] }]);
    const c = await h.client();
    const err = await rejection(c.call(THROWS_LONG, { chars: 9 * 1024 * 1024 }));
    expect((err as ServiceFailedError).serviceCode).toBe('LONG');
    expect(err.message).toBe(`${'x'.repeat(4096)}… (${9 * 1024 * 1024 - 4096} more characters cut)`);
  });

  it("passes on the plugin code of a ServiceFailedError a handler rethrows, not SB_ERR_SERVICE", async () => {
    await h.cluster({}, [{ name: 'fs-1', plugins: [FaultyPlugin] }]);
    const c = await h.client();
    const err = await rejection(c.call(RETHROWS, {}));
    expect([(err as ServiceFailedError).serviceCode, err.message]).toEqual(['UNKNOWN_CITY', 'no forecast for "Atlantis"']);
  });

  it("answers TIMEOUT for a handler that never settles, within the service's timeoutMs", async () => {
    const bg = await setup();
    const c = await h.client();
    const t0 = Date.now();
    const err = await rejection(c.call(NEVER_ANSWERS, {}));
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(err.status).toBe(Status.TIMEOUT);
    // Which timer fired is told by who answered and what limit it names, not by a wall-clock
    // window: the FS's handler limit (the service's timeoutMs), relayed by the AS; the call's own
    // budget (30 s by default) is far away.
    expect(err.message).toBe(`service ${NEVER_ANSWERS} did not answer within ${NEVER_ANSWERS_TIMEOUT_MS} ms`);
    expect(h.as.dispatcher.relayedAnswers[Status.TIMEOUT]).toBe(1);
    expect(h.as.dispatcher.localAnswers.get(Status.TIMEOUT) ?? 0).toBe(0);
    expect(took).toBeGreaterThanOrEqual(NEVER_ANSWERS_TIMEOUT_MS - 20);
    await expectTrafficUnharmed(bg);
  });

  it("lets the call's own smaller timeoutMs win", async () => {
    const bg = await setup();
    const c = await h.client();
    const t0 = Date.now();
    // The AS forwards the remaining budget, so the FS's timer or the AS's sweep answers, whichever fires first.
    const err = await rejection(c.call(NEVER_ANSWERS, {}, { timeoutMs: 80 }));
    const took = Date.now() - t0;
    expect(err.status).toBe(Status.TIMEOUT);
    expect(err.code).toBe('SB_ERR_TIMEOUT');
    expect(took).toBeGreaterThanOrEqual(70);
    // Not the service's 300 ms: either the FS ran the handler under the forwarded budget (at most
    // 80 ms, named in its message), or the AS's own deadline answered first.
    const fsLimit = /did not answer within (\d+) ms$/.exec(err.message);
    if (fsLimit !== null) {
      expect(Number(fsLimit[1])).toBeLessThanOrEqual(80);
      expect(Number(fsLimit[1])).toBeGreaterThan(0);
      expect(h.as.dispatcher.relayedAnswers[Status.TIMEOUT]).toBe(1);
    } else {
      expect(err.message).toMatch(/did not answer service 902 before the deadline/);
      expect(h.as.dispatcher.localAnswers.get(Status.TIMEOUT)).toBe(1);
    }
    await expectTrafficUnharmed(bg);
  });
});
