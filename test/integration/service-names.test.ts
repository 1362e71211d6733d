import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { inject } from 'tsyringe';
import { describe, expect, it } from 'vitest';
import {
  BadRequestError,
  ChannelClosedError,
  EventKind,
  Plugin,
  Service,
  ServiceNotFoundError,
  Status,
  decodeBody,
  defineService,
  encodeEventRequest,
  encodeRequest,
  eventKindOf,
  isEvent,
  isRequest,
  requestIdOf,
  statusOf,
  z,
  type BodyOf,
  type FunctionServer,
  type FunctionServerInfo,
} from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { useHarness, waitFor, waitForAvailable, withTimeout, type Harness } from '../fixtures/cluster.js';
import { FS_NAME } from '../fixtures/test-plugins.js';

const HOST = '127.0.0.1';
const DIST_CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

const h = useHarness();

const greet = defineService({
  key: 5301,
  name: 'greeter.greet',
  idempotent: true,
  timeoutMs: 800,
  request: z.object({ name: z.string().min(1), lang: z.enum(['en', 'fr']).default('en') }),
  response: z.object({ text: z.string(), by: z.string() }),
});
const count = defineService({ key: 5302, name: 'greeter.count' });

@Plugin({ name: 'greeter' })
class GreeterPlugin {
  #count = 0;
  constructor(@inject(FS_NAME) private readonly fsName: string) {}

  @Service(greet)
  greet(body: BodyOf<typeof greet>): { text: string; by: string } {
    return { text: `${body.lang === 'fr' ? 'Bonjour' : 'Hello'}, ${body.name}`, by: this.fsName };
  }

  @Service(count)
  count(): number {
    return ++this.#count;
  }
}

/** The same name for another key. */
@Plugin({ name: 'name-thief' })
class NameThief {
  @Service(defineService({ key: 5399, name: 'greeter.greet' }))
  greet(): string {
    return 'stolen';
  }
}

/** The same key under another name. */
@Plugin({ name: 'key-renamer' })
class KeyRenamer {
  @Service(defineService({ key: 5301, name: 'greeter.hello' }))
  greet(): { text: string; by: string } {
    return { text: 'renamed', by: 'renamer' };
  }
}

function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

async function greeterCluster(asOpts: Parameters<Harness['cluster']>[0] = {}): Promise<FunctionServer> {
  const [fs] = await h.cluster({ heartbeatMs: 500, ...asOpts }, [{ name: 'names-a', plugins: [EchoPlugin, GreeterPlugin], heartbeatMs: 500 }]);
  return fs;
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DIST_CLI, ...args], { timeout: 15_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

describe('service names: DESCRIBE and RESOLVE', () => {
  it('an FS with contract-bound services reports their names in DESCRIBE (and HELLO)', async () => {
    await greeterCluster();
    const fs = await h.startFs({ name: 'names-b', plugins: [GreeterPlugin], heartbeatMs: 500, register: false });
    const raw = await h.raw(fs.address().port);
    raw.write(encodeEventRequest(EventKind.DESCRIBE, 9, {}, true));
    const f = await raw.nextFrame();
    expect(isEvent(f) && !isRequest(f) && eventKindOf(f) === EventKind.DESCRIBE).toBe(true);
    expect(requestIdOf(f)).toBe(9);
    const reply = decodeBody(f) as { name: string; services: unknown[] };
    expect(reply.name).toBe('names-b');
    expect(reply.services).toEqual([
      { key: 5301, name: 'greeter.greet', idempotent: true, timeoutMs: 800 },
      { key: 5302, name: 'greeter.count', idempotent: false },
    ]);
    expect(fs.hello().services).toEqual(reply.services);
    // The AS routes on what the registered FS described, names included.
    expect(h.as.manager.resolveName('greeter.count')).toEqual({ key: 5302, name: 'greeter.count', idempotent: false });
  });

  it('client.resolve(name) gives the key, idempotent and timeoutMs; an unknown name is ServiceNotFoundError', async () => {
    await greeterCluster();
    const client = await h.client();
    expect(await client.resolve('greeter.greet')).toEqual({ key: 5301, name: 'greeter.greet', idempotent: true, timeoutMs: 800 });
    expect(await client.resolve('greeter.count')).toEqual({ key: 5302, name: 'greeter.count', idempotent: false });
    expect(await client.resolve('echo.echo')).toMatchObject({ key: 1, idempotent: true });

    const unknown = await client.resolve('greeter.nobody').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(unknown).toBeInstanceOf(ServiceNotFoundError);
    expect(unknown).toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND', message: expect.stringContaining('greeter.nobody') });
    // A name RESOLVE cannot carry is a bad request, not an unknown service.
    await expect(client.resolve('not a name')).rejects.toBeInstanceOf(BadRequestError);
    // The connection carries on.
    expect(await client.call(greet, { name: 'Ada' })).toEqual({ text: 'Hello, Ada', by: 'names-a' });
  });

  it('a malformed RESOLVE is answered BAD_REQUEST on the same event kind and id; the connection carries on', async () => {
    await greeterCluster();
    const raw = await h.raw();
    const expectBadRequest = async (id: number): Promise<void> => {
      const f = await raw.nextFrame();
      expect(isEvent(f)).toBe(true);
      expect(isRequest(f)).toBe(false);
      expect(eventKindOf(f)).toBe(EventKind.RESOLVE);
      expect(requestIdOf(f)).toBe(id);
      expect(statusOf(f)).toBe(Status.BAD_REQUEST);
      expect(decodeBody(f)).toEqual({ code: 'SB_ERR_BAD_REQUEST', message: expect.stringMatching(/RESOLVE takes \{ name \}/) });
    };
    raw.write(encodeEventRequest(EventKind.RESOLVE, 11, { nope: 1 }, true));
    await expectBadRequest(11);
    raw.write(encodeEventRequest(EventKind.RESOLVE, 12, undefined, true));
    await expectBadRequest(12);
    raw.write(encodeEventRequest(EventKind.RESOLVE, 13, { name: 42 }, true));
    await expectBadRequest(13);
    raw.write(encodeEventRequest(EventKind.RESOLVE, 14, { name: 'x'.repeat(129) }, true));
    await expectBadRequest(14);
    raw.write(encodeEventRequest(EventKind.RESOLVE, 15, 'greeter.greet', true));
    await expectBadRequest(15);
    // A one-way RESOLVE gets no answer; the next two-way one does.
    raw.write(encodeEventRequest(EventKind.RESOLVE, 16, { name: 'greeter.greet' }, false));
    raw.write(encodeEventRequest(EventKind.RESOLVE, 17, { name: 'greeter.greet' }, true));
    const ok = await raw.nextFrame();
    expect(requestIdOf(ok)).toBe(17);
    expect(statusOf(ok)).toBe(Status.OK);
    expect(decodeBody(ok)).toEqual({ key: 5301, name: 'greeter.greet', idempotent: true, timeoutMs: 800 });
    expect(raw.isClosed).toBe(false);
  });

  it('a body that fails the contract is answered BAD_REQUEST SB_ERR_VALIDATION with issues on the wire, and the client raises BadRequestError', async () => {
    await greeterCluster();
    const raw = await h.raw();
    raw.write(encodeRequest(21, greet.key, { name: '', lang: 'de' }));
    const f = await raw.nextFrame();
    expect(requestIdOf(f)).toBe(21);
    expect(statusOf(f)).toBe(Status.BAD_REQUEST);
    const body = decodeBody(f) as { code: string; message: string; issues: { path: string; message: string }[] };
    expect(body.code).toBe('SB_ERR_VALIDATION');
    expect(body.issues.map((i) => i.path)).toEqual(['name', 'lang']);
    expect(body.message).toMatch(/^the body does not match greeter\.greet: name: .*; lang: /);

    const client = await h.client();
    await expect(client.call(greet, { name: '' })).rejects.toMatchObject({ code: 'SB_ERR_VALIDATION', status: Status.BAD_REQUEST });
    expect(await client.call(greet, { name: 'Zoé', lang: 'fr' })).toEqual({ text: 'Bonjour, Zoé', by: 'names-a' });
  });
});

describe('switchboard call --service (child process)', () => {
  it('takes a name (resolved by the AS) as well as a key', async () => {
    expect(existsSync(DIST_CLI), 'run `npm run build` first (npm test does)').toBe(true);
    await greeterCluster();
    const as = ['--as', `${HOST}:${h.port}`];
    const [byName, byKey, unknown, invalid] = await Promise.all([
      runCli(['call', ...as, '--service', 'greeter.greet', '--data', '{"name":"Ada","lang":"fr"}']),
      runCli(['call', ...as, '--service', '1', '--data', '{"x":[1,2]}']),
      runCli(['call', ...as, '--service', 'greeter.nobody']),
      runCli(['call', ...as, '--service', 'greeter.greet', '--data', '{"name":""}']),
    ]);
    expect(byName.code).toBe(0);
    expect(JSON.parse(byName.stdout)).toEqual({ text: 'Bonjour, Ada', by: 'names-a' });
    expect(byKey.code).toBe(0);
    expect(JSON.parse(byKey.stdout)).toEqual({ x: [1, 2] });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^SERVICE_NOT_FOUND: .*greeter\.nobody.*\(SB_ERR_SERVICE_NOT_FOUND\)/);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^BAD_REQUEST: the body does not match greeter\.greet: name: .*\(SB_ERR_VALIDATION\)/);
  });
});

describe('name clashes across function servers', () => {
  /** Starts an FS whose names disagree with names-a's and waits until the AS has given up dialing it. */
  async function refused(name: string, plugin: unknown, seenAvailable: Set<string>): Promise<void> {
    const unavailable = new Promise<void>((r) => h.as.on('fs-state', (i: FunctionServerInfo) => i.id === name && i.state === 'unavailable' && r()));
    await h.startFs({ name, plugins: [EchoPlugin, plugin], heartbeatMs: 500 });
    await withTimeout(unavailable, 5000, `the AS to give up on ${name}`);
    expect(seenAvailable.has(name)).toBe(false);
  }

  async function clashCluster(): Promise<{ lines: Record<string, unknown>[]; seenAvailable: Set<string>; first: FunctionServer }> {
    const { logger, lines } = captureLogger();
    const first = await greeterCluster({ logger, ejectAfterFailures: 2, reconnectBaseMs: 20, reconnectCapMs: 200 });
    const seenAvailable = new Set<string>();
    h.as.on('fs-state', (i) => i.state === 'available' && seenAvailable.add(i.id));
    return { lines, seenAvailable, first };
  }

  const clashLines = (lines: Record<string, unknown>[], fs: string): string[] =>
    lines.filter((l) => l.msg === 'function server refused: its service names disagree with the registry' && l.fs === fs).map((l) => String(l.clash));

  it('refuses a second FS that gives the name to another key (never available, logged) while the first keeps serving', async () => {
    const { lines, seenAvailable } = await clashCluster();
    await refused('names-thief', NameThief, seenAvailable);
    expect(clashLines(lines, 'names-thief')[0]).toBe('service name greeter.greet is key 5301 on names-a, but key 5399 here; a name belongs to one key');

    const client = await h.client();
    expect(await client.resolve('greeter.greet')).toMatchObject({ key: 5301 });
    for (let i = 0; i < 10; i++) expect(await client.call(greet, { name: `n${i}` })).toEqual({ text: `Hello, n${i}`, by: 'names-a' });
    expect(h.as.listFunctionServers().find((f) => f.id === 'names-a')?.state).toBe('available');
  });

  it('refuses a second FS that serves the same key under another name', async () => {
    const { lines, seenAvailable } = await clashCluster();
    await refused('names-renamer', KeyRenamer, seenAvailable);
    expect(clashLines(lines, 'names-renamer')[0]).toBe('service key 5301 is named greeter.greet on names-a, but greeter.hello here; one key has one name');
    const client = await h.client();
    expect(await client.resolve('greeter.greet')).toMatchObject({ key: 5301 });
    await expect(client.resolve('greeter.hello')).rejects.toBeInstanceOf(ServiceNotFoundError);
    // Every call of the key lands on the first FS, never on the refused one.
    for (let i = 0; i < 10; i++) expect(await client.call(greet, { name: 'Ada' })).toEqual({ text: 'Hello, Ada', by: 'names-a' });
  });

  it('a second FS that agrees on the names is admitted beside the first', async () => {
    const { seenAvailable } = await clashCluster();
    await h.startFs({ name: 'names-twin', plugins: [EchoPlugin, GreeterPlugin], heartbeatMs: 500 });
    await waitForAvailable(h.as, 2);
    expect(seenAvailable.has('names-twin')).toBe(true);
  });

  it('the first FS keeps serving when it reloads after a refused FS tried to take its name', async () => {
    // A refused FS stays in the registry (its HELLO was accepted, its dials are refused): its HELLO
    // names must not count against the FS that holds them when that one describes itself again.
    const { lines, seenAvailable, first } = await clashCluster();
    await refused('names-thief', NameThief, seenAvailable);
    const a = h.as.listFunctionServers().find((f) => f.id === 'names-a');
    expect(a?.state).toBe('available');

    const changed = new Promise<FunctionServerInfo>((r) => h.as.on('fs-changed', (i) => i.id === 'names-a' && r(i)));
    const lost = new Promise<string>((r) => h.as.on('fs-state', (i) => i.id === 'names-a' && i.state !== 'available' && r(i.state)));
    // names-a reloads the same plugins (as `fs --watch` does on a touched file).
    await first.replacePlugins([EchoPlugin, GreeterPlugin]);
    const outcome = await withTimeout(Promise.race([changed.then(() => 'changed'), lost]), 3000, 'names-a to be re-described');
    expect(clashLines(lines, 'names-a')).toEqual([]);
    expect(outcome).toBe('changed');
    const client = await h.client();
    expect(await client.call(greet, { name: 'Ada' }, { timeoutMs: 2000 })).toEqual({ text: 'Hello, Ada', by: 'names-a' });
  });
});

describe('client.call(contract): idempotent by the contract', () => {
  /** A TCP proxy in front of the AS's client port whose connections the test can cut. */
  async function proxy(): Promise<{ port: number; cut: () => void }> {
    const sockets = new Set<Socket>();
    const server = createServer((down) => {
      const up = connect({ host: HOST, port: h.port });
      for (const s of [down, up]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
      }
      down.pipe(up);
      up.pipe(down);
      down.on('close', () => up.destroy());
      up.on('close', () => down.destroy());
    });
    await new Promise<void>((r) => server.listen(0, HOST, () => r()));
    h.defer(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    });
    return {
      port: (server.address() as AddressInfo).port,
      cut: () => {
        for (const s of sockets) s.destroy();
      },
    };
  }

  const fetchC = defineService({ key: 5401, name: 'flaky.fetch', idempotent: true });
  const postC = defineService({ key: 5402, name: 'flaky.post' });

  it('re-sends a call of an idempotent contract after a lost connection; a non-idempotent one (or idempotent: false) fails CHANNEL_CLOSED', async () => {
    let runs = 0;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    h.defer(() => release());
    @Plugin({ name: 'flaky' })
    class Flaky {
      @Service(fetchC)
      async fetch(body: { n: number }): Promise<number> {
        runs++;
        await released;
        return body.n;
      }
      @Service(postC)
      async post(body: { n: number }): Promise<number> {
        runs++;
        await released;
        return body.n;
      }
    }
    await h.cluster({ heartbeatMs: 500 }, [{ name: 'flaky-fs', plugins: [Flaky], heartbeatMs: 500 }]);
    const p = await proxy();
    const client = await h.client({ port: p.port, reconnect: { baseMs: 10, capMs: 50 } });

    const fetching = client.call(fetchC, { n: 1 }, { timeoutMs: 8000 });
    fetching.catch(() => undefined); // awaited below; not unhandled if the test fails first
    const posting = client.call(postC, { n: 2 }, { timeoutMs: 8000 }).then(
      () => 'answered',
      (e: unknown) => e,
    );
    const forced = client.call(fetchC, { n: 3 }, { timeoutMs: 8000, idempotent: false }).then(
      () => 'answered',
      (e: unknown) => e,
    );
    await waitFor(() => runs === 3, 'the three calls to run once');
    p.cut();
    expect(await posting).toBeInstanceOf(ChannelClosedError);
    expect(await forced).toBeInstanceOf(ChannelClosedError);
    // Only the idempotent one is sent again, on the new connection.
    await waitFor(() => runs === 4, 'the idempotent call to be sent again', 5000);
    release();
    expect(await fetching).toBe(1);
    expect(runs).toBe(4);
  });
});
