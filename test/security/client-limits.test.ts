import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Client,
  EventKind,
  FrameTooLargeError,
  Status,
  decodeBody,
  encodeEventRequest,
  encodeRequest,
  encodeResponse,
  isEvent,
  requestIdOf,
  statusOf,
} from '../../src/index.js';
import { EchoPlugin, ECHO, ECHO_DELAYED } from '../../src/plugins/samples/echo-plugin.js';
import { RoleProcess } from '../../src/cli/child-process.js';
import { expectTrafficUnharmed, useHarness, waitFor, withTimeout, type RawSocket } from '../fixtures/cluster.js';
import { COUNTED, CountedPlugin, GATED_ECHO, GatedEchoPlugin, collectWarnings, counters, gate, pacedEcho, resetCounters } from './clients-helpers.js';

const h = useHarness();
afterEach(() => resetCounters());

const MiB = 1024 * 1024;
const DIST_CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** The id-0 connection-level error a raw socket got before it was closed. */
function connectionError(raw: RawSocket): { status: number; code: string; message: string } | undefined {
  const f = raw.frames.find((x) => !isEvent(x) && requestIdOf(x) === 0);
  return f && { status: statusOf(f), ...(decodeBody(f) as { code: string; message: string }) };
}

describe('a client that never reads its answers', () => {
  it('is closed with output-limit once more than maxClientBufferedBytes is held for it; RSS stays bounded; others are served', async () => {
    // The per-client budget of request bytes in flight (16 MiB by default) is raised here, so that
    // the answer budget alone is under test.
    const [fs] = await h.cluster({ maxClientBufferedBytes: 8 * MiB, maxInflightBytesPerClient: 64 * MiB }, [{ name: 'fs-1', plugins: [EchoPlugin, GatedEchoPlugin] }]);
    const bg = pacedEcho(await h.client(), 2);
    h.defer(() => bg.stop());
    await waitFor(() => bg.ok() >= 20, 'background traffic to flow');
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 5);
    h.defer(() => clearInterval(sampler));

    // A socket nobody reads: Node stops reading it once its small buffer is full, so the kernel's
    // receive window closes and every answer backs up in the AS.
    const hog: Socket = connect({ host: '127.0.0.1', port: h.port });
    hog.on('error', () => undefined);
    const hogClosed = new Promise<void>((r) => hog.once('close', () => r()));
    h.defer(() => hog.destroy());
    await new Promise<void>((r) => hog.once('connect', () => r()));
    hog.pause();
    // 32 echoes of 1 MiB, all in flight on the FS before any answer is let go: then 32 MiB of
    // answers come back at once against an 8 MiB budget (the kernel's buffers hold about 4 MiB more).
    const value = Buffer.alloc(MiB, 7);
    for (let i = 1; i <= 32; i++) hog.write(encodeRequest(i, GATED_ECHO, { value }, { budgetMs: 10_000 }));
    await waitFor(() => gate.waiting() === 32, 'all 32 echoes to be held on the FS', 15_000).catch((e: Error) => {
      throw new Error(`${e.message}: held ${gate.waiting()}, FS inflight ${fs.inflight}, hog wrote ${hog.bytesWritten} with ${hog.writableLength} unsent, AS closed ${JSON.stringify([...h.as.closedConnections().client].filter(([, n]) => n > 0))}, AS clients ${h.as.clientConnections}`);
    });
    expect(fs.inflight).toBe(32);
    const rssAtRelease = process.memoryUsage().rss;
    gate.open();

    await waitFor(() => h.as.closedConnections().client.get('output-limit') === 1, 'the AS to close the client that does not read', 5000);
    clearInterval(sampler);
    // The hog, reading at last, finds its connection closed with most answers never sent.
    hog.resume();
    await withTimeout(hogClosed, 3000, 'the hog to see its connection closed');
    expect(hog.bytesRead).toBeLessThan(16 * MiB);
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    const closed = h.as.closedConnections().client;
    expect(closed.get('output-limit')).toBe(1);
    expect(closed.get('write-stall')).toBe(0);
    const growthMb = (rssPeak - rssBefore) / MiB;
    console.log(
      `never-reading client: RSS before ${(rssBefore / MiB).toFixed(1)} MiB, with 32 MiB of requests held ${(rssAtRelease / MiB).toFixed(1)} MiB, ` +
        `peak ${(rssPeak / MiB).toFixed(1)} MiB (+${growthMb.toFixed(1)} MiB; client, AS and FS share this process); answers it received ${(hog.bytesRead / MiB).toFixed(1)} MiB`,
    );
    expect(growthMb).toBeLessThan(200);
    const okAtClose = bg.ok();
    await waitFor(() => bg.ok() >= okAtClose + 50, 'the other client to be served after the close');
    const { ok, failures } = await bg.stop();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(70);
  });
});

describe('idle client connections', () => {
  it('closes silent, heartbeat-only and response-only connections with idle and SB_ERR_IDLE; a caller is kept', async () => {
    await h.cluster({ clientIdleTimeoutMs: 300 }, [{ name: 'fs-1' }]);
    const start = Date.now();
    const silent = await h.raw();
    const heartbeats = await h.raw();
    const responses = await h.raw();
    const caller = await h.client();
    let calls = 0;
    const chatter = setInterval(() => {
      heartbeats.write(encodeEventRequest(EventKind.HEARTBEAT, 0, undefined, true));
      responses.write(encodeResponse(5, Status.OK, 'not a request'));
    }, 50);
    h.defer(() => clearInterval(chatter));
    const calling = (async () => {
      // Calls every 50 ms for four idle timeouts, longer than any idle close below takes.
      while (Date.now() - start < 1200) {
        expect(await caller.call(1, calls)).toBe(calls);
        calls++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await Promise.all([silent.waitClosed(3000), heartbeats.waitClosed(3000), responses.waitClosed(3000)]);
    const closedAfter = Date.now() - start;
    clearInterval(chatter);
    for (const raw of [silent, heartbeats, responses]) {
      expect(connectionError(raw)).toMatchObject({ status: Status.CHANNEL_CLOSED, code: 'SB_ERR_IDLE' });
    }
    // The heartbeat-only peer was answered (pongs): it was alive, just not asking for anything.
    expect(heartbeats.frames.some((f) => isEvent(f) && statusOf(f) === Status.OK)).toBe(true);
    // The response-only peer was told each frame was wrong; that is not a request either.
    expect(responses.frames.filter((f) => !isEvent(f) && requestIdOf(f) === 5 && statusOf(f) === Status.BAD_REQUEST).length).toBeGreaterThan(0);
    expect(closedAfter).toBeGreaterThanOrEqual(300);
    await calling;
    expect(calls).toBeGreaterThan(10);
    expect(caller.closed).toBe(false);
    expect(h.as.closedConnections().client.get('idle')).toBe(3);
  });

  it('the idle time starts when a long call is answered, not when it was sent', async () => {
    await h.cluster({ clientIdleTimeoutMs: 400 }, [{ name: 'fs-1' }]);
    const client = await h.client();
    let closedAt = 0;
    client.on('disconnected', () => (closedAt = Date.now()));
    expect(await client.call(ECHO_DELAYED, { ms: 700, value: 'long' }, { timeoutMs: 5000 })).toBe('long');
    const answeredAt = Date.now();
    await waitFor(() => closedAt > 0, 'the idle close');
    // Counted from the send, the close would follow the answer at the next sweep (100 ms).
    expect(closedAt - answeredAt).toBeGreaterThanOrEqual(300);
    expect(h.as.closedConnections().client.get('idle')).toBe(1);
  });

  it('an SDK client closed as idle does not dial again until it has a call to send; that call is served on a new connection', async () => {
    await h.cluster({ clientIdleTimeoutMs: 300 }, [{ name: 'fs-1' }]);
    const client = await h.client();
    const seen: string[] = [];
    client.on('connected', () => seen.push('connected'));
    client.on('disconnected', (e) => seen.push(`disconnected ${e.reason}`));
    await waitFor(() => seen.length > 0, 'the idle close');
    expect(seen).toEqual(['disconnected SB_ERR_IDLE']);
    // Well past the immediate redial it used to make (and past another idle period).
    await new Promise((r) => setTimeout(r, 500));
    expect(seen).toEqual(['disconnected SB_ERR_IDLE']);
    expect(client.connected).toBe(false);
    expect(h.as.closedConnections().client.get('idle')).toBe(1);
    expect(await client.call(1, 'after idle')).toBe('after idle');
    expect(seen).toEqual(['disconnected SB_ERR_IDLE', 'connected']);
  });

  it('after an idle close, RESOLVE and LOOKUP wait for the new connection as a call does, and are answered', async () => {
    await h.cluster({ clientIdleTimeoutMs: 300 }, [{ name: 'fs-1' }]);
    const client = await h.client();
    let closes = 0;
    client.on('disconnected', () => closes++);
    await waitFor(() => closes === 1 && !client.connected, 'the idle close');
    expect(await client.resolve('echo.echo')).toMatchObject({ key: 1, name: 'echo.echo' });
    await waitFor(() => closes === 2 && !client.connected, 'a second idle close');
    expect((await client.lookup(1)).endpoints).toHaveLength(1);
    expect(h.as.closedConnections().client.get('idle')).toBe(2);
  });

  it('refused requests and questions do not hold a connection open; answered LOOKUPs do', async () => {
    await h.cluster({ clientIdleTimeoutMs: 300 }, [{ name: 'fs-1' }]);
    const start = Date.now();
    const unknownKey = await h.raw();
    const badLookup = await h.raw();
    const unknownName = await h.raw();
    const lookups = await h.raw();
    let id = 0;
    const chatter = setInterval(() => {
      id++;
      unknownKey.write(encodeRequest(id, 999, {}));
      badLookup.write(encodeEventRequest(EventKind.LOOKUP, id, {}, true));
      unknownName.write(encodeEventRequest(EventKind.RESOLVE, id, { name: 'nobody.serves-this' }, true));
      lookups.write(encodeEventRequest(EventKind.LOOKUP, id, { key: 1 }, true));
    }, 50);
    h.defer(() => clearInterval(chatter));
    await Promise.all([unknownKey.waitClosed(3000), badLookup.waitClosed(3000), unknownName.waitClosed(3000)]);
    const closedAfter = Date.now() - start;
    for (const raw of [unknownKey, badLookup, unknownName]) {
      expect(connectionError(raw)).toMatchObject({ status: Status.CHANNEL_CLOSED, code: 'SB_ERR_IDLE' });
    }
    // Each was answered every time: refused, not ignored.
    expect(unknownKey.frames.filter((f) => !isEvent(f) && statusOf(f) === Status.SERVICE_NOT_FOUND).length).toBeGreaterThan(2);
    expect(badLookup.frames.filter((f) => isEvent(f) && statusOf(f) === Status.BAD_REQUEST).length).toBeGreaterThan(2);
    expect(unknownName.frames.filter((f) => isEvent(f) && statusOf(f) === Status.SERVICE_NOT_FOUND).length).toBeGreaterThan(2);
    expect(closedAfter).toBeGreaterThanOrEqual(300);
    // The connection whose LOOKUPs were answered outlived them by at least an idle timeout.
    await new Promise((r) => setTimeout(r, 400));
    clearInterval(chatter);
    expect(lookups.isClosed).toBe(false);
    expect(lookups.frames.filter((f) => isEvent(f) && statusOf(f) === Status.OK).length).toBeGreaterThan(10);
    expect(h.as.closedConnections().client.get('idle')).toBe(3);
  });
});

describe('request id 0', () => {
  it('a two-way request with id 0 gets an id-0 BAD_REQUEST and a close; one-way requests with id 0 are served', async () => {
    await h.cluster({}, [{ name: 'fs-1', plugins: [EchoPlugin, CountedPlugin] }]);
    const bg = await h.background();
    const bad = await h.raw();
    bad.write(encodeRequest(0, COUNTED, {}));
    const f = await bad.nextFrame();
    expect([requestIdOf(f), statusOf(f)]).toEqual([0, Status.BAD_REQUEST]);
    expect(decodeBody(f)).toMatchObject({ code: 'SB_ERR_BAD_REQUEST', message: expect.stringMatching(/request id 0 is reserved/) });
    await bad.waitClosed();
    expect(h.as.closedConnections().client.get('protocol')).toBe(1);

    const oneWay = await h.raw();
    for (let i = 0; i < 3; i++) oneWay.write(encodeRequest(0, COUNTED, {}, { twoWay: false }));
    const sdk = await h.client();
    sdk.send(COUNTED, {}); // the SDK's one-way send uses id 0 too
    await waitFor(() => counters.counted === 4, 'four one-way requests with id 0 to run');
    expect(oneWay.isClosed).toBe(false);
    expect(oneWay.frames.filter((x) => !isEvent(x))).toEqual([]);
    expect(await sdk.call(COUNTED)).toBe(5);
    expect(h.as.closedConnections().client.get('protocol')).toBe(1);
    await expectTrafficUnharmed(bg);
  });

  it('a response frame gets BAD_REQUEST on its own id and the connection carries on; numbered 0, the refusal is connection-level and closes', async () => {
    await h.cluster({}, [{ name: 'fs-1' }]);
    const bg = await h.background();
    const raw = await h.raw();
    raw.write(encodeResponse(7, Status.OK, {}));
    raw.write(encodeRequest(8, ECHO, { n: 8 }));
    await waitFor(() => raw.frames.filter((f) => !isEvent(f)).length === 2, 'the refusal and the echo');
    const [refusal, echo] = raw.frames.filter((f) => !isEvent(f));
    expect([requestIdOf(refusal), statusOf(refusal)]).toEqual([7, Status.BAD_REQUEST]);
    expect([requestIdOf(echo), statusOf(echo)]).toEqual([8, Status.OK]);
    expect(raw.isClosed).toBe(false);

    raw.write(encodeResponse(0, Status.OK, {}));
    await raw.waitClosed();
    expect(connectionError(raw)).toMatchObject({ status: Status.BAD_REQUEST, code: 'SB_ERR_BAD_REQUEST', message: expect.stringContaining('response frame with request id 0') });
    expect(h.as.closedConnections().client.get('protocol')).toBe(1);
    await expectTrafficUnharmed(bg);
  });

  it('a two-way event with id 0 (LOOKUP, RESOLVE) gets an id-0 BAD_REQUEST and a close; heartbeat pings with id 0 are answered', async () => {
    await h.cluster({}, [{ name: 'fs-1' }]);
    const bg = await h.background();
    for (const [kind, body] of [
      [EventKind.LOOKUP, { key: 1 }],
      [EventKind.RESOLVE, { name: 'echo.echo' }],
    ] as const) {
      const bad = await h.raw();
      bad.write(encodeEventRequest(EventKind.HEARTBEAT, 0, undefined, true));
      bad.write(encodeEventRequest(kind, 0, body, true));
      await bad.waitClosed();
      expect(bad.frames.some((f) => isEvent(f) && requestIdOf(f) === 0 && statusOf(f) === Status.OK)).toBe(true); // the pong
      expect(connectionError(bad)).toMatchObject({ status: Status.BAD_REQUEST, code: 'SB_ERR_BAD_REQUEST', message: expect.stringContaining(`kind ${kind}) with request id 0`) });
      // Nothing but the pong and the error came back: the LOOKUP or RESOLVE was not answered.
      expect(bad.frames).toHaveLength(2);
    }
    expect(h.as.closedConnections().client.get('protocol')).toBe(2);
    await expectTrafficUnharmed(bg);
  });

  it('the FS data port refuses a two-way event with id 0 the same way', async () => {
    const [fs] = await h.cluster({}, [{ name: 'fs-1' }]);
    const bad = await h.raw(fs.address().port);
    bad.write(encodeEventRequest(EventKind.DESCRIBE, 0, {}, true));
    await bad.waitClosed();
    expect(connectionError(bad)).toMatchObject({ status: Status.BAD_REQUEST, code: 'SB_ERR_BAD_REQUEST' });
    expect(bad.frames).toHaveLength(1);
  });
});

/** An AS child process under a lowered open-file limit, with its JSON log lines. */
class LimitedAs {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  readonly exited: Promise<void>;
  stderr = '';

  constructor(nofile: number, args: string[]) {
    this.child = spawn('prlimit', [`--nofile=${nofile}:${nofile}`, process.execPath, DIST_CLI, 'as', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((r) => this.child.once('exit', () => r()));
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
      try {
        this.lines.push(JSON.parse(text) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
    });
  }

  async line(msg: string): Promise<Record<string, unknown>> {
    await waitFor(() => this.lines.some((l) => l.msg === msg) || this.child.exitCode !== null, `the AS child to log "${msg}"`, 8000);
    if (!this.lines.some((l) => l.msg === msg)) throw new Error(`the AS child exited (${this.child.exitCode}) before logging "${msg}": ${this.stderr.trim()}`);
    return this.lines.find((l) => l.msg === msg) as Record<string, unknown>;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.child.pid === undefined) return;
    process.kill(this.child.pid, 'SIGKILL');
    await this.exited;
  }
}

async function getJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Asks `path` until `done` holds (each answer is the condition's input); fails after 5 s. */
async function pollJson(port: number, path: string, done: (r: { status: number; body: Record<string, unknown> }) => boolean, what: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await getJson(port, path);
    if (done(r)) return r;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last answer ${JSON.stringify(r)}`);
    await new Promise((res) => setTimeout(res, 10));
  }
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      s.on('error', () => undefined);
      resolve(s);
    });
  });
}

describe('maxConnections and the open-file limit', () => {
  it('an AS under ulimit -n 256 lowers maxConnections, reports saturated on /readyz (not /healthz), and refuses beyond with id-0 OVERLOADED', async () => {
    expect(existsSync(DIST_CLI), 'run `npm run build` first (npm test does)').toBe(true);
    const as = new LimitedAs(256, ['--port', '0', '--control-port', '0', '--admin-port', '0', '--heartbeat-ms', '5000', '--log-level', 'info']);
    h.defer(() => as.stop());
    const lowered = await as.line('maxConnections is above what the open-file limit can hold; lowered (raise ulimit -n to keep it)');
    expect(lowered).toMatchObject({ maxConnections: 10_000, openFileLimit: 256, lowered: 128 });
    const listening = await as.line('application server listening');
    expect(listening).toMatchObject({ maxConnections: 128, openFileLimit: 256 });
    const adminPort = (await as.line('admin surface listening')).adminPort as number;
    const port = listening.port as number;

    const fs = new RoleProcess('fd-fs', ['fs', '--name', 'fd-fs', '--as', `127.0.0.1:${listening.controlPort as number}`, '--port', '0', '--plugins', 'echo'], { cliPath: DIST_CLI });
    h.defer(() => fs.stop('SIGKILL', 2000));
    await as.line('function server is available');
    expect(await getJson(adminPort, '/readyz')).toEqual({ status: 200, body: { ready: true } });

    const sockets: Socket[] = [];
    h.defer(() => sockets.forEach((s) => s.destroy()));
    for (let i = 0; i < 128; i++) sockets.push(await openSocket(port));
    const health = await pollJson(adminPort, '/healthz', (r) => r.body.clients === 128, 'the AS to hold 128 clients');
    expect(health).toMatchObject({ status: 200, body: { ok: true, clients: 128 } });
    expect(await getJson(adminPort, '/readyz')).toEqual({ status: 503, body: { ready: false, reason: 'saturated: at maxConnections' } });

    const refused = await h.raw(port);
    const f = await refused.nextFrame();
    expect([requestIdOf(f), statusOf(f)]).toEqual([0, Status.OVERLOADED]);
    expect(decodeBody(f)).toMatchObject({ code: 'SB_ERR_OVERLOADED', message: expect.stringMatching(/holds 128 client connections, its maxConnections/) });
    await refused.waitClosed();
    expect((await getJson(adminPort, '/healthz')).status).toBe(200);

    // One slot freed: ready again, and a real client is served.
    sockets.pop()?.destroy();
    const ready = await pollJson(adminPort, '/readyz', (r) => r.status === 200, '/readyz to answer 200 again');
    expect(ready).toEqual({ status: 200, body: { ready: true } });
    const c = await Client.connect({ port });
    h.defer(() => c.close());
    expect(await c.call(1, 'served')).toBe('served');
  });
});

describe('file descriptors', () => {
  it('clients are refused while peer sockets would leave fewer than 64 descriptors spare, before maxConnections; /readyz says why', async () => {
    expect(existsSync(DIST_CLI), 'run `npm run build` first (npm test does)').toBe(true);
    const as = new LimitedAs(256, ['--port', '0', '--control-port', '0', '--admin-port', '0', '--heartbeat-ms', '5000', '--log-level', 'info']);
    h.defer(() => as.stop());
    const listening = await as.line('application server listening');
    expect(listening).toMatchObject({ maxConnections: 128 });
    const adminPort = (await as.line('admin surface listening')).adminPort as number;
    const port = listening.port as number;
    // 100 control connections (loopback: taken without a secret) hold descriptors too.
    const sockets: Socket[] = [];
    h.defer(() => sockets.forEach((s) => s.destroy()));
    for (let i = 0; i < 100; i++) sockets.push(await openSocket(listening.controlPort as number));
    // 256 - 64 spare = 192 peer sockets at most: 100 control, so 92 clients at most.
    const raws = await Promise.all(Array.from({ length: 110 }, () => h.raw(port)));
    await waitFor(() => raws.filter((r) => r.isClosed).length >= 18, 'the AS to turn the clients beyond its spare descriptors away', 8000);
    const refused = raws.filter((r) => r.isClosed);
    const f = refused[0].frames[0];
    expect([requestIdOf(f), statusOf(f)]).toEqual([0, Status.OVERLOADED]);
    expect(decodeBody(f)).toMatchObject({ code: 'SB_ERR_OVERLOADED', message: expect.stringMatching(/short of file descriptors/) });
    const clients = (await getJson(adminPort, '/healthz')).body.clients as number;
    expect(clients).toBeLessThanOrEqual(92);
    expect(clients).toBeGreaterThan(80);
    expect(await getJson(adminPort, '/readyz')).toEqual({ status: 503, body: { ready: false, reason: 'short of file descriptors' } });
  });
});

describe('client SDK limits', () => {
  it('a call over maxBodyBytes fails alone before it is sent; the other calls on the connection succeed', async () => {
    const cap = 64 * 1024;
    await h.cluster({ maxBodyBytes: cap }, [{ name: 'fs-1' }]);
    const c = await h.client({ maxBodyBytes: cap });
    const inFlight = [1, 2, 3, 4, 5].map((i) => c.call(ECHO_DELAYED, { ms: 100, value: i }));
    const big = c.call(1, Buffer.alloc(cap + 1));
    const err = await big.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FrameTooLargeError);
    expect(err).toMatchObject({ code: 'SB_ERR_FRAME_TOO_LARGE' });
    expect(await Promise.all(inFlight)).toEqual([1, 2, 3, 4, 5]);
    expect(c.closed).toBe(false);
    expect(await c.call(1, 'after')).toBe('after');
    // Had it been sent, the AS would have closed the connection for a frame over its cap.
    expect(h.as.closedConnections().client.get('protocol')).toBe(0);
    expect(h.as.clientConnections).toBe(1);
  });

  it('a call with a timeout of 2^31 ms or more works and raises no TimeoutOverflowWarning', async () => {
    await h.cluster({}, [{ name: 'fs-1' }]);
    const bg = await h.background();
    const w = collectWarnings();
    h.defer(() => w.stop());
    const c = await h.client();
    for (const timeoutMs of [2 ** 31, 2 ** 32 - 1, 3e9]) {
      // The delayed echo runs on the FS under a timer of the budget: an unclamped one would fire at once.
      expect(await c.call(ECHO_DELAYED, { ms: 30, value: timeoutMs }, { timeoutMs })).toBe(timeoutMs);
      expect(await c.call(1, 'plain', { timeoutMs })).toBe('plain');
    }
    await new Promise((r) => setImmediate(r));
    expect(w.warnings.map((x) => `${x.name}: ${x.message}`)).toEqual([]);
    await expectTrafficUnharmed(bg);
  });
});
