import 'reflect-metadata';
import { Agent as HttpAgent } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OFFSET, Plugin, Service, defineService, encodeResponse, isEvent, requestIdOf, serviceKeyOf, z, type ApplicationServerOptions, type BodyOf } from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { useHarness, waitFor, waitForAvailable } from '../fixtures/cluster.js';
import { handMadeFs } from '../fixtures/hand-made-fs.js';
import { httpCall, type HttpAnswer } from '../fixtures/http-call.js';

// Edges of the HTTP ingress that docs/http-ingress.md describes: what Node's HTTP parser refuses,
// Expect: 100-continue, charsets, statuses this version does not know, odd numbers.

const h = useHarness();
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});
const HOST = '127.0.0.1';
const SECRET = 'http-ingress-edges-secret-0123456789';

const RECORD = 5501;
const ODD_NUMBERS = 5502;
const recorded: unknown[] = [];
const strict = defineService({ key: 5503, name: 'edges.strict', request: z.strictObject({ a: z.number(), inner: z.strictObject({ b: z.number() }).optional() }) });
const loose = defineService({ key: 5504, name: 'edges.loose', request: z.object({ a: z.number() }) });

@Plugin({ name: 'http-edges-test' })
class EdgesPlugin {
  @Service(RECORD)
  record(body: unknown): unknown {
    recorded.push(body);
    return body;
  }

  @Service(strict)
  strict(body: BodyOf<typeof strict>): unknown {
    return body;
  }

  @Service(loose)
  loose(body: BodyOf<typeof loose>): unknown {
    return body;
  }

  @Service(ODD_NUMBERS)
  oddNumbers(): unknown {
    return { nan: Number.NaN, inf: Number.POSITIVE_INFINITY, ninf: Number.NEGATIVE_INFINITY, negzero: -0 };
  }
}

let httpPort = 0;

async function start(asOpts: ApplicationServerOptions = {}): Promise<void> {
  await h.cluster({ httpPort: 0, ...asOpts }, [{ name: 'fs-edges', plugins: [EchoPlugin, EdgesPlugin] }]);
  httpPort = h.as.ports.httpPort as number;
}

/** One POST with these exact body bytes and headers. */
function post(path: string, body: string | Buffer | undefined, headers: Record<string, string>, agent: HttpAgent | false = false): Promise<HttpAnswer> {
  return httpCall(httpPort, path, { raw: body, headers, agent });
}

/** Raw bytes on one connection: everything the server sends back, and whether it closed. */
function rawConn(): { socket: Socket; write: (b: string | Buffer) => void; text: () => string; closed: () => boolean; whenClosed: (ms?: number) => Promise<string> } {
  const socket = connect({ host: HOST, port: httpPort });
  h.defer(() => socket.destroy());
  socket.on('error', () => undefined);
  let data = '';
  let closed = false;
  socket.setEncoding('latin1');
  socket.on('data', (c: string) => (data += c));
  socket.on('close', () => (closed = true));
  return {
    socket,
    write: (b) => socket.write(b),
    text: () => data,
    closed: () => closed,
    whenClosed: async (ms = 3000) => {
      await waitFor(() => closed, 'the server to close the connection', ms);
      return data;
    },
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type RawAnswer = { status: number; head: string; body: any };

/** Status, head (lower-cased) and JSON body of the one answer in `text`. */
function parseAnswer(text: string): RawAnswer {
  const end = text.indexOf('\r\n\r\n');
  const head = text.slice(0, end);
  const body = text.slice(end + 4);
  return { status: Number(head.slice(9, 12)), head: head.toLowerCase(), body: body.length > 0 ? JSON.parse(body) : undefined };
}

/** Sends `bytes` on a new raw connection and parses the one answer written before the server closed it. */
async function answerThenClose(bytes: string): Promise<RawAnswer> {
  const c = rawConn();
  c.write(bytes);
  return parseAnswer(await c.whenClosed());
}

/** Sends `bytes` on a new raw connection and parses the first (JSON) answer; the connection stays for more. */
async function firstAnswer(bytes: string, what = 'the answer'): Promise<{ c: ReturnType<typeof rawConn>; a: RawAnswer }> {
  const c = rawConn();
  c.write(bytes);
  await waitFor(() => c.text().includes('}'), what);
  return { c, a: parseAnswer(c.text()) };
}

describe('HTTP ingress edges: a status this version does not know', () => {
  it('is 502 SB_ERR_UNKNOWN_STATUS with status SERVER_ERROR, whatever code and body the FS sent; the number and the FS message are in the message', async () => {
    await h.startAs({ httpPort: 0 });
    httpPort = h.as.ports.httpPort as number;
    const answers: Record<number, Buffer | undefined> = {
      900: Buffer.from(encodeResponse(0, 0, { code: 'SB_ERR_WHATEVER', message: 'from the future' }).subarray(24)),
      901: Buffer.from(encodeResponse(0, 0, { code: 'PLAIN', message: 'm' }).subarray(24)),
      902: undefined,
      903: Buffer.from([0xc1]), // not msgpack either
    };
    const fs = await handMadeFs({ name: 'future-fs', poolType: 0, services: Object.keys(answers).map((k) => ({ key: Number(k), idempotent: false })) }, (f, s) => {
      if (isEvent(f)) return;
      const body = answers[serviceKeyOf(f)] ?? Buffer.alloc(0);
      const head = encodeResponse(requestIdOf(f), 55, undefined, serviceKeyOf(f));
      head.writeUInt32BE(body.length, OFFSET.bodyLength);
      s.write(Buffer.concat([head, body]));
    });
    stops.push(() => fs.close());
    h.as.addFunctionServer({ host: HOST, port: fs.port });
    await waitForAvailable(h.as, 1);

    for (const key of [900, 901, 902, 903]) {
      const r = await post(`/v1/call/${key}`, '{}', { 'content-type': 'application/json' });
      expect([key, r.status]).toEqual([key, 502]);
      expect(r.json).toEqual({ code: 'SB_ERR_UNKNOWN_STATUS', status: 'SERVER_ERROR', message: expect.stringContaining('status 55') });
    }
    const kept = await post('/v1/call/900', '{}', { 'content-type': 'application/json' });
    expect(kept.json.message).toBe('the function server answered with status 55, which this application server does not know; upgrade the AS (the answer said "SB_ERR_WHATEVER: from the future")');
  });
});

describe('HTTP ingress edges: requests Node refuses before any route runs', () => {
  const CASES: [string, string, number, RegExp][] = [
    ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400, /not valid HTTP\/1\.1: Invalid method encountered \(HPE_INVALID_METHOD\)/],
    ['Content-Length with Transfer-Encoding', 'POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n"x"\r\n0\r\n\r\n', 400, /HPE_INVALID_TRANSFER_ENCODING/],
    ['a bad chunk size', 'POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n"x"\r\n0\r\n\r\n', 400, /HPE_INVALID_CHUNK_SIZE/],
    ['Content-Length -1', 'POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n"x"', 400, /HPE_INVALID_CONTENT_LENGTH/],
    ['the h2c preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400, /not HTTP\/2/],
    ['HTTP/1.1 without Host', 'POST /v1/call/1 HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n"x"', 400, /must carry a Host header/],
    ['headers of 16 KiB', `POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(16384)}\r\n\r\n`, 431, /the request headers are too large: .* 16384 bytes or more/],
  ];
  for (const [what, bytes, status, message] of CASES) {
    it(`${what}: ${status} with the ingress's JSON error body, then close`, async () => {
      await start();
      const a = await answerThenClose(bytes);
      expect(a.status).toBe(status);
      expect(a.head).toContain('connection: close');
      expect(a.head).toContain('content-type: application/json; charset=utf-8');
      expect(a.body).toEqual({ code: 'SB_ERR_BAD_REQUEST', status: 'BAD_REQUEST', message: expect.stringMatching(message) });
    });
  }

  it('HTTP/1.0 needs no Host; header lines beyond the first 1000 are dropped, not refused', async () => {
    await start();
    const old = rawConn();
    old.write('POST /v1/call/1 HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n"ok"');
    expect(parseAnswer(await old.whenClosed()).body).toBe('ok');
    // x-sb-one-way: true as line 1001 would answer 202; dropped, the call is two-way.
    const many = Array.from({ length: 999 }, (_, i) => `x-pad-${i}: v\r\n`).join('');
    const c = rawConn();
    c.write(`POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3\r\n${many}x-sb-one-way: true\r\n\r\n"m"`);
    await waitFor(() => c.text().includes('\r\n\r\n'), 'the answer');
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 /);
    await waitFor(() => c.text().endsWith('"m"'), 'the echoed body');
  });

  it('a request that does not arrive within 10 s gets 408 with the JSON body, then close', async () => {
    await start();
    const c = rawConn();
    c.write('POST /v1/call/1 HTTP/1.1\r\nHost: x\r\n');
    const t0 = performance.now();
    const a = parseAnswer(await c.whenClosed(15_000));
    expect(performance.now() - t0).toBeGreaterThan(9000);
    expect(a.status).toBe(408);
    expect(a.head).toContain('connection: close');
    expect(a.body).toEqual({ code: 'SB_ERR_BAD_REQUEST', status: 'BAD_REQUEST', message: expect.stringContaining('did not arrive in time') });
  }, 20_000);

  it('bytes that do not parse behind whole pipelined requests: those requests are answered, in order, then the connection closes with no answer for the bytes', async () => {
    await start();
    const c = rawConn();
    const call = (ms: number, value: number): string => {
      const body = JSON.stringify({ ms, value });
      return `POST /v1/call/echo.delayed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    };
    c.write(`${call(300, 1)}${call(0, 2)}GARBAGE\r\n\r\n`);
    const text = await c.whenClosed();
    const answers = text.split('HTTP/1.1 ').slice(1);
    expect(answers.map((a) => a.slice(0, 3))).toEqual(['200', '200']);
    expect(answers[0].endsWith('1')).toBe(true);
    expect(answers[1].endsWith('2')).toBe(true);
  });
});

describe('HTTP ingress edges: routes', () => {
  it('GET /v1/call/ (no service) is 405 with Allow: POST, as for any service; POST /v1/call/ is 404 SB_ERR_SERVICE_NOT_FOUND', async () => {
    await start();
    const { a: get } = await firstAnswer('GET /v1/call/ HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(get.status).toBe(405);
    expect(get.head).toContain('allow: post');
    expect(get.body).toMatchObject({ code: 'SB_ERR_METHOD', status: 'BAD_REQUEST' });
    const none = await post('/v1/call/', '{}', { 'content-type': 'application/json' });
    expect(none.status).toBe(404);
    expect(none.json).toEqual({ code: 'SB_ERR_SERVICE_NOT_FOUND', status: 'SERVICE_NOT_FOUND', message: 'the URL names no service; give a service key or name after /v1/call/' });
  });
});

describe('HTTP ingress edges: what Node would take or leave unanswered', () => {
  const REFUSED: [string, string, number, string, RegExp][] = [
    ['a request line with no version (HTTP/0.9 style)', 'POST /v1/call/1\r\n\r\n', 400, 'SB_ERR_BAD_REQUEST', /speaks HTTP\/1\.1 \(and 1\.0\), not HTTP\/0\.9/],
    ['HTTP/2.0 on an HTTP/1.1 request line', 'POST /v1/call/1 HTTP/2.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}', 400, 'SB_ERR_BAD_REQUEST', /not HTTP\/2\.0/],
    ['two Host headers', 'POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}', 400, 'SB_ERR_BAD_REQUEST', /the Host header is sent more than once/],
    ['two Content-Type headers', 'POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}', 400, 'SB_ERR_BAD_REQUEST', /the Content-Type header is sent more than once/],
    ['a Content-Encoding', 'POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}', 415, 'SB_ERR_MEDIA_TYPE', /without a content coding \(got Content-Encoding: gzip\)/],
    ['CONNECT', 'CONNECT /v1/call/1 HTTP/1.1\r\nHost: x\r\n\r\n', 405, 'SB_ERR_METHOD', /CONNECT is not supported/],
  ];
  for (const [what, bytes, status, code, message] of REFUSED) {
    it(`${what}: ${status} ${code} with the JSON error body, then close`, async () => {
      await start();
      const a = await answerThenClose(bytes);
      expect(a.status).toBe(status);
      expect(a.head).toContain('connection: close');
      expect(a.body).toEqual({ code, status: 'BAD_REQUEST', message: expect.stringMatching(message) });
    });
  }

  it('an Expect other than 100-continue is 417 SB_ERR_BAD_HEADER with the JSON body; the connection goes on', async () => {
    await start();
    const { c, a } = await firstAnswer('POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: something\r\nContent-Length: 4\r\n\r\n"no"', 'the 417');
    expect(a.status).toBe(417);
    expect(a.body).toEqual({ code: 'SB_ERR_BAD_HEADER', status: 'BAD_REQUEST', message: expect.stringContaining('Expect: something is not supported') });
    const before = c.text().length;
    c.write('POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n"yes"');
    await waitFor(() => c.text().endsWith('"yes"'), 'the next answer on the same connection');
    expect(c.text().slice(before)).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('leading zeros do not change a key: 00000000001 is key 1', async () => {
    await start();
    const r = await post('/v1/call/00000000001', '"zeros"', { 'content-type': 'application/json' });
    expect(r.status).toBe(200);
    expect(r.json).toBe('zeros');
  });

  it('a connection that sends only empty lines after its answer is closed at httpKeepAliveTimeoutMs all the same', async () => {
    await start({ httpKeepAliveTimeoutMs: 1500 });
    const c = rawConn();
    c.write('POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n"hi"');
    await waitFor(() => c.text().endsWith('"hi"'), 'the answer');
    // Each byte restarts Node's own keep-alive timer; the ingress counts only requests.
    const drip = setInterval(() => c.write('\r\n'), 200);
    h.defer(() => clearInterval(drip));
    const t0 = performance.now();
    await c.whenClosed(6000);
    clearInterval(drip);
    expect(performance.now() - t0).toBeGreaterThan(1200);
  });
});

describe('HTTP ingress edges: charset and UTF-8', () => {
  it('a charset other than utf-8 is 415 SB_ERR_MEDIA_TYPE; utf-8 in any case, quoted or not, is served', async () => {
    await start();
    for (const charset of ['iso-8859-1', 'utf-16le', '"latin1"', 'utf8']) {
      const r = await post('/v1/call/1', Buffer.from([0x22, 0xe9, 0x22]), { 'content-type': `application/json; charset=${charset}` });
      expect([charset, r.status]).toEqual([charset, 415]);
      expect(r.json).toMatchObject({ code: 'SB_ERR_MEDIA_TYPE', status: 'BAD_REQUEST' });
      expect(r.json.message).toContain(`got charset ${charset.replaceAll('"', '')}`);
    }
    const noBody = await post('/v1/call/1', undefined, { 'content-type': 'application/json; charset=iso-8859-1' });
    expect(noBody.status).toBe(415);
    // Refused before the body is read; Node reads it away, and the connection carries the next request.
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    h.defer(() => agent.destroy());
    const first = await post('/v1/call/1', `"${'x'.repeat(100_000)}"`, { 'content-type': 'application/json; charset=latin1' }, agent);
    expect([first.status, first.headers.connection]).toEqual([415, 'keep-alive']);
    const next = await post('/v1/call/1', '"next"', { 'content-type': 'application/json' }, agent);
    expect([next.status, next.json, next.reused]).toEqual([200, 'next', true]);
    for (const type of ['application/json; charset=utf-8', 'application/json;charset=UTF-8', 'application/json; Charset="Utf-8"', 'application/json']) {
      const r = await post('/v1/call/1', '"é"', { 'content-type': type });
      expect([type, r.status, r.json]).toEqual([type, 200, 'é']);
    }
  });

  it('a body that is not valid UTF-8 is 400 SB_ERR_BAD_JSON, not read with U+FFFD; the connection stays open', async () => {
    await start();
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    h.defer(() => agent.destroy());
    recorded.length = 0;
    const bad = await post(`/v1/call/${RECORD}`, Buffer.from([0x22, 0xe9, 0x22]), { 'content-type': 'application/json' }, agent);
    expect(bad.status).toBe(400);
    expect(bad.json).toEqual({ code: 'SB_ERR_BAD_JSON', status: 'BAD_REQUEST', message: 'the body is not valid JSON: it is not valid UTF-8; send JSON text encoded as UTF-8' });
    const after = await post(`/v1/call/${RECORD}`, '"ok"', { 'content-type': 'application/json' }, agent);
    expect([after.status, after.json, after.reused]).toEqual([200, 'ok', true]);
    expect(recorded).toEqual(['ok']);
  });
});

describe('HTTP ingress edges: Expect: 100-continue', () => {
  const LIMIT = 64 * 1024;
  const head = (length: number, extra = ''): string =>
    `POST /v1/call/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${length}\r\n${extra}\r\n`;

  it('a Content-Length over maxBodyBytes is 413 with no 100 Continue, and the connection closes', async () => {
    await start({ maxBodyBytes: LIMIT });
    const c = rawConn();
    c.write(head(LIMIT + 1));
    const text = await c.whenClosed();
    expect(text).not.toContain('100 Continue');
    const a = parseAnswer(text);
    expect(a.status).toBe(413);
    expect(a.body).toMatchObject({ code: 'SB_ERR_FRAME_TOO_LARGE', status: 'BAD_REQUEST' });
  });

  it('a body that would be taken gets 100 Continue first, then its answer', async () => {
    await start({ maxBodyBytes: LIMIT });
    const c = rawConn();
    c.write(head(4));
    await waitFor(() => c.text().length > 0, '100 Continue');
    expect(c.text()).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    c.write('"go"');
    await waitFor(() => c.text().endsWith('"go"'), 'the answer');
    expect(c.text().slice('HTTP/1.1 100 Continue\r\n\r\n'.length)).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('a refusal made before the body is read (a wrong secret, a charset, a Content-Type other than JSON or none) comes with no 100 Continue', async () => {
    await start({ clientSecret: SECRET });
    const auth = rawConn();
    auth.write(head(4, 'Authorization: Bearer wrong\r\n'));
    const refused = await auth.whenClosed();
    expect(refused).not.toContain('100 Continue');
    expect(parseAnswer(refused)).toMatchObject({ status: 401, body: { code: 'SB_ERR_AUTH_FAILED' } });
    const latin = rawConn();
    latin.write(head(4, `Authorization: Bearer ${SECRET}\r\n`).replace('application/json', 'application/json; charset=iso-8859-1'));
    const refused2 = await latin.whenClosed();
    expect(refused2).not.toContain('100 Continue');
    expect(parseAnswer(refused2)).toMatchObject({ status: 415, body: { code: 'SB_ERR_MEDIA_TYPE' } });
    for (const type of ['Content-Type: text/plain\r\n', '']) {
      const wrong = rawConn();
      wrong.write(head(4, `Authorization: Bearer ${SECRET}\r\n`).replace('Content-Type: application/json\r\n', type));
      const refused3 = await wrong.whenClosed();
      expect(refused3).not.toContain('100 Continue');
      expect(parseAnswer(refused3)).toMatchObject({ status: 415, body: { code: 'SB_ERR_MEDIA_TYPE' } });
    }
  });
});

describe('HTTP ingress edges: numbers JSON lacks', () => {
  it('a request number beyond a double (1e400) reaches the handler as Infinity; NaN and ±Infinity in an answer are written null, -0 as 0', async () => {
    await start();
    recorded.length = 0;
    const r = await post(`/v1/call/${RECORD}`, '[1e400, -1e400]', { 'content-type': 'application/json' });
    expect(recorded).toEqual([[Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]]);
    expect(r.text).toBe('[null,null]');
    const odd = await post(`/v1/call/${ODD_NUMBERS}`, undefined, {});
    expect(odd.text).toBe('{"nan":null,"inf":null,"ninf":null,"negzero":0}');
  });
});

describe('HTTP ingress edges: validation issues (docs/plugins.md, section 1)', () => {
  it('a whole-body failure and an unknown key on a top-level z.strictObject have the path (body); z.object drops extra keys', async () => {
    await start();
    const issues = async (body: string | undefined): Promise<unknown> => (await post('/v1/call/edges.strict', body, { 'content-type': 'application/json' })).json.issues;
    expect(await issues('"a string"')).toEqual([{ path: '(body)', message: 'Invalid input: expected object, received string' }]);
    expect(await issues(undefined)).toEqual([{ path: '(body)', message: 'Invalid input: expected object, received undefined' }]);
    expect(await issues('{"a":1,"extra":2,"more":3}')).toEqual([{ path: '(body)', message: 'Unrecognized keys: "extra", "more"' }]);
    expect(await issues('{"a":1,"inner":{"b":1,"x":1}}')).toEqual([{ path: 'inner', message: 'Unrecognized key: "x"' }]);
    const dropped = await post('/v1/call/edges.loose', '{"a":1,"extra":2}', { 'content-type': 'application/json' });
    expect([dropped.status, dropped.json]).toEqual([200, { a: 1 }]);
  });
});
