import { describe, expect, it } from 'vitest';
import { EventKind, Status, decodeBody, encodeEventRequest, encodeRequest, eventKindOf, isEvent, isRequest, requestIdOf, statusOf, type FunctionServer } from '../../src/index.js';
import {
  expectRefusedAndClosed,
  expectTrafficUnharmed,
  useHarness,
  waitFor,
  type Background,
} from '../fixtures/cluster.js';
import { WHO_AM_I } from '../fixtures/test-plugins.js';

const h = useHarness();
const GARBAGE = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n';

/** AS with one FS that reports load every 50 ms, plus a well-behaved client calling echo in the background. */
async function setup(): Promise<{ fs: FunctionServer; bg: Background }> {
  const [fs] = await h.cluster({ loadRefreshMs: 50 }, [{ name: 'fs-1', refreshMs: 50 }]);
  const bg = await h.background();
  await waitFor(() => bg.ok() >= 10, 'background traffic to flow');
  return { fs, bg };
}

/** The FS is still available, and a LOAD report sent after `since` arrived: its control link survived. */
async function expectFsStillRegistered(since: number): Promise<void> {
  expect(h.as.listFunctionServers()[0].state).toBe('available');
  await waitFor(() => {
    const age = h.as.listFunctionServers()[0].loadAgeMs;
    return age !== undefined && age < Date.now() - since;
  }, 'a LOAD report received after the garbage');
}

describe('bad input on the FS data port', () => {
  it('closes only the connection that sent garbage; the FS keeps serving through the AS', async () => {
    const { fs, bg } = await setup();
    expect(fs.connectionCount).toBe(1); // the AS's pool connection
    const raw = await h.raw(fs.address().port);
    await waitFor(() => fs.connectionCount === 2, 'the FS to accept the raw socket');
    raw.write(GARBAGE);
    await expectRefusedAndClosed(raw, 'SB_ERR_BAD_MAGIC');
    await waitFor(() => fs.connectionCount === 1, 'the FS to drop the raw socket');
    const c = await h.client();
    expect(await c.call(WHO_AM_I)).toBe('fs-1');
    expect(h.as.listFunctionServers()[0].state).toBe('available');
    await expectTrafficUnharmed(bg);
  });

  it('closes a data connection that declares a body over the FS cap', async () => {
    const { fs, bg } = await setup();
    const raw = await h.raw(fs.address().port);
    const frame = encodeRequest(1, 1, { big: true });
    frame.writeUInt32BE(0xffffffff, 20); // body length: 4 GiB
    raw.write(frame);
    await expectRefusedAndClosed(raw, 'SB_ERR_FRAME_TOO_LARGE');
    await expectTrafficUnharmed(bg);
  });
});

describe('events an FS data port does not take', () => {
  it('answers a two-way event of another kind with BAD_REQUEST and keeps the connection', async () => {
    const { fs, bg } = await setup();
    const raw = await h.raw(fs.address().port);
    raw.write(encodeEventRequest(EventKind.HELLO, 9, {}, true));
    const refused = await raw.nextFrame();
    expect(isEvent(refused) && !isRequest(refused)).toBe(true);
    expect(eventKindOf(refused)).toBe(EventKind.HELLO);
    expect(requestIdOf(refused)).toBe(9);
    expect(statusOf(refused)).toBe(Status.BAD_REQUEST);
    expect(decodeBody(refused)).toMatchObject({ code: 'SB_ERR_BAD_REQUEST' });
    raw.write(encodeEventRequest(EventKind.DESCRIBE, 10, {}, true)); // the same connection still works
    const described = await raw.nextFrame();
    expect(statusOf(described)).toBe(Status.OK);
    expect(decodeBody(described)).toMatchObject({ name: 'fs-1' });
    await expectTrafficUnharmed(bg);
  });
});

describe('bad input on the AS control port', () => {
  it('closes only the connection that sent garbage; registered FSs are untouched', async () => {
    const { bg } = await setup();
    const raw = await h.raw(h.controlPort);
    const since = Date.now();
    raw.write(GARBAGE);
    await expectRefusedAndClosed(raw, 'SB_ERR_BAD_MAGIC');
    await expectFsStillRegistered(since);
    await expectTrafficUnharmed(bg);
  });

  it('answers a request (not an event) on the control port with BAD_REQUEST and keeps the connection', async () => {
    const { bg } = await setup();
    const raw = await h.raw(h.controlPort);
    raw.write(encodeRequest(5, 1, { hi: 1 }));
    const f = await raw.nextFrame();
    expect(isRequest(f)).toBe(false);
    expect(isEvent(f)).toBe(false);
    expect(requestIdOf(f)).toBe(5);
    expect(statusOf(f)).toBe(Status.BAD_REQUEST);
    expect(decodeBody(f)).toMatchObject({ code: 'SB_ERR_BAD_REQUEST' });
    expect(raw.isClosed).toBe(false);
    await expectTrafficUnharmed(bg);
  });

  it('refuses a malformed HELLO with an event response and registers nothing', async () => {
    const { bg } = await setup();
    const joined: string[] = [];
    h.as.on('fs-joined', (i) => joined.push(i.id));
    const raw = await h.raw(h.controlPort);
    raw.write(encodeEventRequest(EventKind.HELLO, 9, { name: 'impostor', poolType: 0 }, true)); // no endpoint, no services
    const f = await raw.nextFrame();
    expect(isEvent(f)).toBe(true);
    expect(isRequest(f)).toBe(false);
    expect(eventKindOf(f)).toBe(EventKind.HELLO);
    expect(requestIdOf(f)).toBe(9);
    expect(statusOf(f)).toBe(Status.BAD_REQUEST);
    const body = decodeBody(f) as { code: string; message: string };
    expect(body.code).toBe('SB_ERR_BAD_REQUEST');
    expect(body.message).toContain('endpoint');
    expect(joined).toEqual([]);
    expect(h.as.listFunctionServers().map((i) => i.id)).toEqual(['fs-1']);

    // A LOAD on this unregistered link is ignored, not credited to anyone.
    raw.write(encodeEventRequest(EventKind.LOAD, 0, { cpu: 1, elu: 1, rssBytes: 1, heapUsedBytes: 1, memory: 0.1, inflight: 0 }, false));
    raw.write(encodeEventRequest(EventKind.HELLO, 10, 'not an object', true));
    const g = await raw.nextFrame();
    expect([requestIdOf(g), statusOf(g)]).toEqual([10, Status.BAD_REQUEST]);
    expect(h.as.listFunctionServers()[0].load?.elu).toBe(0.1);
    expect(joined).toEqual([]);
    await expectTrafficUnharmed(bg);
  });
});
