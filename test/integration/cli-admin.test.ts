import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AdminServer, silentLogger, type AdminServerOptions, type FunctionServerInfo } from '../../src/index.js';
import { SseParser, type TopFrame } from '../../src/cli/top-command.js';
import { totalsFromMetrics } from '../../src/cli/status-command.js';
import { makeTestCerts } from '../fixtures/certs.js';
import { runBounded, useHarness, waitFor, waitForRegistry } from '../fixtures/cluster.js';
import { freePort } from '../fixtures/ports.js';
import { withTimeout } from '../fixtures/wait.js';

/*
 * The admin commands (status, fs-admin, top) as an operator runs them: the built CLI in a child
 * process against an AS in this process with its admin port on 127.0.0.1:0 and real FSs.
 */

const DIST_CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const HOST = '127.0.0.1';
const TOKEN = 'cli-admin-test-token-0123456789abcdef';

const h = useHarness();
const children = new Set<ChildProcess>();
const dirs: string[] = [];
afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
  children.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to its end (15 s at most); never rejects. */
function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [DIST_CLI, ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      children.delete(child);
      const code = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
    });
    children.add(child);
  });
}

/** Runs several CLIs, three at a time: the machine may be small and busy. */
async function cliAll(list: string[][]): Promise<Run[]> {
  const out: Run[] = [];
  await runBounded(list.length, 3, async (i) => {
    out[i] = await cli(list[i]);
  });
  return out;
}

/** A running `top --json`: its frames as they come, and its exit. */
function top(args: string[]): { pid: number; frames: TopFrame[]; next: (n: number) => Promise<TopFrame>; exit: Promise<Run> } {
  const child = spawn(process.execPath, [DIST_CLI, 'top', '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const frames: TopFrame[] = [];
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  createInterface({ input: child.stdout }).on('line', (line) => {
    stdout += `${line}\n`;
    const f = JSON.parse(line) as TopFrame & { error?: unknown };
    if (!f.error) frames.push(f);
  });
  const exit = new Promise<Run>((resolve) => child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr })));
  const next = (n: number): Promise<TopFrame> => withTimeout(waitFor(() => frames.length >= n, `top frame ${n}`, 15_000).then(() => frames[n - 1]), 16_000, `top frame ${n}`);
  return { pid: child.pid as number, frames, next, exit };
}

/** Two FSs (fs-a, fs-b) behind an AS with its admin port; resolves "127.0.0.1:port" and the admin. */
async function withAdmin(opts: AdminServerOptions = {}, names = ['fs-a', 'fs-b']): Promise<{ admin: string; server: AdminServer }> {
  if (names.length > 0) await h.cluster({}, names.map((name) => ({ name })));
  else await h.startAs();
  const server = new AdminServer(h.as, silentLogger, opts);
  const port = await server.listen(0, HOST);
  h.defer(() => server.close());
  return { admin: `${HOST}:${port}`, server };
}

function tempFile(name: string, content: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-cli-admin-'));
  dirs.push(dir);
  const file = join(dir, name);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}


const fsInfo = (id: string): FunctionServerInfo | undefined => h.as.listFunctionServers().find((f) => f.id === id);

beforeAll(() => {
  expect(existsSync(DIST_CLI), 'run `npm run build` first (npm test does)').toBe(true);
});

describe('switchboard fs-admin', { timeout: 60_000 }, () => {
  it('drain stops new requests to the FS and undrain takes it back; --json parses', async () => {
    const { admin } = await withAdmin();
    const drained = await cli(['fs-admin', 'drain', 'fs-a', '--admin', admin]);
    expect(drained, drained.stderr).toMatchObject({ code: 0, stdout: 'fs-a drained: 0 requests in flight will finish; no new ones\n' });
    expect(fsInfo('fs-a')?.state).toBe('draining');

    const client = await h.client();
    const before = fsInfo('fs-a')!.served;
    for (let i = 0; i < 20; i++) await client.call(1, i);
    expect(fsInfo('fs-a')!.served).toBe(before);
    expect(fsInfo('fs-b')!.served).toBeGreaterThanOrEqual(20);

    const undrained = await cli(['fs-admin', 'undrain', 'fs-a', '--admin', admin, '--json']);
    expect(undrained.code, undrained.stderr).toBe(0);
    const out = JSON.parse(undrained.stdout) as { action: string; functionServer: FunctionServerInfo };
    expect(out).toMatchObject({ action: 'undrain', functionServer: { id: 'fs-a', state: 'available' } });
    expect(fsInfo('fs-a')?.state).toBe('available');
  });

  it('add dials an FS by endpoint, remove forgets it; a second add of the same id is refused (exit 1)', async () => {
    const { admin } = await withAdmin();
    const fsC = await h.startFs({ name: 'fs-c', register: false });
    const { port } = fsC.address();
    const added = await cli(['fs-admin', 'add', `${HOST}:${port}`, '--name', 'fs-c', '--pool-type', '0', '--standby', '--admin', admin, '--json']);
    expect(added.code, added.stderr).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ action: 'add', functionServer: { id: 'fs-c', host: HOST, port, standby: true, source: 'manual' } });
    await waitForRegistry(h.as, (l) => l.some((f) => f.id === 'fs-c' && f.state === 'available'), 'fs-c to be available');

    const again = await cli(['fs-admin', 'add', `${HOST}:${port}`, '--name', 'fs-c', '--admin', admin]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/409 SB_ERR_CONFLICT\): .*fs-c.*; remove it first/);

    const removed = await cli(['fs-admin', 'remove', 'fs-c', '--admin', admin]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/^fs-c removed: it gets no new requests and the AS no longer dials 127\.0\.0\.1:\d+; its pool connections close once what it has in flight \(0 requests\) is answered/);
    expect(fsInfo('fs-c')).toBeUndefined();
  });

  it('dispose closes the pool connections, which the AS redials; reconnect dials at once', async () => {
    const { admin } = await withAdmin();
    const opens: number[] = [];
    h.as.on('fs-connections', (i: FunctionServerInfo) => {
      if (i.id === 'fs-a') opens.push(i.connections.open);
    });
    const disposed = await cli(['fs-admin', 'dispose', 'fs-a', '--admin', admin]);
    expect(disposed.code, disposed.stderr).toBe(0);
    expect(disposed.stdout).toMatch(/^fs-a: pool connections disposed; the AS dials them again/);
    await waitFor(() => opens.includes(0), 'the pool connection to fs-a to close');
    const reconnected = await cli(['fs-admin', 'reconnect', 'fs-a', '--admin', admin]);
    expect(reconnected.code, reconnected.stderr).toBe(0);
    expect(reconnected.stdout).toMatch(/^fs-a: dialing now, without waiting out the backoff/);
    await waitForRegistry(h.as, (l) => l.some((f) => f.id === 'fs-a' && f.state === 'available' && f.connections.open === 1), 'fs-a to be connected again');
  });

  it('exit codes: 2 not found, 3 no token or a wrong one, 4 unreachable, 1 bad arguments', async () => {
    const { admin } = await withAdmin({ token: TOKEN });
    const good = tempFile('token', `${TOKEN}\n`);
    const wrong = tempFile('wrong', 'not-the-token-at-all-0123456789\n');
    const nowhere = `${HOST}:${await freePort()}`;
    const [ok, missing, noToken, wrongToken, unreachable, badEndpoint, noId, noAdmin, unknownAction, badPool, notFoundJson] = await cliAll([
      ['fs-admin', 'drain', 'fs-b', '--admin', admin, '--token-file', good],
      ['fs-admin', 'drain', 'nope', '--admin', admin, '--token-file', good],
      ['fs-admin', 'drain', 'fs-b', '--admin', admin],
      ['fs-admin', 'drain', 'fs-b', '--admin', admin, '--token-file', wrong],
      ['fs-admin', 'drain', 'fs-b', '--admin', nowhere],
      ['fs-admin', 'add', 'no-port-here', '--admin', admin],
      ['fs-admin', 'drain', '--admin', admin],
      ['fs-admin', 'drain', 'fs-b'],
      ['fs-admin', 'frob', 'fs-b', '--admin', admin],
      ['fs-admin', 'add', `${HOST}:7200`, '--pool-type', '70000', '--admin', admin],
      ['fs-admin', 'undrain', 'nope', '--admin', admin, '--token-file', good, '--json'],
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(fsInfo('fs-b')?.state).toBe('draining');
    expect(missing).toMatchObject({ code: 2, stdout: '' });
    expect(missing.stderr).toMatch(/no function server with id nope; GET \/functionservers lists them/);
    expect(noToken.code).toBe(3);
    expect(noToken.stderr).toMatch(/wants its admin token: pass --token-file/);
    expect(wrongToken.code).toBe(3);
    expect(wrongToken.stderr).toMatch(/refused the token in .*wrong/);
    expect(unreachable.code).toBe(4);
    expect(unreachable.stderr).toMatch(/cannot reach the admin port at .*ECONNREFUSED; is the AS running with --admin-port/);
    for (const r of [badEndpoint, noId, noAdmin, unknownAction, badPool]) expect(r.code, r.stderr).toBe(1);
    expect(badEndpoint.stderr).toMatch(/expected host:port/);
    expect(noId.stderr).toMatch(/missing required argument 'id'/);
    expect(noAdmin.stderr).toMatch(/required option '--admin <host:port>'/);
    expect(badPool.stderr).toMatch(/expected an integer from 0 to 65535/);
    expect(notFoundJson.code).toBe(2);
    expect(JSON.parse(notFoundJson.stdout)).toEqual({ error: { exitCode: 2, code: 'SB_ERR_NOT_FOUND', message: expect.stringMatching(/no function server with id nope/) } });
  }, 90_000);

  it('--help of every admin command shows the exit codes', async () => {
    const runs = await cliAll([['status'], ['pair', 'designate'], ['fs-admin'], ['fs-admin', 'add'], ['fs-admin', 'drain'], ['top']].map((c) => [...c, '--help']));
    for (const r of runs) {
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Exit codes[^]*2 {2}not found[^]*3 {2}unauthorized[^]*4 {2}cannot reach the admin port/);
    }
  });
});

describe('switchboard status', { timeout: 60_000 }, () => {
  it('prints the FS table and the AS totals; --json holds them; 5 when not ready', async () => {
    const { admin } = await withAdmin({ token: TOKEN });
    const token = tempFile('token', TOKEN);
    const client = await h.client();
    for (let i = 0; i < 5; i++) await client.call(1, i);
    await expect(client.call(4242, {})).rejects.toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND' });

    const [text, json] = await cliAll([
      ['status', '--admin', admin, '--token-file', token],
      ['status', '--admin', admin, '--token-file', token, '--json'],
    ]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^role active \(no pair\)\nready: yes\n/);
    expect(text.stdout).toMatch(/fs-a +127\.0\.0\.1:\d+ +0 active +available +1\/1/);
    expect(text.stdout).toMatch(/2 function servers, 2 available, 0 requests in flight, 5 served/);
    expect(text.stdout).toMatch(/this AS: 5 answers relayed \(5 OK\), 1 answered itself \(1 SERVICE_NOT_FOUND\), 0 re-sent, 0 hedged, 1 client connections/);
    expect(json.code, json.stderr).toBe(0);
    const s = JSON.parse(json.stdout) as { ready: { ready: boolean }; functionServers: FunctionServerInfo[]; totals: { relayed: number; answeredLocally: number } };
    expect(s.ready.ready).toBe(true);
    expect(s.functionServers.map((f) => f.id).sort()).toEqual(['fs-a', 'fs-b']);
    expect(s.totals).toMatchObject({ relayed: 5, answeredLocally: 1, clientConnections: 1 });

    h.as.drain('fs-a');
    h.as.drain('fs-b');
    const notReady = await cli(['status', '--admin', admin, '--token-file', token]);
    expect(notReady.code).toBe(5);
    expect(notReady.stdout).toMatch(/ready: no \(no function server available\)/);
  });

  it('speaks HTTPS with --ca-file; without it, exit 4 says to pass --ca-file', async () => {
    const certs = makeTestCerts();
    h.defer(() => certs.remove());
    const { admin } = await withAdmin({ tls: { cert: certs.server.cert, key: certs.server.key } }, ['fs-tls']);
    const [trusted, untrusted, plain] = await cliAll([
      ['status', '--admin', admin, '--https', '--ca-file', certs.caFile],
      ['status', '--admin', admin, '--https'],
      ['status', '--admin', admin],
    ]);
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(trusted.stdout).toMatch(/fs-tls/);
    expect(untrusted.code).toBe(4);
    expect(untrusted.stderr).toMatch(/pass --ca-file/);
    expect(plain.code).toBe(4);
    expect(plain.stderr).toMatch(/add --https/);
  });
});

describe('switchboard top', { timeout: 60_000 }, () => {
  it('--json shows the FSs, then a drain and an FS added during the run', async () => {
    const { admin } = await withAdmin();
    const fsC = await h.startFs({ name: 'fs-c', register: false });
    const t = top(['--admin', admin, '--iterations', '3', '--interval-ms', '1000']);
    const first = await t.next(1);
    expect(first.role).toBe('active');
    expect(first.functionServers.map((f) => [f.name, f.state, f.connections])).toEqual([
      ['fs-a', 'available', { open: 1, expected: 1 }],
      ['fs-b', 'available', { open: 1, expected: 1 }],
    ]);
    expect(first.functionServers[0]).toMatchObject({ endpoint: expect.stringMatching(/^127\.0\.0\.1:\d+$/), poolType: 0, tier: 'active', inflight: 0 });

    // Changes made after the first frame: the last frame (2 s later) must show them.
    h.as.drain('fs-a');
    h.as.addFunctionServer({ host: HOST, port: fsC.address().port, name: 'fs-c' });
    const r = await withTimeout(t.exit, 15_000, 'top to exit');
    expect(r.code, r.stderr).toBe(0);
    expect(t.frames).toHaveLength(3);
    const last = t.frames[2];
    expect(last.functionServers.find((f) => f.name === 'fs-a')?.state).toBe('draining');
    expect(last.functionServers.map((f) => f.name)).toEqual(['fs-a', 'fs-b', 'fs-c']);
    expect(last.totals).toMatchObject({ relayed: 0, clientConnections: 0 });
    expect(last.functionServers.find((f) => f.name === 'fs-b')).toMatchObject({ requestsPerSecond: 0, elu: 0.1, cpu: 0.1 });
  });

  it('prints plain frames without --json, exits 0 on Ctrl-C, and exits 4 saying why when the AS stops', async () => {
    const { admin, server } = await withAdmin({}, ['fs-a']);
    const plain = await cli(['top', '--admin', admin, '--iterations', '1']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^switchboard top · 127\.0\.0\.1:\d+ · role active \(no pair\)/);
    expect(plain.stdout).toMatch(/NAME +ENDPOINT[^]*\nfs-a +127\.0\.0\.1:\d+ +0 active +available +1\/1/);

    // Ctrl-C is how top is meant to end: exit 0.
    const interrupted = top(['--admin', admin]);
    await interrupted.next(1);
    process.kill(interrupted.pid, 'SIGINT');
    expect((await withTimeout(interrupted.exit, 15_000, 'top to exit on SIGINT')).code).toBe(0);

    const t = top(['--admin', admin]);
    await t.next(1);
    await server.close();
    const r = await withTimeout(t.exit, 15_000, 'top to exit');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/the event stream from 127\.0\.0\.1:\d+ ended: the AS stopped/);
  });

  it('exits 3 without the token and 4 when nothing listens', async () => {
    const { admin } = await withAdmin({ token: TOKEN }, ['fs-a']);
    const nowhere = `${HOST}:${await freePort()}`;
    const [noToken, unreachable] = await cliAll([
      ['top', '--admin', admin, '--iterations', '1'],
      ['top', '--admin', nowhere, '--iterations', '1'],
    ]);
    expect(noToken.code).toBe(3);
    expect(unreachable.code).toBe(4);
  });
});

describe('the parsers', () => {
  it('SseParser: events split across chunks, CRLF, comments, several data lines', () => {
    const got: [string, string][] = [];
    const p = new SseParser((e, d) => got.push([e, d]));
    for (const chunk of ['retry: 2000\n\nevent: hel', 'lo\ndata: {"a":', '1}\n', '\n: keep-alive\n\n', 'event: x\r\ndata: one\r\ndata:two\r\n\r\n', 'data: plain\n\n']) p.push(chunk);
    expect(got).toEqual([
      ['hello', '{"a":1}'],
      ['x', 'one\ntwo'],
      ['message', 'plain'],
    ]);
  });

  it('totalsFromMetrics sums answers by status and skips comments', () => {
    const t = totalsFromMetrics(
      '# HELP x\nswitchboard_answers_relayed_total{status="OK"} 7\nswitchboard_answers_relayed_total{status="SERVICE_ERROR"} 2\nswitchboard_answers_local_total{status="UNAVAILABLE"} 1\nswitchboard_client_connections 3\nswitchboard_requests_hedged_total 4\n',
    );
    expect(t).toEqual({ relayed: 9, relayedByStatus: { OK: 7, SERVICE_ERROR: 2 }, answeredLocally: 1, answeredLocallyByStatus: { UNAVAILABLE: 1 }, clientConnections: 3, resent: 0, hedged: 4 });
  });
});
