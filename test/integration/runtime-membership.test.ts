import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ConfigError, type Client, type FunctionServerInfo } from '../../src/index.js';
import { runBounded, tally, useHarness, waitFor, waitForAvailable, waitForRegistry } from '../fixtures/cluster.js';
import { WHO_AM_I } from '../fixtures/test-plugins.js';
import { ECHO_DELAYED } from '../../src/plugins/samples/echo-plugin.js';

const h = useHarness();

/** Where `n` who-am-i calls landed, 8 in flight at a time. */
async function where(c: Client, n: number): Promise<Map<string, number>> {
  const names: string[] = [];
  await runBounded(n, 8, async () => {
    names.push(await c.call<string>(WHO_AM_I));
  });
  return tally(names);
}

describe('runtime membership', () => {
  it('an FS added by address gets traffic, and none once removed', async () => {
    // Round-robin, so that "gets traffic" does not depend on load reports (a manual FS sends none).
    await h.cluster({ strategy: 'round-robin' }, [{ name: 'fs-a' }]);
    const c = await h.client();
    expect([...(await where(c, 20)).keys()]).toEqual(['fs-a']);

    const late = await h.startFs({ name: 'fs-b', register: false });
    const addr = late.address();
    const joined: FunctionServerInfo[] = [];
    const left: [FunctionServerInfo, string][] = [];
    h.as.on('fs-joined', (i) => joined.push(i));
    h.as.on('fs-left', (i, why) => left.push([i, why]));

    const info = h.as.addFunctionServer({ host: addr.host, port: addr.port });
    expect(info.id).toBe(`${addr.host}:${addr.port}`);
    expect(info.source).toBe('manual');
    expect(joined.map((i) => i.id)).toEqual([info.id]);
    await waitForAvailable(h.as, 2);
    // The AS learnt the name and the keys from the FS's DESCRIBE answer.
    const described = h.as.listFunctionServers().find((f) => f.id === info.id);
    expect(described?.name).toBe('fs-b');
    expect(described?.serviceKeys).toEqual([1, 2, WHO_AM_I]);

    const both = await where(c, 100);
    expect(both.get('fs-a')).toBe(50);
    expect(both.get('fs-b')).toBe(50);

    expect(h.as.removeFunctionServer(info.id)).toBe(true);
    expect(left.map(([i]) => i.id)).toEqual([info.id]);
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-a']);
    expect([...(await where(c, 100)).entries()]).toEqual([['fs-a', 100]]);
    // The AS closed its pool connection to the removed FS.
    await waitFor(() => late.connectionCount === 0, 'the AS to close its connection to fs-b');
    expect(h.as.removeFunctionServer(info.id)).toBe(false);
  });

  it('removing an FS: no new requests go to it, those in flight on it finish, then its pool closes', async () => {
    await h.cluster({ strategy: 'round-robin' }, [{ name: 'fs-a' }]);
    const late = await h.startFs({ name: 'fs-b', register: false });
    const addr = late.address();
    const info = h.as.addFunctionServer({ host: addr.host, port: addr.port });
    await waitForAvailable(h.as, 2);
    const c = await h.client();
    // Four slow calls, round-robin: two of them on fs-b.
    const slow = [1, 2, 3, 4].map((i) => c.call(ECHO_DELAYED, { ms: 400, value: i }, { timeoutMs: 5000 }));
    await waitFor(() => h.as.listFunctionServers().find((f) => f.id === info.id)?.inflight === 2, 'two slow calls on fs-b');
    expect(h.as.removeFunctionServer(info.id)).toBe(true);
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-a']);
    expect(late.connectionCount).toBeGreaterThan(0); // still open for what it owes
    // New calls go to fs-a only, while fs-b finishes.
    expect([...(await where(c, 10)).keys()]).toEqual(['fs-a']);
    expect(await Promise.all(slow)).toEqual([1, 2, 3, 4]);
    await waitFor(() => late.connectionCount === 0, 'the AS to close its connections to fs-b once they owe nothing');
  });

  it('an FS that says HELLO after the client connected starts receiving traffic', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const c = await h.client();
    expect([...(await where(c, 20)).keys()]).toEqual(['fs-a']);

    const joined: string[] = [];
    h.as.on('fs-joined', (i) => joined.push(i.id));
    await h.startFs({ name: 'fs-b' });
    expect(joined).toEqual(['fs-b']);
    await waitForRegistry(h.as, (l) => l.find((f) => f.id === 'fs-b')?.state === 'available', 'fs-b available');
    await waitForRegistry(h.as, (l) => l.every((f) => f.load !== undefined), 'load reports from both');

    // Same reported load: the least-loaded scheduler must use the newcomer too.
    const counts = await where(c, 400);
    expect(counts.get('fs-a')).toBeGreaterThan(100);
    expect(counts.get('fs-b')).toBeGreaterThan(100);
  });

  it('a stopped (drained) FS leaves the registry and gets no more traffic; the AS logs that at info, not warn', async () => {
    const lines: { level: number; msg: string; fs?: string; reason?: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as (typeof lines)[number]) });
    const [, fsB] = await h.cluster({ strategy: 'round-robin', logger }, [{ name: 'fs-a' }, { name: 'fs-b' }]);
    const c = await h.client();
    expect((await where(c, 40)).get('fs-b')).toBe(20);
    const left = new Promise<[FunctionServerInfo, string]>((r) => h.as.once('fs-left', (i, why) => r([i, why])));
    await fsB.stop();
    const [info] = await left;
    expect(info.id).toBe('fs-b');
    expect([...(await where(c, 40)).entries()]).toEqual([['fs-a', 40]]);
    // A rolling restart going as planned: the FS drained and closed with nothing pending.
    const closed = lines.filter((l) => l.msg === 'pool connection to function server closed' && l.fs === 'fs-b');
    expect(closed.length).toBeGreaterThan(0);
    expect(closed.map((l) => [l.level, l.reason])).toEqual(closed.map(() => [30, 'remote']));
  });

  it('rejects addFunctionServer with an id already registered', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const fsA = h.as.listFunctionServers()[0];
    const other = await h.startFs({ name: 'fs-x', register: false });
    const { host, port } = other.address();

    const dupByName = (): unknown => h.as.addFunctionServer({ host, port, name: 'fs-a' });
    expect(dupByName).toThrow(ConfigError);
    try {
      dupByName();
    } catch (err) {
      expect((err as ConfigError).code).toBe('SB_ERR_CONFIG');
      expect((err as Error).message).toContain('fs-a');
    }

    const first = h.as.addFunctionServer({ host, port });
    expect(() => h.as.addFunctionServer({ host, port })).toThrow(expect.objectContaining({ code: 'SB_ERR_CONFIG' }));
    // The registry is as it was plus the one good addition.
    expect(h.as.listFunctionServers().map((f) => f.id).sort()).toEqual([first.id, fsA.id].sort());
    await waitForAvailable(h.as, 2);
  });
});
