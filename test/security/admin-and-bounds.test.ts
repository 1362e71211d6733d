import { execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AdminServer, EventKind, encodeFrameRaw, FLAG_EVENT, FLAG_REQUEST, Serialization, silentLogger } from '../../src/index.js';
import { MAX_CACHED_SETS } from '../../src/application-server/registry/fs-manager.js';
import { makeTestCerts } from '../fixtures/certs.js';
import { expectTrafficUnharmed, useHarness, waitFor } from '../fixtures/cluster.js';
import { ControlPeer, FakeFs, helloFor, loadOf } from './registry-fixtures.js';

const h = useHarness();
const DIST_CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const TOKEN = 'admin-token-0123456789abcdef';

async function admin(opts: ConstructorParameters<typeof AdminServer>[2] = {}): Promise<number> {
  const a = new AdminServer(h.as, silentLogger, opts);
  const port = await a.listen(0, '127.0.0.1');
  h.defer(() => a.close());
  return port;
}

describe('the admin token', () => {
  it('guards every path but /healthz and /readyz: 401 without it or with a wrong one, 200 with it', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const port = await admin({ token: TOKEN });
    const get = (path: string, token?: string, method = 'GET') =>
      fetch(`http://127.0.0.1:${port}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
    for (const path of ['/functionservers', '/metrics', '/nope']) {
      const res = await get(path);
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(await res.json()).toMatchObject({ code: 'SB_ERR_AUTH_REQUIRED' });
      expect((await get(path, 'wrong-token-0123456789abcdef')).status, path).toBe(401);
    }
    expect((await get('/functionservers', TOKEN)).status).toBe(200);
    expect((await get('/metrics', TOKEN)).status).toBe(200);
    expect((await get('/nope', TOKEN)).status).toBe(404);
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz?probe=1')).status).toBe(200);
    const head = await get('/readyz', undefined, 'HEAD');
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect((await get('/functionservers', TOKEN, 'DELETE')).status).toBe(405);
  });

  it('serves HTTPS with the AS certificate when given one', async () => {
    const certs = makeTestCerts();
    h.defer(() => certs.remove());
    await h.cluster({}, [{ name: 'fs-h' }]);
    const port = await admin({ token: TOKEN, tls: { cert: certs.server.cert, key: certs.server.key } });
    const { get } = await import('node:https');
    const status = await new Promise<number>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/functionservers', ca: certs.ca, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    expect(status).toBe(200);
    // Plain HTTP to the HTTPS port gets no answer.
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('a slow sender: headers not whole within 5 s get 408 and a close, though bytes keep trickling; other requests are served', async () => {
    await h.cluster({}, [{ name: 'fs-s' }]);
    const port = await admin();
    const slow: Socket = connect({ host: '127.0.0.1', port });
    h.defer(() => slow.destroy());
    await new Promise<void>((r) => slow.once('connect', () => r()));
    let answer = '';
    slow.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    const closed = new Promise<number>((r) => slow.once('close', () => r(Date.now())));
    const start = Date.now();
    slow.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    // One header line a second: the socket is never idle, so only the headers' own deadline ends it.
    let n = 0;
    const trickle = setInterval(() => {
      if (!slow.destroyed) slow.write(`X-Slow-${n++}: 1\r\n`);
    }, 1000);
    h.defer(() => clearInterval(trickle));
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const at = await closed;
    clearInterval(trickle);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    // headersTimeout (5 s), checked every second; without the setting Node would wait for the 10 s request timeout, checked every 30 s.
    expect(at - start).toBeGreaterThanOrEqual(4900);
    expect(at - start).toBeLessThan(7500);
  }, 15_000);

  it('a body that stalls gets 408 at the 10 s request timeout; one already answered 401 gets no second answer, only a close', async () => {
    await h.cluster({}, [{ name: 'fs-s' }]);
    const port = await admin({ token: TOKEN });
    const stalled = async (token: string | undefined): Promise<{ answer: string; ms: number }> => {
      const s: Socket = connect({ host: '127.0.0.1', port });
      h.defer(() => s.destroy());
      await new Promise<void>((r) => s.once('connect', () => r()));
      let answer = '';
      s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      const start = Date.now();
      const closed = new Promise<number>((r) => s.once('close', () => r(Date.now())));
      const auth = token === undefined ? '' : `Authorization: Bearer ${token}\r\n`;
      s.write(`POST /functionservers HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"host":`);
      const ms = (await closed) - start;
      return { answer, ms };
    };
    const [withToken, without] = await Promise.all([stalled(TOKEN), stalled(undefined)]);
    expect(withToken.answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(withToken.answer).toContain('the request did not arrive in time');
    expect(withToken.ms).toBeGreaterThanOrEqual(9900);
    expect(without.answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(without.answer.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(without.ms).toBeLessThan(5000); // closed after the 401, not left for the body
  }, 20_000);

  it('the as command refuses a non-loopback --admin-host without --admin-token-file', async () => {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, [DIST_CLI, 'as', '--port', '0', '--control-port', '0', '--admin-port', '0', '--admin-host', '0.0.0.0'], { timeout: 10_000 }, (err, _out, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
      );
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/admin port may bind 0\.0\.0\.0 only with --admin-token-file.*SB_ERR_CONFIG/);
  });
});

describe('control-port bounds', () => {
  it('counts a malformed LOAD (a bad field, or a body that is not msgpack) as dropped, and answers nothing', async () => {
    await h.startAs({});
    const fake = await FakeFs.start(h, { name: 'fs-load', services: [{ key: 1, idempotent: true }] });
    const peer = await ControlPeer.connect(h);
    expect((await peer.hello(helloFor('fs-load', fake.endpoint))).status).toBe(0);
    peer.send(EventKind.LOAD, { ...loadOf(0.2), elu: 7 });
    peer.conn.send(encodeFrameRaw({ flags: FLAG_REQUEST | FLAG_EVENT | Serialization.MSGPACK, eventKind: EventKind.LOAD, requestId: 0 }, Buffer.from([0xc1])));
    await waitFor(() => h.as.manager.counters.droppedLoads.get('malformed') === 2, 'two malformed LOADs to be counted');
    expect(peer.isClosed).toBe(false);
    // A good LOAD after them is taken.
    peer.send(EventKind.LOAD, loadOf(0.2));
    await waitFor(() => h.as.listFunctionServers()[0]?.load?.elu === 0.2, 'the good LOAD to be taken');
  });

  it('holds at most maxControlConnections; beyond, new ones are closed at once and registered FSs keep serving', async () => {
    await h.cluster({ maxControlConnections: 3 }, [{ name: 'fs-c' }]);
    const bg = await h.background();
    const sockets: Socket[] = [];
    h.defer(() => sockets.forEach((s) => s.destroy()));
    const closed: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      const s = connect({ host: '127.0.0.1', port: h.controlPort });
      s.on('error', () => undefined);
      const idx = closed.push(false) - 1;
      s.once('close', () => (closed[idx] = true));
      sockets.push(s);
    }
    // The FS's own control link holds one of the three.
    await waitFor(() => closed.filter(Boolean).length === 2, 'two of the four extra control connections to be closed');
    expect(h.as.controlConnections).toBe(3);
    await expectTrafficUnharmed(bg);
  });
});

describe('the candidate-set cache', () => {
  it('stays at most MAX_CACHED_SETS (10000) sets however many keys clients ask for', async () => {
    expect(MAX_CACHED_SETS).toBe(10_000);
    await h.cluster({}, [{ name: 'fs-k' }]);
    const m = h.as.manager;
    for (let key = 0; key < MAX_CACHED_SETS + 500; key++) m.candidates(100_000 + key, 0);
    expect(m.cachedCandidateSets).toBeLessThanOrEqual(MAX_CACHED_SETS);
    expect(m.cachedCandidateSets).toBeGreaterThan(0);
    const c = await h.client();
    expect(await c.call(1, 'still routed')).toBe('still routed');
  });
});
