import { readFileSync } from 'node:fs';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminServer, ApplicationServer, silentLogger, type AdminServerOptions, type FunctionServerInfo } from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { NEVER_ANSWERS, WHO_AM_I, FaultyPlugin, WhoAmIPlugin } from '../fixtures/test-plugins.js';
import { useHarness, waitFor, waitForAvailable, waitForRegistry } from '../fixtures/cluster.js';
import { HOST, startPair, startPairFs, Counts, usePairCleanup } from '../fixtures/pair-cluster.js';
import { GATED, gatedPlugin } from '../resilience/plugins.js';

/*
 * Every admin route against a real AS and real FSs: the happy path with its effect seen through the
 * API and through traffic, HEAD and query strings, each 4xx with its code, and never a 500.
 */

const h = useHarness();
const pairs = usePairCleanup();
const TOKEN = 'admin-routes-token-0123456789abcdef';
const ERRORS_DOC = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

interface Res {
  status: number;
  headers: Headers;
  text: string;
  body: { code?: string; message?: string; [k: string]: unknown } & Record<string, unknown>;
}

/** Every answer of the file, checked after each test: no 5xx but the two deliberate 503s, and every code documented. */
const answers: { method: string; path: string; res: Res }[] = [];
afterEach(() => {
  const bad = answers.splice(0).filter(({ path, res }) => (res.status >= 500 && !(res.status === 503 && /^\/(readyz|events)/.test(path))) || (res.body.code !== undefined && !ERRORS_DOC.includes(`\`${res.body.code}\``)));
  expect(bad.map(({ method, path, res }) => `${method} ${path} -> ${res.status} ${res.text.slice(0, 120)}`)).toEqual([]);
});

async function startAdmin(opts: AdminServerOptions = {}, as: ApplicationServer = h.as, defer: (f: () => unknown) => void = (f) => h.defer(f)): Promise<{ admin: AdminServer; port: number }> {
  const admin = new AdminServer(as, silentLogger, { token: TOKEN, ...opts });
  const port = await admin.listen(0, HOST);
  defer(() => admin.close());
  return { admin, port };
}

interface CallOptions {
  token?: string | null;
  body?: unknown;
  /** A raw body with its content type. */
  raw?: [string, string];
  headers?: Record<string, string>;
}

async function call(port: number, method: string, path: string, o: CallOptions = {}): Promise<Res> {
  const headers: Record<string, string> = { ...o.headers };
  const token = o.token === undefined ? TOKEN : o.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (o.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(o.body);
  } else if (o.raw) {
    headers['content-type'] = o.raw[0];
    body = o.raw[1];
  }
  const r = await fetch(`http://${HOST}:${port}${path}`, { method, headers, body, signal: AbortSignal.timeout(5000) });
  const text = await r.text();
  let parsed: Res['body'] = {};
  if (/json/.test(r.headers.get('content-type') ?? '') && text !== '') parsed = JSON.parse(text) as Res['body'];
  const res = { status: r.status, headers: r.headers, text, body: parsed };
  answers.push({ method, path, res });
  return res;
}

const info = (id: string): FunctionServerInfo | undefined => h.as.listFunctionServers().find((f) => f.id === id);

interface SseEvent {
  type: string;
  data: Record<string, unknown>;
}

/** A Server-Sent Events reader on a raw http request: events in order, and how the stream ended. */
class Sse {
  readonly events: SseEvent[] = [];
  status = 0;
  body = '';
  bytes = 0;
  ended: 'end' | 'error' | undefined;
  #buf = '';
  #req!: ClientRequest;
  #wake = new Set<() => void>();

  static open(port: number, token: string | null = TOKEN): Promise<Sse> {
    const s = new Sse();
    h.defer(() => s.close());
    return new Promise((resolve, reject) => {
      s.#req = request({ host: HOST, port, path: '/events', headers: token === null ? {} : { authorization: `Bearer ${token}` } }, (res: IncomingMessage) => {
        s.status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => s.#take(chunk));
        res.on('end', () => s.#end('end'));
        res.on('error', () => s.#end('error'));
        res.on('aborted', () => s.#end('error'));
        resolve(s);
      });
      s.#req.on('error', (err) => {
        s.#end('error');
        reject(err);
      });
      s.#req.end();
    });
  }

  /** The first event at or after index `from` that satisfies `pred`. */
  next(pred: (e: SseEvent) => boolean, what: string, from = 0, timeoutMs = 3000): Promise<SseEvent> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const e = this.events.slice(from).find(pred);
        if (!e) return;
        done();
        resolve(e);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for the event ${what} (got: ${this.events.slice(from).map((e) => e.type).join(', ') || 'none'})`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#wake.delete(check);
      };
      this.#wake.add(check);
      check();
    });
  }

  whenEnded(timeoutMs = 3000): Promise<'end' | 'error'> {
    return waitFor(() => this.ended !== undefined, 'the event stream to end', timeoutMs).then(() => this.ended as 'end' | 'error');
  }

  close(): void {
    this.#req.destroy();
  }

  #take(chunk: string): void {
    this.bytes += chunk.length;
    if (this.status !== 200) {
      this.body += chunk;
      return;
    }
    this.#buf += chunk;
    let end: number;
    while ((end = this.#buf.indexOf('\n\n')) >= 0) {
      const block = this.#buf.slice(0, end);
      this.#buf = this.#buf.slice(end + 2);
      let type = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) type = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data !== '') this.events.push({ type, data: JSON.parse(data) as Record<string, unknown> });
    }
    for (const w of [...this.#wake]) w();
  }

  #end(how: 'end' | 'error'): void {
    this.ended ??= how;
    for (const w of [...this.#wake]) w();
  }
}

describe('read routes', () => {
  it('answer GET and HEAD, with and without a query string; only /healthz, /readyz and the dashboard files are open without the token', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const { port, admin } = await startAdmin();
    const reads: [string, number, RegExp][] = [
      ['/healthz', 200, /json/],
      ['/readyz', 200, /json/],
      ['/functionservers', 200, /json/],
      ['/functionservers/fs-a', 200, /json/],
      ['/metrics', 200, /text\/plain/],
      ['/pair', 404, /json/],
      ['/', 200, /text\/html/],
      ['/dashboard.js', 200, /javascript/],
      ['/dashboard.css', 200, /text\/css/],
    ];
    for (const [path, status, type] of reads) {
      for (const p of [path, `${path}?a=1&b=%20x&c`]) {
        const get = await call(port, 'GET', p);
        expect(get.status, `GET ${p}`).toBe(status);
        expect(get.headers.get('content-type'), `GET ${p}`).toMatch(type);
        expect(get.text.length, `GET ${p}`).toBeGreaterThan(0);
        const head = await call(port, 'HEAD', p);
        expect(head.status, `HEAD ${p}`).toBe(status);
        expect(head.headers.get('content-type'), `HEAD ${p}`).toMatch(type);
        expect(head.text, `HEAD ${p}`).toBe('');
      }
    }
    // HEAD /events answers the headers and ends: it holds no stream.
    const head = await call(port, 'HEAD', '/events?x=1');
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toMatch(/text\/event-stream/);
    expect(admin.eventStreams).toBe(0);

    const open = new Set(['/healthz', '/readyz', '/', '/dashboard.js', '/dashboard.css']);
    for (const [path] of [...reads, ['/events']]) {
      for (const p of [path, `${path}?token=${TOKEN}`]) {
        const res = await call(port, 'GET', p, { token: null });
        if (open.has(path)) expect(res.status, p).toBe(200);
        else {
          expect(res.status, p).toBe(401);
          expect(res.body.code).toBe('SB_ERR_AUTH_REQUIRED');
          expect(res.headers.get('www-authenticate')).toBe('Bearer');
        }
      }
    }
    expect(admin.eventStreams).toBe(0);
  });

  it('GET /functionservers/:id shows state, endpoint, pool type, tier, service keys, connections, in flight, served, failures and the last load with its age', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    h.defer(() => open());
    const [a] = await h.cluster({ poolSize: 2, loadRefreshMs: 200, outlier: { minTimeoutMs: 100 } }, [
      { name: 'fs-a', poolType: 7, refreshMs: 200, plugins: [EchoPlugin, WhoAmIPlugin, FaultyPlugin, gatedPlugin(gate)] },
      { name: 'fs-b', poolType: 7, standby: true },
    ]);
    const { port } = await startAdmin();
    const client = await h.client();
    for (let i = 0; i < 5; i++) await client.call(WHO_AM_I, null, { poolType: 7 });
    await expect(client.call(NEVER_ANSWERS, null)).rejects.toMatchObject({ code: 'SB_ERR_TIMEOUT' });
    const held = Array.from({ length: 3 }, (_, i) => client.call(GATED, { value: i }).catch((err: Error) => err.message));
    await waitFor(() => info('fs-a')?.inflight === 3, 'three calls held on fs-a');
    await waitFor(() => info('fs-a')?.load !== undefined, 'a load report from fs-a');

    const { status, body } = await call(port, 'GET', '/functionservers/fs-a');
    expect(status).toBe(200);
    expect(body).toMatchObject({
      id: 'fs-a',
      name: 'fs-a',
      host: HOST,
      port: a.address().port,
      poolType: 7,
      standby: false,
      state: 'available',
      source: 'hello',
      inflight: 3,
      served: 5,
      failures: 1,
      connections: { open: 2, expected: 2 },
      load: { cpu: 0.1, elu: 0.1, rssBytes: 50e6 },
      loadScore: 0.1,
    });
    expect(body.serviceKeys).toEqual(expect.arrayContaining([1, WHO_AM_I, NEVER_ANSWERS, GATED]));
    expect(body.loadAgeMs).toBeGreaterThanOrEqual(0);
    expect(body.loadAgeMs).toBeLessThan(2000);
    const b = await call(port, 'GET', '/functionservers/fs-b');
    expect(b.body).toMatchObject({ id: 'fs-b', standby: true, state: 'available', served: 0, inflight: 0 });
    const list = await call(port, 'GET', '/functionservers');
    expect((list.body as unknown as FunctionServerInfo[]).map((f) => f.id).sort()).toEqual(['fs-a', 'fs-b']);

    open();
    expect(await Promise.all(held)).toEqual([0, 1, 2]);
    await waitFor(() => info('fs-a')?.inflight === 0, 'the held calls to be answered');
    expect((await call(port, 'GET', '/functionservers/fs-a')).body).toMatchObject({ inflight: 0, served: 8 });
  });

  it('/healthz counts FSs and clients; /metrics is Prometheus text', async () => {
    await h.cluster({}, [{ name: 'fs-a' }, { name: 'fs-b' }]);
    const { port } = await startAdmin();
    await h.client();
    await waitFor(() => h.as.clientConnections === 1, 'the client connection');
    expect((await call(port, 'GET', '/healthz', { token: null })).body).toEqual({ ok: true, functionServers: 2, clients: 1 });
    const m = await call(port, 'GET', '/metrics?name[]=x');
    expect(m.text).toContain('switchboard_fs_state{fs="fs-b",state="available"} 1');
  });
});

describe('/readyz', () => {
  it('is 503 with the reason while the AS is not listening, has no FS available, or is saturated; 200 otherwise', async () => {
    const idle = new ApplicationServer({});
    h.defer(() => idle.stop());
    const before = await startAdmin({}, idle);
    expect((await call(before.port, 'GET', '/readyz', { token: null })).body).toEqual({ ready: false, reason: 'not listening' });

    const as = await h.startAs({ maxConnections: 1, reconnectBaseMs: 50 });
    const { port } = await startAdmin();
    const ready = (): Promise<Res> => call(port, 'GET', '/readyz?probe=k8s', { token: null });
    expect(await ready()).toMatchObject({ status: 503, body: { ready: false, reason: 'no function server available' } });
    // An FS that is known but never answers does not make the AS ready.
    h.as.addFunctionServer({ host: HOST, port: 1 });
    expect((await ready()).body).toMatchObject({ reason: 'no function server available' });
    await h.startFs({ name: 'fs-a' });
    await waitForAvailable(as, 1);
    expect(await ready()).toMatchObject({ status: 200, body: { ready: true } });
    const head = await call(port, 'HEAD', '/readyz', { token: null });
    expect([head.status, head.text]).toEqual([200, '']);

    expect((await call(port, 'POST', '/functionservers/fs-a/drain')).status).toBe(200);
    expect(await ready()).toMatchObject({ status: 503, body: { reason: 'no function server available' } });
    expect((await call(port, 'HEAD', '/readyz', { token: null })).status).toBe(503);
    expect((await call(port, 'POST', '/functionservers/fs-a/undrain')).status).toBe(200);
    expect((await ready()).status).toBe(200);

    const client = await h.client();
    await waitFor(() => as.clientConnections === 1, 'the client connection');
    expect(await ready()).toMatchObject({ status: 503, body: { reason: 'saturated: at maxConnections' } });
    await client.close();
    await waitFor(() => as.clientConnections === 0, 'the client to leave');
    expect((await ready()).status).toBe(200);
  });

  it('is 503 on the standby of a pair; /events tells of the role changes when an operator swaps them', async () => {
    const { a, b } = await startPair(pairs);
    await startPairFs(pairs, 'fs-p', [a, b], new Counts());
    await Promise.all([waitForAvailable(a, 1), waitForAvailable(b, 1)]);
    const defer = (f: () => unknown): void => pairs.defer(f);
    const [adminA, adminB] = await Promise.all([startAdmin({}, a, defer), startAdmin({}, b, defer)]);
    expect((await call(adminA.port, 'GET', '/readyz')).status).toBe(200);
    expect((await call(adminB.port, 'GET', '/readyz')).body).toEqual({ ready: false, reason: 'not the active of its pair' });

    const sse = await Sse.open(adminB.port);
    await sse.next((e) => e.type === 'hello', 'hello');
    expect(sse.events[0].data).toMatchObject({ role: 'standby' });
    expect((await call(adminB.port, 'POST', '/pair/designate', { body: { role: 'active' } })).status).toBe(200);
    const role = await sse.next((e) => e.type === 'role', 'role');
    expect(role.data).toMatchObject({ from: 'standby', to: 'active' });
    await waitFor(() => a.role === 'standby', 'a to step down');
    expect((await call(adminB.port, 'GET', '/readyz')).status).toBe(200);
    expect((await call(adminA.port, 'GET', '/readyz')).body).toEqual({ ready: false, reason: 'not the active of its pair' });
    sse.close();
  });
});

describe('write routes: the effect, through the API and through traffic', () => {
  it('drain: no new request reaches the FS while its in-flight ones finish; undrain takes it back', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    h.defer(() => open());
    const [a] = await h.cluster({}, [{ name: 'fs-a', plugins: [EchoPlugin, WhoAmIPlugin, gatedPlugin(gate)] }, { name: 'fs-b' }]);
    const { port } = await startAdmin();
    const client = await h.client();
    const held = Array.from({ length: 4 }, (_, i) => client.call(GATED, { value: i }, { timeoutMs: 5000 }).catch((err: Error) => err.message));
    await waitFor(() => a.inflight === 4, 'four calls held on fs-a');

    const drained = await call(port, 'POST', '/functionservers/fs-a/drain');
    expect(drained.status).toBe(200);
    expect(drained.body).toMatchObject({ id: 'fs-a', state: 'draining', inflight: 4 });
    const after = await Promise.all(Array.from({ length: 30 }, () => client.call(WHO_AM_I)));
    expect(new Set(after)).toEqual(new Set(['fs-b']));
    expect(a.inflight).toBe(4);
    open();
    expect(await Promise.all(held)).toEqual([0, 1, 2, 3]);
    // Drained, not gone: the entry and its connection stay for the operator to take back.
    expect((await call(port, 'GET', '/functionservers/fs-a')).body).toMatchObject({ state: 'draining', inflight: 0, connections: { open: 1 } });
    // Draining twice is still draining.
    expect((await call(port, 'POST', '/functionservers/fs-a/drain')).body).toMatchObject({ state: 'draining' });

    const undrained = await call(port, 'POST', '/functionservers/fs-a/undrain');
    expect(undrained.body).toMatchObject({ id: 'fs-a', state: 'available' });
    const back = await Promise.all(Array.from({ length: 40 }, () => client.call(WHO_AM_I)));
    expect(new Set(back)).toEqual(new Set(['fs-a', 'fs-b']));
  });

  it('dispose: the pool connections close, the entry stays, and probing brings it back', async () => {
    const [a] = await h.cluster({ poolSize: 2 }, [{ name: 'fs-a' }]);
    const { port } = await startAdmin();
    const seen: [number, string][] = [];
    h.as.on('fs-connections', (i) => seen.push([i.connections.open, i.state]));
    const res = await call(port, 'POST', '/functionservers/fs-a/dispose');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: 'fs-a' });
    await waitFor(() => seen.some(([n]) => n === 0), 'both pool connections to close');
    expect((await call(port, 'GET', '/functionservers/fs-a')).status).toBe(200);
    await waitForRegistry(h.as, (l) => l[0]?.state === 'available' && l[0].connections.open === 2, 'fs-a to come back with two connections', 3000);
    expect(seen.find(([n]) => n === 0)).toEqual([0, 'unavailable']);
    await waitFor(() => a.connectionCount === 2, 'fs-a to hold the two new connections only');
    const client = await h.client();
    expect(await client.call(WHO_AM_I)).toBe('fs-a');
    expect((await call(port, 'GET', '/functionservers')).body).toHaveLength(1);
  });

  it('reconnect: dials at once, however long the backoff still to wait', async () => {
    await h.startAs({ reconnectBaseMs: 60_000, reconnectCapMs: 60_000 });
    const { port } = await startAdmin();
    const first = await h.startFs({ name: 'fs-r', register: false });
    const fsPort = first.address().port;
    expect((await call(port, 'POST', '/functionservers', { body: { host: HOST, port: fsPort } })).status).toBe(201);
    const id = `${HOST}:${fsPort}`;
    await waitForRegistry(h.as, (l) => l[0]?.state === 'available', 'the added FS to be available');
    await first.stop();
    await waitForRegistry(h.as, (l) => l[0]?.state === 'unavailable', 'the stopped FS to be unavailable');
    // Back on the same port: the AS's next dial is 30 to 60 s away, so only reconnect can explain one now.
    const second = await h.startFs({ name: 'fs-r', register: false, port: fsPort });
    await new Promise((r) => setTimeout(r, 300));
    expect(info(id)?.state).toBe('unavailable');
    expect(second.connectionCount).toBe(0);

    const res = await call(port, 'POST', `/functionservers/${encodeURIComponent(id)}/reconnect`);
    expect(res.status).toBe(200);
    await waitForRegistry(h.as, (l) => l[0]?.state === 'available', 'the FS to be available after reconnect', 2000);
    expect(second.connectionCount).toBe(1);
    const client = await h.client();
    expect(await client.call(WHO_AM_I)).toBe('fs-r');
  });

  it('add: the AS dials an FS that never said HELLO, learns its services and routes to it; a second add of the id or endpoint is 409', async () => {
    await h.startAs({});
    const { port } = await startAdmin();
    const fs = await h.startFs({ name: 'fs-m', register: false, poolType: 3 });
    const fsPort = fs.address().port;
    const added = await call(port, 'POST', '/functionservers', { body: { host: HOST, port: fsPort, name: 'manual-1', standby: false } });
    expect(added.status).toBe(201);
    expect(added.body).toMatchObject({ id: 'manual-1', host: HOST, port: fsPort, source: 'manual', state: 'connecting' });
    await waitForRegistry(h.as, (l) => l[0]?.state === 'available', 'the added FS to be available');
    // Its own DESCRIBE answer names it and gives its pool type and keys.
    expect((await call(port, 'GET', '/functionservers/manual-1')).body).toMatchObject({ name: 'fs-m', poolType: 3, serviceKeys: expect.arrayContaining([1, WHO_AM_I]) });
    const client = await h.client();
    expect(await client.call(WHO_AM_I, null, { poolType: 3 })).toBe('fs-m');

    for (const body of [{ host: HOST, port: fsPort, name: 'manual-1' }, { host: HOST, port: fsPort }]) {
      const again = await call(port, 'POST', '/functionservers', { body });
      expect(again.status, JSON.stringify(body)).toBe(409);
      expect(again.body.code).toBe('SB_ERR_CONFLICT');
    }
    expect(h.as.listFunctionServers()).toHaveLength(1);
  });

  it('remove: the FS is gone from the API and every request goes elsewhere', async () => {
    await h.cluster({}, [{ name: 'fs-a' }, { name: 'fs-b' }]);
    const { port } = await startAdmin();
    const client = await h.client();
    expect(new Set(await Promise.all(Array.from({ length: 40 }, () => client.call(WHO_AM_I))))).toEqual(new Set(['fs-a', 'fs-b']));
    const res = await call(port, 'DELETE', '/functionservers/fs-a');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: 'fs-a', removed: true });
    expect((await call(port, 'GET', '/functionservers/fs-a')).status).toBe(404);
    expect((await call(port, 'GET', '/functionservers')).body).toMatchObject([{ id: 'fs-b' }]);
    expect(new Set(await Promise.all(Array.from({ length: 40 }, () => client.call(WHO_AM_I))))).toEqual(new Set(['fs-b']));
    expect((await call(port, 'DELETE', '/functionservers/fs-a')).status).toBe(404);
  });
});

describe('refusals: each its own 4xx with a documented code, never a 500', () => {
  it('every write route is 401 without the token or with a wrong one, and does nothing', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const { port } = await startAdmin();
    const writes: [string, string, unknown?][] = [
      ['POST', '/functionservers', { host: HOST, port: 1 }],
      ['DELETE', '/functionservers/fs-a'],
      ['POST', '/functionservers/fs-a/dispose'],
      ['POST', '/functionservers/fs-a/reconnect'],
      ['POST', '/functionservers/fs-a/drain'],
      ['POST', '/functionservers/fs-a/undrain'],
      ['POST', '/pair/designate', { role: 'standby' }],
    ];
    const seen: string[] = [];
    h.as.on('fs-connections', () => seen.push('connections')).on('fs-state', () => seen.push('state')).on('fs-left', () => seen.push('left'));
    for (const [method, path, body] of writes) {
      for (const token of [null, 'wrong-token-0123456789abcdef012345', `${TOKEN}x`, TOKEN.slice(0, -1), '']) {
        const res = await call(port, method, path, { token, body });
        expect(res.status, `${method} ${path} with ${JSON.stringify(token)}`).toBe(401);
        expect(res.body.code).toBe('SB_ERR_AUTH_REQUIRED');
        expect(res.headers.get('www-authenticate')).toBe('Bearer');
      }
    }
    expect(seen).toEqual([]);
    expect(h.as.listFunctionServers().map((f) => [f.id, f.state, f.connections.open])).toEqual([['fs-a', 'available', 1]]);
  });

  it('a bad id is 404, a bad body 400 (413, 415), a wrong method 405 with Allow, an unknown path 404', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const { port } = await startAdmin();
    const expectErr = async (method: string, path: string, status: number, code: string, o: CallOptions = {}): Promise<Res> => {
      const res = await call(port, method, path, o);
      expect([res.status, res.body.code], `${method} ${path.slice(0, 60)} ${JSON.stringify(o.body ?? o.raw ?? '').slice(0, 60)}`).toEqual([status, code]);
      expect(res.body.message).toEqual(expect.any(String));
      return res;
    };
    // Bad ids.
    for (const id of ['nope', 'fs-a%20', 'a%2Fb', 'x'.repeat(299), 'x'.repeat(301), 'x'.repeat(5000), '%C3%A9t%C3%A9']) {
      await expectErr('GET', `/functionservers/${id}`, 404, 'SB_ERR_NOT_FOUND');
      await expectErr('DELETE', `/functionservers/${id}`, 404, 'SB_ERR_NOT_FOUND');
      for (const action of ['dispose', 'reconnect', 'drain', 'undrain']) await expectErr('POST', `/functionservers/${id}/${action}`, 404, 'SB_ERR_NOT_FOUND');
    }
    await expectErr('GET', '/functionservers/%E0%A4%A', 400, 'SB_ERR_BAD_REQUEST');

    // Bad bodies.
    const bad: [unknown, string][] = [
      [{}, 'no host, no port'],
      [{ host: HOST }, 'no port'],
      [{ host: HOST, port: 0 }, 'port 0'],
      [{ host: HOST, port: 65536 }, 'port too big'],
      [{ host: HOST, port: 1.5 }, 'port not an integer'],
      [{ host: '', port: 1 }, 'empty host'],
      [{ host: 'a b', port: 1 }, 'space in host'],
      [{ host: 'x'.repeat(254), port: 1 }, 'host too long'],
      [{ host: HOST, port: 1, poolType: -1 }, 'negative pool type'],
      [{ host: HOST, port: 1, poolType: 70000 }, 'pool type too big'],
      [{ host: HOST, port: 1, standby: 'maybe' }, 'standby not a boolean'],
      [{ host: HOST, port: 1, name: '' }, 'empty name'],
      [{ host: HOST, port: 1, pooltype: 3 }, 'a misspelt field'],
      [[HOST, 1], 'an array'],
      ['127.0.0.1:1', 'a string'],
      [null, 'null'],
    ];
    for (const [body, why] of bad) {
      const res = await call(port, 'POST', '/functionservers', { raw: ['application/json', JSON.stringify(body)] });
      expect([res.status, res.body.code], why).toEqual([400, 'SB_ERR_BAD_REQUEST']);
      // The refusal names the field it is about, the misspelt one too.
      if (why === 'a misspelt field') expect(res.body.message).toContain('"pooltype" is not a field of this route');
      if (why === 'port too big') expect(res.body.message).toContain('port');
    }
    await expectErr('POST', '/functionservers', 400, 'SB_ERR_BAD_REQUEST', { raw: ['application/json', '{"host":'] });
    await expectErr('POST', '/functionservers', 400, 'SB_ERR_BAD_REQUEST', { raw: ['application/json', ''] });
    await expectErr('POST', '/functionservers', 400, 'SB_ERR_BAD_REQUEST', { raw: ['application/json', '{"__proto__":{"x":1},"host":"h","port":1}'] });
    await expectErr('POST', '/functionservers', 400, 'SB_ERR_BAD_REQUEST');
    await expectErr('POST', '/functionservers', 400, 'SB_ERR_BAD_REQUEST', { raw: ['text/plain', 'host=127.0.0.1'] });
    await expectErr('POST', '/functionservers', 415, 'SB_ERR_BAD_REQUEST', { raw: ['application/x-www-form-urlencoded', 'host=127.0.0.1&port=1'] });
    await expectErr('POST', '/functionservers', 413, 'SB_ERR_BAD_REQUEST', { body: { host: HOST, port: 1, name: 'n'.repeat(70_000) } });
    await expectErr('POST', '/pair/designate', 400, 'SB_ERR_BAD_REQUEST', { body: { role: 'sideways' } });
    await expectErr('POST', '/pair/designate', 409, 'SB_ERR_CONFLICT', { body: { role: 'active' } });
    await expectErr('GET', '/pair', 404, 'SB_ERR_NOT_FOUND');
    // An action takes no body; an empty one sent as JSON is fine.
    expect((await call(port, 'POST', '/functionservers/fs-a/undrain', { raw: ['application/json', ''] })).status).toBe(200);
    expect((await call(port, 'POST', '/functionservers/fs-a/undrain', { body: {} })).status).toBe(200);
    expect(h.as.listFunctionServers()).toHaveLength(1);

    // Wrong methods.
    const methods: [string, string, string][] = [
      ['PUT', '/functionservers', 'GET, HEAD, POST'],
      ['DELETE', '/functionservers', 'GET, HEAD, POST'],
      ['PATCH', '/functionservers/fs-a', 'GET, HEAD, DELETE'],
      ['POST', '/functionservers/fs-a', 'GET, HEAD, DELETE'],
      ['GET', '/functionservers/fs-a/drain', 'POST'],
      ['DELETE', '/functionservers/fs-a/dispose', 'POST'],
      ['GET', '/pair/designate', 'POST'],
      ['POST', '/healthz', 'GET, HEAD'],
      ['POST', '/readyz', 'GET, HEAD'],
      ['DELETE', '/metrics', 'GET, HEAD'],
      ['POST', '/events', 'GET, HEAD'],
      ['PUT', '/pair', 'GET, HEAD'],
      ['POST', '/', 'GET, HEAD'],
      ['OPTIONS', '/functionservers', 'GET, HEAD, POST'],
    ];
    for (const [method, path, allow] of methods) {
      const res = await expectErr(method, path, 405, 'SB_ERR_METHOD');
      expect(res.headers.get('allow'), `${method} ${path}`).toBe(allow);
    }
    // Unknown paths.
    for (const path of ['/nope', '/healthz/', '/functionservers/fs-a/explode', '/functionservers/a/b/c', '/dashboard.html', '/pair/designate/now']) {
      await expectErr('GET', path, 404, 'SB_ERR_NOT_FOUND');
    }
    expect(h.as.listFunctionServers().map((f) => [f.id, f.state])).toEqual([['fs-a', 'available']]);
  });

  it('a request that is not HTTP gets a JSON 400, not a crash', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const { port } = await startAdmin();
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: HOST, port }, () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n'));
      let got = '';
      s.on('data', (d) => (got += d.toString()));
      s.on('close', () => resolve(got));
      s.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'SB_ERR_BAD_REQUEST' });
    expect((await call(port, 'GET', '/healthz')).status).toBe(200);
  });
});

describe('GET /events', () => {
  it('tells of joined, state, connections, load and left as they happen', async () => {
    const [a] = await h.cluster({ loadRefreshMs: 200 }, [{ name: 'fs-a', refreshMs: 200 }]);
    const { port } = await startAdmin();
    const sse = await Sse.open(port);
    expect(sse.status).toBe(200);
    const hello = await sse.next((e) => e.type === 'hello', 'hello');
    expect(hello.data).toMatchObject({ role: 'active', functionServers: [{ id: 'fs-a', state: 'available' }] });
    await sse.next((e) => e.type === 'load' && e.data.id === 'fs-a', 'a load report from fs-a');
    await sse.next((e) => e.type === 'totals', 'totals');

    const extra = await h.startFs({ name: 'fs-x', register: false });
    let mark = sse.events.length;
    await call(port, 'POST', '/functionservers', { body: { host: HOST, port: extra.address().port, name: 'fs-x' } });
    expect((await sse.next((e) => e.type === 'joined', 'joined', mark)).data).toMatchObject({ id: 'fs-x', state: 'connecting', source: 'manual' });
    expect((await sse.next((e) => e.type === 'state' && e.data.id === 'fs-x', 'fs-x available', mark)).data).toMatchObject({ from: 'connecting', state: 'available' });
    expect((await sse.next((e) => e.type === 'connections' && e.data.id === 'fs-x', 'fs-x connections', mark)).data).toMatchObject({ connections: { open: 1, expected: 1 } });

    mark = sse.events.length;
    await call(port, 'POST', '/functionservers/fs-a/drain');
    expect((await sse.next((e) => e.type === 'state', 'fs-a draining', mark)).data).toMatchObject({ id: 'fs-a', from: 'available', state: 'draining' });

    mark = sse.events.length;
    await call(port, 'POST', '/functionservers/fs-x/dispose');
    expect((await sse.next((e) => e.type === 'connections' && e.data.id === 'fs-x', 'fs-x disposed', mark)).data).toMatchObject({ connections: { open: 0 } });

    mark = sse.events.length;
    await call(port, 'DELETE', '/functionservers/fs-x');
    expect((await sse.next((e) => e.type === 'left', 'left', mark)).data).toMatchObject({ id: 'fs-x', why: 'removed' });

    // The FS stopping: draining already, so it leaves once its connection closes.
    mark = sse.events.length;
    await a.stop();
    expect((await sse.next((e) => e.type === 'left' && e.data.id === 'fs-a', 'fs-a left', mark)).data).toMatchObject({ why: 'drained' });
    expect(sse.ended).toBeUndefined();
  });

  it('holds at most maxEventStreams: the next is 503 SB_ERR_OVERLOADED until one closes', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const { port, admin } = await startAdmin({ maxEventStreams: 2 });
    const s1 = await Sse.open(port);
    const s2 = await Sse.open(port);
    await Promise.all([s1.next((e) => e.type === 'hello', 'hello 1'), s2.next((e) => e.type === 'hello', 'hello 2')]);
    expect(admin.eventStreams).toBe(2);
    const s3 = await Sse.open(port);
    expect(s3.status).toBe(503);
    await s3.whenEnded();
    expect(JSON.parse(s3.body)).toMatchObject({ code: 'SB_ERR_OVERLOADED', message: expect.stringMatching(/event streams/) });
    expect(ERRORS_DOC).toContain('`SB_ERR_OVERLOADED`');
    // A refused stream costs no slot, and an unauthorised one is never opened.
    expect((await Sse.open(port, null)).status).toBe(401);
    expect(admin.eventStreams).toBe(2);
    s1.close();
    await waitFor(() => admin.eventStreams === 1, 'the closed stream to free its slot');
    const s4 = await Sse.open(port);
    expect(s4.status).toBe(200);
    await s4.next((e) => e.type === 'hello', 'hello 4');
  });

  it('closes a reader that does not read once its stream holds maxEventStreamBytes; readers that read carry on', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const bound = 256 * 1024;
    const { port, admin } = await startAdmin({ maxEventStreamBytes: bound });
    const good = await Sse.open(port);
    await good.next((e) => e.type === 'hello', 'hello');
    // A reader that sends its request and then never reads a byte.
    const slow: Socket = connect({ host: HOST, port });
    h.defer(() => slow.destroy());
    slow.on('error', () => undefined);
    let slowClosed = false;
    slow.on('close', () => (slowClosed = true));
    await new Promise<void>((r) => slow.once('connect', () => r()));
    slow.pause();
    slow.write(`GET /events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\n\r\n`);
    await waitFor(() => admin.eventStreams === 2, 'the slow stream to open');

    // State events, in batches, with a turn of the event loop between for the good reader.
    const perEvent = JSON.stringify(h.as.listFunctionServers()[0]).length + 40;
    const cap = 48 * 1024 * 1024;
    let produced = 0;
    while (admin.eventStreams === 2 && produced < cap) {
      for (let i = 0; i < 20; i++) {
        h.as.drain('fs-a');
        h.as.undrain('fs-a');
        produced += 2 * perEvent;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(admin.eventStreams, `after ${produced} bytes of events`).toBe(1);
    // The good reader is still open and still hears what happens.
    const mark = good.events.length;
    h.as.drain('fs-a');
    await good.next((e) => e.type === 'state' && e.data.state === 'draining', 'a state event after the slow reader was dropped', mark);
    expect(good.ended).toBeUndefined();
    expect(good.bytes).toBeGreaterThan(produced / 2);
    slow.resume();
    await waitFor(() => slowClosed, 'the slow reader to see its stream closed');
  });

  it('closing the admin surface ends every stream cleanly, and the close does not wait for them', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const admin = new AdminServer(h.as, silentLogger, { token: TOKEN });
    const port = await admin.listen(0, HOST);
    const streams = await Promise.all([Sse.open(port), Sse.open(port)]);
    await Promise.all(streams.map((s) => s.next((e) => e.type === 'hello', 'hello')));
    const t0 = Date.now();
    await admin.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await Promise.all(streams.map((s) => s.whenEnded()))).toEqual(['end', 'end']);
    expect(admin.eventStreams).toBe(0);
    // Events after the close go nowhere and throw nothing.
    h.as.drain('fs-a');
    await expect(fetch(`http://${HOST}:${port}/healthz`)).rejects.toThrow();
  });
});
