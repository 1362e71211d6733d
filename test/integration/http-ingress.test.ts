import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApplicationServer, HTTP_STATUSES, Plugin, Service, Status, defineService, z, type ApplicationServerOptions, type BodyOf, type StatusName } from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { WeatherPlugin } from '../../src/plugins/samples/weather-plugin.js';
import { makeTestCerts, type TestCerts } from '../fixtures/certs.js';
import { expectTrafficUnharmed, useHarness, waitFor, waitForRegistry, type FsSpec } from '../fixtures/cluster.js';
import { startPair, usePairCleanup } from '../fixtures/pair-cluster.js';
import { httpCall, type HttpAnswer, type HttpCallOptions } from '../fixtures/http-call.js';
import { FaultyPlugin, POOL_ECHO, PoolEchoPlugin, THROWS_CUSTOM, THROWS_PLAIN, WhoAmIPlugin } from '../fixtures/test-plugins.js';

const h = useHarness();
const pairs = usePairCleanup();
const HOST = '127.0.0.1';
const SECRET = 'http-ingress-client-secret-0123456789';

// ── Test services ──

const BYTES = 5401;
const UNENCODABLE = 5402;
const RECORD = 5403;
const greet = defineService({
  key: 5301,
  name: 'greeter.greet',
  request: z.object({ name: z.string().min(1), lang: z.enum(['en', 'fr']).default('en') }),
  response: z.object({ text: z.string() }),
});
const recorded: unknown[] = [];

@Plugin({ name: 'http-test' })
class HttpTestPlugin {
  @Service(BYTES)
  bytes(): unknown {
    return { bin: Buffer.from('hi'), big: 2n ** 60n, small: 7, when: new Date(0) };
  }

  @Service(UNENCODABLE)
  unencodable(): unknown {
    return () => 1; // msgpack cannot encode a function: SERVER_ERROR
  }

  @Service(RECORD)
  record(body: unknown): void {
    recorded.push(body);
  }

  @Service(greet)
  greet(body: BodyOf<typeof greet>): { text: string } {
    return { text: `${body.lang === 'fr' ? 'Bonjour' : 'Hello'}, ${body.name}` };
  }
}

// ── HTTP helpers ──

type Answer = HttpAnswer;

let httpPort = 0;

/** One HTTP request to the AS's HTTP ingress (plain or, with `ca`, HTTPS). */
function call(path: string, o: HttpCallOptions = {}, port = httpPort): Promise<Answer> {
  return httpCall(port, path, o);
}

/** An AS with the HTTP ingress and one FS with the echo, who-am-i, faulty and test plugins. */
async function start(asOpts: ApplicationServerOptions = {}, fs: Partial<FsSpec> = {}): Promise<void> {
  await h.cluster({ httpPort: 0, ...asOpts }, [{ name: 'fs-http', plugins: [EchoPlugin, WeatherPlugin, WhoAmIPlugin, FaultyPlugin, HttpTestPlugin], ...fs }]);
  httpPort = h.as.ports.httpPort as number;
}

/** Raw HTTP/1.1 on one socket: write requests on it (pipelined when back to back) and wait for answers. */
function rawHttp(): { write: (req: string) => void; answers: (n: number) => Promise<{ status: number; head: string; body: string }[]>; socket: Socket } {
  const socket: Socket = connect({ host: HOST, port: httpPort });
  h.defer(() => socket.destroy());
  socket.on('error', () => undefined);
  let data = '';
  socket.setEncoding('utf8');
  socket.on('data', (c: string) => (data += c));
  const parse = (n: number): { status: number; head: string; body: string }[] => {
    const out: { status: number; head: string; body: string }[] = [];
    let rest = data;
    while (out.length < n) {
      const end = rest.indexOf('\r\n\r\n');
      if (end < 0) break;
      const head = rest.slice(0, end);
      const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (rest.length < end + 4 + len) break;
      out.push({ status: Number(head.slice(9, 12)), head, body: rest.slice(end + 4, end + 4 + len) });
      rest = rest.slice(end + 4 + len);
    }
    return out;
  };
  return {
    socket,
    write: (req) => socket.write(req),
    answers: async (n) => {
      await waitFor(() => parse(n).length >= n, `${n} answers on one connection`);
      return parse(n);
    },
  };
}

const post = (path: string, json: unknown, headers: Record<string, string> = {}): string => {
  const body = JSON.stringify(json);
  const h2 = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${h2}\r\n${body}`;
};

// ── Tests ──

describe('HTTP ingress: calls', () => {
  it('answers a call by service key and by service name with the decoded body as JSON', async () => {
    await start();
    const byKey = await call('/v1/call/1', { json: { hello: 'world', n: [1, 2.5, null, true] } });
    expect(byKey.status).toBe(200);
    expect(byKey.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(byKey.json).toEqual({ hello: 'world', n: [1, 2.5, null, true] });

    const byName = await call('/v1/call/echo.echo', { json: 'just a string' });
    expect(byName.status).toBe(200);
    expect(byName.json).toBe('just a string');

    const forecast = await call('/v1/call/weather.forecast', { json: { city: 'Beijing', days: 2 } });
    expect(forecast.status).toBe(200);
    expect(forecast.json).toMatchObject({ city: 'Beijing', country: 'CN' });
    expect(forecast.json.days).toHaveLength(2);
  });

  it('takes no body (the handler gets nothing) and answers null for an empty answer; charset in the content type is fine', async () => {
    await start();
    const none = await call('/v1/call/1');
    expect(none.status).toBe(200);
    expect(none.text).toBe('null');
    const emptyJson = await call('/v1/call/1', { raw: '', headers: { 'content-type': 'application/json; charset=utf-8' } });
    expect(emptyJson.status).toBe(200);
    expect(emptyJson.text).toBe('null');
    const nul = await call('/v1/call/1', { raw: 'null', headers: { 'content-type': 'application/json; charset=utf-8' } });
    expect(nul.text).toBe('null');
  });

  it('writes byte buffers as base64 and integers beyond 2^53 as decimal strings; dates as ISO text', async () => {
    await start();
    const r = await call(`/v1/call/${BYTES}`);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ bin: 'aGk=', big: '1152921504606846976', small: 7, when: '1970-01-01T00:00:00.000Z' });
  });

  it('routes on x-sb-pool-type', async () => {
    await start();
    await h.startFs({ name: 'fs-pool-7', poolType: 7, plugins: [PoolEchoPlugin] });
    await waitForRegistry(h.as, (l) => l.some((f) => f.name === 'fs-pool-7' && f.state === 'available'), 'fs-pool-7');
    const ok = await call(`/v1/call/${POOL_ECHO}`, { json: {}, headers: { 'x-sb-pool-type': '7' } });
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ fs: 'fs-pool-7', poolType: 7 });
    const other = await call(`/v1/call/${POOL_ECHO}`, { json: {}, headers: { 'x-sb-pool-type': '8' } });
    expect(other.status).toBe(404);
    expect(other.json).toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND', status: 'SERVICE_NOT_FOUND' });
  });

  it('x-sb-one-way: true is answered 202 at once and the service still runs', async () => {
    await start();
    recorded.length = 0;
    const r = await call(`/v1/call/${RECORD}`, { json: { tag: 'one-way' }, headers: { 'x-sb-one-way': 'true' } });
    expect(r.status).toBe(202);
    expect(r.text).toBe('');
    await waitFor(() => recorded.length === 1, 'the one-way request to run');
    expect(recorded[0]).toEqual({ tag: 'one-way' });
  });

  it('serves concurrent requests from several keep-alive connections, each answer its own', async () => {
    await start();
    const agents = Array.from({ length: 6 }, () => new HttpAgent({ keepAlive: true, maxSockets: 2 }));
    for (const a of agents) h.defer(() => a.destroy());
    const results = await Promise.all(
      agents.flatMap((agent, a) =>
        Array.from({ length: 40 }, async (_, i) => {
          const body = { agent: a, i, pad: 'x'.repeat((a * 40 + i) % 97) };
          const r = await call('/v1/call/1', { json: body, agent });
          return { sent: body, got: r.json, status: r.status, port: r.localPort };
        }),
      ),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    for (const r of results) expect(r.got).toEqual(r.sent);
    // 240 requests over at most 12 kept-alive connections.
    const connections = new Set(results.map((r) => r.port)).size;
    expect(connections).toBeGreaterThanOrEqual(6);
    expect(connections).toBeLessThanOrEqual(12);
  });

  it('works from curl as docs/http-ingress.md shows', async () => {
    await start();
    const out = await new Promise<string>((resolve, reject) =>
      execFile('curl', ['-sS', '-X', 'POST', '-H', 'content-type: application/json', '-d', '{"city":"London","days":1}', `http://127.0.0.1:${httpPort}/v1/call/weather.forecast`], (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    ).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? 'no curl' : Promise.reject(err)));
    if (out === 'no curl') return;
    expect(JSON.parse(out)).toMatchObject({ city: 'London', country: 'GB' });
  });
});

describe('HTTP ingress: statuses', () => {
  it('maps every Switchboard status to the HTTP status docs/http-ingress.md lists', () => {
    const doc = readFileSync(new URL('../../docs/http-ingress.md', import.meta.url), 'utf8');
    const documented = new Map<string, number>();
    for (const m of doc.matchAll(/^\| `([A-Z_]+)` \((\d+)\) \| (\d{3})\b/gm)) {
      expect(Status[m[1] as StatusName], `${m[1]} is a status`).toBe(Number(m[2]));
      documented.set(m[1], Number(m[3]));
    }
    expect(Object.fromEntries(documented)).toEqual(HTTP_STATUSES);
    expect(Object.keys(HTTP_STATUSES).sort()).toEqual(Object.keys(Status).sort());
  });

  it('SERVICE_NOT_FOUND is 404 with the status name; an unknown name too; a key beyond uint32 is 400', async () => {
    await start();
    const key = await call('/v1/call/4242', { json: {} });
    expect(key.status).toBe(404);
    expect(key.json).toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND', status: 'SERVICE_NOT_FOUND' });
    expect(key.json.message).toMatch(/4242/);
    const name = await call('/v1/call/no.such-service', { json: {} });
    expect(name.status).toBe(404);
    expect(name.json).toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND', status: 'SERVICE_NOT_FOUND' });
    const long = await call(`/v1/call/${'n'.repeat(400)}`, { json: {} });
    expect(long.status).toBe(404);
    expect(long.json).toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND' });
    const big = await call('/v1/call/4294967296', { json: {} });
    expect(big.status).toBe(400);
    expect(big.json).toMatchObject({ code: 'SB_ERR_BAD_REQUEST', status: 'BAD_REQUEST' });
    expect((await call('/v1/call/4294967295', { json: {} })).status).toBe(404);
  });

  it('UNAVAILABLE is 503 with Retry-After when the only FS for the key is drained', async () => {
    await start();
    h.as.drain('fs-http');
    const r = await call('/v1/call/1', { json: {} });
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('1');
    expect(r.json).toMatchObject({ code: 'SB_ERR_UNAVAILABLE', status: 'UNAVAILABLE' });
  });

  it('TIMEOUT is 504: x-sb-timeout-ms becomes the request budget', async () => {
    await start();
    const t0 = performance.now();
    const r = await call('/v1/call/echo.delayed', { json: { ms: 3000, value: 1 }, headers: { 'x-sb-timeout-ms': '150' } });
    expect(r.status).toBe(504);
    expect(r.json).toMatchObject({ code: 'SB_ERR_TIMEOUT', status: 'TIMEOUT' });
    expect(performance.now() - t0).toBeLessThan(2000);
    const fast = await call('/v1/call/echo.delayed', { json: { ms: 10, value: 'in time' }, headers: { 'x-sb-timeout-ms': '2000' } });
    expect(fast.status).toBe(200);
    expect(fast.json).toBe('in time');
  });

  it("SERVICE_ERROR is 422 with the plugin's own code, and the error id of a plain throw", async () => {
    await start();
    const custom = await call(`/v1/call/${THROWS_CUSTOM}`, { json: {} });
    expect(custom.status).toBe(422);
    expect(custom.json).toEqual({ code: 'CUSTOM', message: 'refused on purpose', status: 'SERVICE_ERROR' });
    const plain = await call(`/v1/call/${THROWS_PLAIN}`, { json: {} });
    expect(plain.status).toBe(422);
    expect(plain.json).toMatchObject({ code: 'SB_ERR_SERVICE', status: 'SERVICE_ERROR', errorId: expect.stringMatching(/^[0-9a-f]{12}$/) });
    expect(plain.json.message).toContain(plain.json.errorId);
    expect(plain.text).not.toContain('kaboom');
  });

  it('SERVER_ERROR is 500 only for an FS that cannot answer (here: an unencodable result)', async () => {
    await start();
    const r = await call(`/v1/call/${UNENCODABLE}`, { json: {} });
    expect(r.status).toBe(500);
    expect(r.json).toMatchObject({ code: 'SB_ERR_SERVER', status: 'SERVER_ERROR' });
  });

  it('a contract that refuses the body is 400 SB_ERR_VALIDATION with the failing fields', async () => {
    await start();
    const bad = await call('/v1/call/greeter.greet', { json: { name: '', lang: 'de' } });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ code: 'SB_ERR_VALIDATION', status: 'BAD_REQUEST' });
    expect(bad.json.issues.map((i: { path: string }) => i.path).sort()).toEqual(['lang', 'name']);
    const ok = await call('/v1/call/greeter.greet', { json: { name: 'Ada', lang: 'fr' } });
    expect(ok.json).toEqual({ text: 'Bonjour, Ada' });
  });

  it('CHANNEL_CLOSED is 502 when the pool connection drops under a request that may not be sent twice', async () => {
    await start();
    const pending = call('/v1/call/echo.delayed', { json: { ms: 2000 } });
    const entry = [...h.as.manager.entries()][0];
    await waitFor(() => entry.inflight === 1, 'the request to reach the FS');
    for (const up of entry.pool.connections()) up.conn.destroy();
    const r = await pending;
    expect(r.status).toBe(502);
    expect(r.json).toMatchObject({ code: 'SB_ERR_CHANNEL_CLOSED', status: 'CHANNEL_CLOSED' });
  });

  it('OVERLOADED is 503 with Retry-After: past maxInflightPerFs, and past maxInflightPerClient on one pipelined connection', async () => {
    await start({ maxInflightPerFs: 1, maxInflightPerClient: 1 });
    const [a, b] = await Promise.all([call('/v1/call/echo.delayed', { json: { ms: 300, value: 'a' } }), call('/v1/call/echo.delayed', { json: { ms: 300, value: 'b' } })]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([200, 503]);
    const refused = a.status === 503 ? a : b;
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json).toMatchObject({ code: 'SB_ERR_OVERLOADED', status: 'OVERLOADED' });

    // Two requests written back to back on one connection: the second finds the first in flight.
    const raw = rawHttp();
    raw.write(post('/v1/call/echo.delayed', { ms: 300, value: 1 }) + post('/v1/call/1', { value: 2 }));
    const answers = await raw.answers(2);
    expect(answers.map((x) => x.status)).toEqual([200, 503]);
    expect(JSON.parse(answers[1].body)).toMatchObject({ code: 'SB_ERR_OVERLOADED' });
    expect(JSON.parse(answers[1].body).message).toMatch(/this connection has 1 requests in flight/);
  });

  it('NOT_ACTIVE is 421 on the standby of a pair, naming the active', async () => {
    const { a, b } = await startPair(pairs, { b: { as: { httpPort: 0 } } });
    const r = await call('/v1/call/1', { json: {} }, b.ports.httpPort as number);
    expect(r.status).toBe(421);
    expect(r.json).toMatchObject({ code: 'SB_ERR_NOT_ACTIVE', status: 'NOT_ACTIVE', active: { host: HOST, port: a.ports.port } });
    const oneWay = await call('/v1/call/1', { json: {}, headers: { 'x-sb-one-way': 'true' } }, b.ports.httpPort as number);
    expect(oneWay.status).toBe(421);
  });
});

describe('HTTP ingress: trust', () => {
  it('with a client secret: no bearer is 401 SB_ERR_AUTH_REQUIRED, a wrong one SB_ERR_AUTH_FAILED, the right one passes', async () => {
    await start({ clientSecret: SECRET });
    const none = await call('/v1/call/1', { json: {} });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(none.json).toMatchObject({ code: 'SB_ERR_AUTH_REQUIRED', status: 'UNAUTHORIZED' });
    const wrong = await call('/v1/call/1', { json: {}, headers: { authorization: `Bearer ${SECRET}x` } });
    expect(wrong.status).toBe(401);
    expect(wrong.json).toMatchObject({ code: 'SB_ERR_AUTH_FAILED' });
    const basic = await call('/v1/call/1', { json: {}, headers: { authorization: `Basic ${Buffer.from(`u:${SECRET}`).toString('base64')}` } });
    expect(basic.json).toMatchObject({ code: 'SB_ERR_AUTH_REQUIRED' });
    const right = await call('/v1/call/1', { json: { ok: 1 }, headers: { authorization: `Bearer ${SECRET}` } });
    expect(right.status).toBe(200);
    expect(right.json).toEqual({ ok: 1 });
    // The scheme's case does not matter (RFC 9110), as on the admin port; the secret's does.
    const lower = await call('/v1/call/1', { json: { ok: 2 }, headers: { authorization: `bearer ${SECRET}` } });
    expect([lower.status, lower.json]).toEqual([200, { ok: 2 }]);
    const upperSecret = await call('/v1/call/1', { json: {}, headers: { authorization: `BEARER ${SECRET.toUpperCase()}` } });
    expect(upperSecret.json).toMatchObject({ code: 'SB_ERR_AUTH_FAILED' });
  });

  describe('over TLS', () => {
    let certs: TestCerts;
    beforeAll(() => {
      certs = makeTestCerts();
    });
    afterAll(() => certs?.remove());

    it('serves HTTPS when the AS has a certificate', async () => {
      await start({ tls: { cert: certs.server.cert, key: certs.server.key, ca: certs.ca } }, { tls: { cert: certs.client.cert, key: certs.client.key, ca: certs.ca } });
      const agent = new HttpsAgent({ keepAlive: false, ca: certs.ca });
      h.defer(() => agent.destroy());
      const r = await call('/v1/call/1', { json: { over: 'https' }, ca: certs.ca, agent });
      expect(r.status).toBe(200);
      expect(r.json).toEqual({ over: 'https' });
      await expect(call('/v1/call/1', { json: {} })).rejects.toThrow();
    });
  });
});

describe('HTTP ingress: connections', () => {
  it('is off without httpPort, and a bad httpPort is refused at construction', async () => {
    const as = await h.startAs();
    expect(as.ports.httpPort).toBeUndefined();
    expect(() => new ApplicationServer({ httpPort: 70000 })).toThrow(expect.objectContaining({ code: 'SB_ERR_CONFIG' }));
  });

  it('closes connections beyond maxConnections; those below keep working', async () => {
    await start({ maxConnections: 2 });
    const a = rawHttp();
    const b = rawHttp();
    a.write(post('/v1/call/1', 'a'));
    b.write(post('/v1/call/1', 'b'));
    expect((await a.answers(1))[0].status).toBe(200);
    expect((await b.answers(1))[0].status).toBe(200);
    const third = await call('/v1/call/1', { json: 'c' }).then(
      (r) => r.status,
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(['ECONNRESET', 'EPIPE']).toContain(third);
    a.write(post('/v1/call/1', 'a2'));
    expect((await a.answers(2))[1].body).toBe('"a2"');
  });
});

describe('HTTP ingress: bad input', () => {
  it('bad JSON is 400 SB_ERR_BAD_JSON and the connection stays usable; __proto__ keys are refused', async () => {
    await start();
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    h.defer(() => agent.destroy());
    const bad = await call('/v1/call/1', { raw: '{"a": 1,', headers: { 'content-type': 'application/json' }, agent });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ code: 'SB_ERR_BAD_JSON', status: 'BAD_REQUEST' });
    expect(bad.json.message).toMatch(/JSON/);
    expect(bad.headers.connection).not.toBe('close');
    const after = await call('/v1/call/1', { json: { after: true }, agent });
    expect(after.status).toBe(200);
    expect(after.reused).toBe(true);
    const poisoned = await call('/v1/call/1', { raw: '{"__proto__": {"admin": true}}', headers: { 'content-type': 'application/json' }, agent });
    expect(poisoned.status).toBe(400);
    expect(poisoned.json).toMatchObject({ code: 'SB_ERR_BAD_JSON' });
  });

  it('a body nested more than 512 deep is refused 400 before JSON.parse sees it (a bracket bomb costs 512 steps); 512 deep is served', async () => {
    await start();
    const parse = vi.spyOn(JSON, 'parse');
    h.defer(() => parse.mockRestore());
    const bomb = `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`;
    const refused = await call('/v1/call/1', { raw: bomb, headers: { 'content-type': 'application/json' } });
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ code: 'SB_ERR_BAD_JSON', message: expect.stringContaining('more than 512 deep') });
    expect(parse.mock.calls.some(([text]) => typeof text === 'string' && text.length >= bomb.length)).toBe(false);
    const deep = `${'['.repeat(512)}"x"${']'.repeat(512)}`;
    const served = await call('/v1/call/1', { raw: deep, headers: { 'content-type': 'application/json' } });
    expect(served.status).toBe(200);
    // Brackets inside strings are text, not depth.
    const quoted = await call('/v1/call/1', { json: { s: '['.repeat(2000) } });
    expect(quoted.status).toBe(200);
  });

  it('bad x-sb-* headers are 400 SB_ERR_BAD_HEADER naming the header', async () => {
    await start();
    const cases: [string, string][] = [
      ['x-sb-pool-type', '65536'],
      ['x-sb-pool-type', '-1'],
      ['x-sb-pool-type', 'seven'],
      ['x-sb-timeout-ms', '0'],
      ['x-sb-timeout-ms', '3600001'],
      ['x-sb-timeout-ms', '1.5'],
      ['x-sb-one-way', 'yes'],
    ];
    for (const [name, value] of cases) {
      const r = await call('/v1/call/1', { json: {}, headers: { [name]: value } });
      expect(r.status, `${name}: ${value}`).toBe(400);
      expect(r.json).toMatchObject({ code: 'SB_ERR_BAD_HEADER', status: 'BAD_REQUEST' });
      expect(r.json.message).toContain(name);
    }
    expect((await call('/v1/call/1', { json: 1, headers: { 'x-sb-timeout-ms': '3600000', 'x-sb-pool-type': '0' } })).status).toBe(200);
  });

  it('unknown path 404, wrong method 405 with Allow, wrong content type 415: never 500', async () => {
    await start();
    const nope = await call('/v1/nope', { json: {} });
    expect(nope.status).toBe(404);
    expect(nope.json).toMatchObject({ code: 'SB_ERR_NOT_FOUND' });
    const get = await call('/v1/call/1', { method: 'GET' });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect(get.json).toMatchObject({ code: 'SB_ERR_METHOD' });
    const text = await call('/v1/call/1', { raw: 'hello', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
    expect(text.json).toMatchObject({ code: 'SB_ERR_MEDIA_TYPE', status: 'BAD_REQUEST' });
    const form = await call('/v1/call/1', { raw: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.status).toBe(415);
    const noType = await call('/v1/call/1', { raw: '{}' });
    expect(noType.status).toBe(415);
    const badUrl = await call('/v1/call/%E0%A4%A');
    expect(badUrl.status).toBe(400);
    expect(badUrl.json).toMatchObject({ code: 'SB_ERR_BAD_REQUEST' });
  });
});

describe('HTTP ingress: large bodies', () => {
  const LIMIT = 64 * 1024;

  it('takes a body of exactly maxBodyBytes, refuses one byte more with 413, and keeps serving HTTP and binary clients', async () => {
    await start({ maxBodyBytes: LIMIT });
    const bg = await h.background();
    // {"s":"…"} is as long in JSON as in msgpack (8 bytes of overhead either way).
    const atLimit = { s: 'a'.repeat(LIMIT - 8) };
    expect(Buffer.byteLength(JSON.stringify(atLimit))).toBe(LIMIT);
    const ok = await call('/v1/call/1', { json: atLimit });
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual(atLimit);

    const over = await call('/v1/call/1', { json: { s: 'a'.repeat(LIMIT - 7) } });
    expect(over.status).toBe(413);
    expect(over.json).toMatchObject({ code: 'SB_ERR_FRAME_TOO_LARGE', status: 'BAD_REQUEST' });
    expect(over.json.message).toContain(String(LIMIT));

    // Over the limit as JSON (white space), far under it as msgpack: the JSON limit still holds.
    const padded = await call('/v1/call/1', { raw: `{"s": 1${' '.repeat(LIMIT)}}`, headers: { 'content-type': 'application/json' } });
    expect(padded.status).toBe(413);
    expect(padded.headers.connection).toBe('close');

    // Under the limit as JSON, over it as msgpack: 1.5 is 4 bytes of JSON and 9 of msgpack.
    const floats = Array.from({ length: Math.floor(LIMIT / 4) - 10 }, () => 1.5);
    expect(Buffer.byteLength(JSON.stringify(floats))).toBeLessThan(LIMIT);
    const grown = await call('/v1/call/1', { json: floats });
    expect(grown.status).toBe(413);
    expect(grown.json).toMatchObject({ code: 'SB_ERR_FRAME_TOO_LARGE' });

    // A far larger body is refused from its Content-Length, before it is read.
    const huge = await call('/v1/call/1', { raw: Buffer.alloc(4 * 1024 * 1024, 0x20), headers: { 'content-type': 'application/json' } }).catch((e: Error) => e);
    if (!(huge instanceof Error)) expect(huge.status).toBe(413);

    expect((await call('/v1/call/1', { json: { still: 'serving' } })).json).toEqual({ still: 'serving' });
    await expectTrafficUnharmed(bg);
  });
});

describe('HTTP ingress: stop', () => {
  it('stop() lets requests in flight finish, answers new ones 503 or refuses them, and closes every connection', async () => {
    await start({ httpDrainTimeoutMs: 3000 });
    const agent = new HttpAgent({ keepAlive: true });
    h.defer(() => agent.destroy());
    const inflight = Array.from({ length: 5 }, (_, i) => call('/v1/call/echo.delayed', { json: { ms: 300, value: i }, agent }));
    // A request the AS had taken (it answered 100 Continue) but whose body came after stop() began.
    const raw = rawHttp();
    const late = post('/v1/call/1', { value: 'too late' }, { expect: '100-continue' });
    const split = late.indexOf('\r\n\r\n') + 4;
    raw.write(late.slice(0, split));
    expect((await raw.answers(1))[0].status).toBe(100);
    await waitFor(() => [...h.as.manager.entries()][0].inflight === 5, 'five requests at the FS');
    const stopped = h.as.stop();
    raw.write(late.slice(split));
    const [, refused] = await raw.answers(2);
    expect(refused.status).toBe(503);
    expect(refused.head).toMatch(/connection: close/i);
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'SB_ERR_STOPPING', status: 'UNAVAILABLE' });
    await expect(call('/v1/call/1', { json: {} })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    const answers = await Promise.all(inflight);
    expect(answers.map((r) => [r.status, r.json])).toEqual([0, 1, 2, 3, 4].map((i) => [200, i]));
    expect(answers.every((r) => r.headers.connection === 'close')).toBe(true);
    await stopped;
    await expect(call('/v1/call/1', { json: {} })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('stop() answers what is still in flight after httpDrainTimeoutMs with 503 SB_ERR_STOPPING', async () => {
    await start({ httpDrainTimeoutMs: 200 });
    const slow = call('/v1/call/echo.delayed', { json: { ms: 5000 } });
    await waitFor(() => [...h.as.manager.entries()][0].inflight === 1, 'the request at the FS');
    const t0 = performance.now();
    await h.as.stop();
    expect(performance.now() - t0).toBeLessThan(2000);
    const r = await slow;
    expect(r.status).toBe(503);
    expect(r.headers.connection).toBe('close');
    expect(r.json).toMatchObject({ code: 'SB_ERR_STOPPING', status: 'UNAVAILABLE' });
  });
});
