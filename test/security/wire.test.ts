import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { HEADER_SIZE, Serialization, FLAG_REQUEST, FLAG_TWO_WAY, Status, decodeBody, encodeFrameRaw, encodeRequest, isEvent, requestIdOf, statusOf } from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { WeatherPlugin } from '../../src/plugins/samples/weather-plugin.js';
import { expectTrafficUnharmed, useHarness, waitFor } from '../fixtures/cluster.js';
import { COUNTED, CountedPlugin, counters, pacedEcho, resetCounters } from './clients-helpers.js';

const h = useHarness();
afterEach(() => resetCounters());

const DIST_CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** A two-way msgpack request whose body is exactly `body` (bytes as given, not re-encoded). */
function requestWithBody(id: number, serviceKey: number, body: Buffer): Buffer {
  return encodeFrameRaw({ flags: FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK, requestId: id, serviceKey, budgetMs: 2000 }, body);
}

describe('the stalled-frame rule on the client port', () => {
  it('closes a connection whose frame stalls, with read-timeout, at readTimeoutMs (max(1000, 3 × heartbeat) = 3000) after its first byte', async () => {
    await h.cluster({ heartbeatMs: 1000 }, [{ name: 'fs-1' }]);
    // A caller that keeps a gentle pace for the whole stall (the usual background would hit its bound).
    const bg = pacedEcho(await h.client());
    h.defer(() => bg.stop());
    const okBefore = bg.ok();
    const raw = await h.raw();
    const half = encodeRequest(1, 1, 'never finished').subarray(0, HEADER_SIZE / 2);
    const sentAt = performance.now();
    raw.write(half);
    await raw.waitClosed(5000);
    const tookMs = performance.now() - sentAt;
    console.log(`stalled frame closed after ${tookMs.toFixed(0)} ms`);
    expect(tookMs).toBeGreaterThanOrEqual(2900);
    expect(tookMs).toBeLessThanOrEqual(3600);
    expect(h.as.closedConnections().client.get('read-timeout')).toBe(1);
    expect(h.as.closedConnections().client.get('heartbeat')).toBe(0);
    expect(raw.frames.filter((f) => !isEvent(f))).toEqual([]); // closed without an error frame
    await waitFor(() => bg.ok() >= okBefore + 100, 'the paced caller to be served during the stall');
    const { ok, failures } = await bg.stop();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
  });
});

describe('msgpack extensions in request bodies', () => {
  it('an extension other than the timestamp gets BAD_REQUEST SB_ERR_BAD_BODY from the FS; no handler runs; the connection carries on', async () => {
    await h.cluster({}, [{ name: 'fs-1', plugins: [EchoPlugin, CountedPlugin] }]);
    const bg = await h.background();
    const raw = await h.raw();
    const withRecords = new Packr({ moreTypes: true }); // msgpackr's own defaults: records, Error, undefined...
    const bodies: [string, Buffer][] = [
      ['undefined (fixext 1, type 0)', Buffer.from('d40000', 'hex')],
      ["msgpackr's Error extension (type 0x65)", withRecords.pack(new Error('boom'))],
      ['an ext 8 of type 0x65', Buffer.from('c7026500c0', 'hex')],
      ['a msgpackr record (type 0x72) inside a map', withRecords.pack({ a: undefined })],
      ['the never-used byte 0xc1', Buffer.from('c1', 'hex')],
    ];
    for (const [i, [what, body]] of bodies.entries()) {
      for (const key of [1, COUNTED]) {
        raw.write(requestWithBody(10 * (i + 1) + key, key, body));
        const f = await raw.nextFrame();
        expect(requestIdOf(f), what).toBe(10 * (i + 1) + key);
        expect(statusOf(f), what).toBe(Status.BAD_REQUEST);
        expect(decodeBody(f), what).toMatchObject({ code: 'SB_ERR_BAD_BODY' });
      }
    }
    expect(counters.counted).toBe(0);
    // The same connection still works, and the timestamp extension in all three sizes is a date.
    for (const [id, hex, ms] of [
      [101, 'd6ff6553f100', 1_700_000_000_000],
      [102, 'd7ff1d5353006553f100', 1_700_000_000_123],
      [103, 'c70cff00000000ffffffffffffffff', -1000],
    ] as const) {
      raw.write(requestWithBody(id, 1, Buffer.from(hex, 'hex')));
      const f = await raw.nextFrame();
      expect([requestIdOf(f), statusOf(f)]).toEqual([id, Status.OK]);
      const echoed = decodeBody(f);
      expect(echoed).toBeInstanceOf(Date);
      expect((echoed as Date).getTime()).toBe(ms);
    }
    const c = await h.client();
    const when = new Date(Date.UTC(2026, 10, 23, 12, 30, 45, 678));
    const back = await c.call<{ when: Date }>(1, { when });
    expect(back.when).toBeInstanceOf(Date);
    expect(back.when.getTime()).toBe(when.getTime());
    expect(raw.isClosed).toBe(false);
    expect(h.as.closedConnections().client.get('protocol')).toBe(0);
    await expectTrafficUnharmed(bg);
  });
});

describe('`switchboard call` and a plugin error', () => {
  it("prints the plugin's own code (UNKNOWN_CITY) and exits 1", async () => {
    expect(existsSync(DIST_CLI), 'run `npm run build` first (npm test does)').toBe(true);
    await h.cluster({}, [{ name: 'fs-weather', plugins: [WeatherPlugin] }]);
    const child = spawn(process.execPath, [DIST_CLI, 'call', '--as', `127.0.0.1:${h.port}`, '--service', '101', '--data', '{"city":"Atlantis","days":1}'], { stdio: ['ignore', 'pipe', 'pipe'] });
    h.defer(() => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trim()).toMatch(/^SERVICE_ERROR: no forecast for "Atlantis"; service 102 lists the cities known \(UNKNOWN_CITY\)$/);
    await waitFor(() => h.as.clientConnections === 0, 'the CLI connection to close');
  });
});
