import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { container as rootContainer } from 'tsyringe';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationServer, Client, FunctionServer, type ApplicationServerOptions, type FunctionServerOptions } from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { createMetrics } from '../../src/application-server/admin/metrics.js';
import { RateLimitedLog } from '../../src/common/rate-limited-log.js';
import { createEtcdClient, LeasedKey } from '../../src/discovery/etcd-registry.js';
import { etcdUnavailable, startEtcd, type EtcdServer } from '../fixtures/etcd.js';
import { waitForAvailable, waitForRegistry } from '../fixtures/cluster.js';
import { FS_NAME, WHO_AM_I, WhoAmIPlugin } from '../fixtures/test-plugins.js';
import { freePort } from '../fixtures/ports.js';
import { waitFor } from '../fixtures/wait.js';

/*
 * The etcd registry (docs/registry.md) against a real etcd on loopback with a temporary data
 * directory (test/fixtures/etcd.ts). Each test has its own key prefix; etcd is paused with SIGSTOP
 * to take it away from everyone at once.
 */

const NO_ETCD = etcdUnavailable();
const DIST_CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;

describe.skipIf(NO_ETCD !== undefined)(`the etcd registry${NO_ETCD ? ` (skipped: ${NO_ETCD})` : ''}`, () => {
  let etcd: EtcdServer;
  let kv: Etcd3;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    kv = new Etcd3({ hosts: `127.0.0.1:${etcd.clientPort}` });
  }, 20_000);
  afterAll(async () => {
    kv?.close();
    etcd?.resume();
    await etcd?.stop();
  });
  afterEach(async () => {
    etcd.resume();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const newPrefix = (): string => `/sb-reg-${randomBytes(4).toString('hex')}`;

  async function startFs(name: string, prefix: string, extra: Partial<FunctionServerOptions> = {}): Promise<FunctionServer> {
    const container = rootContainer.createChildContainer();
    container.register(FS_NAME, { useValue: name });
    const fs = new FunctionServer({
      name,
      plugins: [EchoPlugin, WhoAmIPlugin],
      container,
      refreshMs: 200,
      heartbeatMs: 500,
      drainTimeoutMs: 2000,
      registry: { endpoints: [etcd.url], prefix },
      ...extra,
    });
    await fs.start();
    cleanups.push(() => fs.stop());
    return fs;
  }

  async function startAs(prefix: string, extra: Partial<ApplicationServerOptions> = {}): Promise<ApplicationServer> {
    const as = new ApplicationServer({ port: 0, controlPort: 0, heartbeatMs: 500, loadRefreshMs: 200, strategy: 'round-robin', registry: { endpoints: [etcd.url], prefix, removeGraceMs: 3000 }, ...extra });
    await as.start();
    cleanups.push(() => as.stop());
    return as;
  }

  async function connect(prefix: string): Promise<Client> {
    const c = await Client.connect({ registry: etcd.url, registryPrefix: prefix, defaultTimeoutMs: 3000 });
    cleanups.push(() => c.close());
    return c;
  }

  it('an FS with a registry and no applicationServer is found by an AS with a registry and serves a client that found the AS in etcd; LOAD comes over the pool connection', async () => {
    const prefix = newPrefix();
    const as = await startAs(prefix);
    const fs = await startFs('fs-found', prefix);
    await waitForAvailable(as, 1, 10_000);
    const info = as.listFunctionServers()[0];
    expect(info).toMatchObject({ id: 'fs-found', name: 'fs-found', source: 'manual', state: 'available' });

    // The client read <prefix>/as/ and dialled this AS's client port.
    await waitFor(() => as.registry?.registered === true, 'the AS to register in etcd', 10_000);
    const c = await connect(prefix);
    expect(await c.call<string>(WHO_AM_I)).toBe('fs-found');

    // No control port link anywhere: the load report came on the pool connection, and keeps coming.
    expect(as.controlConnections).toBe(0);
    expect(fs.registeredWith).toBe(0);
    await waitFor(() => (as.listFunctionServers()[0]?.loadAgeMs ?? Infinity) < 1000, 'a LOAD report on the pool connection', 5000);
    const first = as.manager.get('fs-found')?.loadReceivedAt ?? 0;
    await waitFor(() => (as.manager.get('fs-found')?.loadReceivedAt ?? 0) > first, 'a later LOAD report', 5000);
    expect(as.listFunctionServers()[0].loadAgeMs).toBeLessThan(1000);
    expect(as.listFunctionServers()[0].load?.inflight).toBe(0);
    expect(as.manager.counters.droppedLoads.get('not-registered') ?? 0).toBe(0);

    // The registration itself, as other tools see it.
    const value = JSON.parse((await kv.get(`${prefix}/fs/fs-found`).string()) ?? 'null');
    expect(value).toMatchObject({ name: 'fs-found', host: '127.0.0.1', port: fs.address().port, poolType: 0, standby: false, weight: 1 });
    expect(value.services).toContain(WHO_AM_I);
  });

  it('an FS that stops (drains) leaves the registry; an FS killed with SIGKILL leaves once its short lease expires', async () => {
    const prefix = newPrefix();
    const as = await startAs(prefix);
    const fs = await startFs('fs-drains', prefix);
    await waitForAvailable(as, 1, 10_000);
    await fs.stop();
    await waitForRegistry(as, (l) => l.length === 0, 'the drained FS to leave', 5000);
    expect(await kv.get(`${prefix}/fs/fs-drains`).string()).toBeNull();

    // A real process, killed without a chance to drain: only its lease (2 s) can take it away.
    const child: ChildProcess = spawn(
      process.execPath,
      [DIST_CLI, 'fs', '--registry', etcd.url, '--registry-prefix', prefix, '--registry-ttl-seconds', '2', '--plugins', 'echo', '--port', '0', '--name', 'fs-doomed', '--heartbeat-ms', '500', '--log-level', 'warn'],
      { stdio: 'ignore' },
    );
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await waitForAvailable(as, 1, 15_000);
    expect(as.listFunctionServers().map((f) => f.id)).toEqual(['fs-doomed']);
    const killedAt = Date.now();
    child.kill('SIGKILL');
    await waitForRegistry(as, (l) => l.length === 0, 'the killed FS to leave when its lease expires', 15_000);
    // Not at once: the AS kept it (unavailable, probing) until etcd expired its key.
    expect(Date.now() - killedAt).toBeGreaterThan(1000);
    expect(await kv.get(`${prefix}/fs/fs-doomed`).string()).toBeNull();
  }, 40_000);

  it('refuses and counts values that do not parse; two prefixes on one etcd do not see each other', async () => {
    const a = newPrefix();
    const b = newPrefix();
    const asA = await startAs(a);
    const asB = await startAs(b);
    await kv.put(`${a}/fs/garbage`).value('{not json');
    await kv.put(`${a}/fs/liar`).value(JSON.stringify({ name: 'someone-else', host: '127.0.0.1', port: 1234 }));
    await kv.put(`${a}/fs/bad-port`).value(JSON.stringify({ name: 'bad-port', host: '127.0.0.1', port: 70000 }));
    await startFs('fs-in-b', b);
    await waitForAvailable(asB, 1, 10_000);
    await waitFor(() => (asA.registry?.watcher.refusedTotal ?? 0) >= 3, 'the three bad values to be refused', 10_000);
    expect(asA.registry?.watcher.refused.get('malformed')).toBe(2);
    expect(asA.registry?.watcher.refused.get('name-mismatch')).toBe(1);
    expect(asA.listFunctionServers()).toEqual([]);
    expect(asB.listFunctionServers().map((f) => f.id)).toEqual(['fs-in-b']);
    expect(asB.registry?.watcher.refusedTotal).toBe(0);
    // /metrics: every reason, from 0, on an AS with a registry.
    const metricsA = await createMetrics(asA).metrics();
    for (const [reason, n] of [['malformed', 2], ['name-mismatch', 1], ['host-not-allowed', 0], ['name-taken', 0], ['registry-full', 0]] as const) {
      expect(metricsA).toContain(`switchboard_registry_refused_total{reason="${reason}"} ${n}\n`);
    }
    expect(await createMetrics(asB).metrics()).toContain('switchboard_registry_refused_total{reason="malformed"} 0\n');

    // A re-read does not count the same bad value again.
    const resyncs = asA.registry?.watcher.resyncs ?? 0;
    await asA.registry?.watcher.resync();
    expect(asA.registry?.watcher.resyncs).toBeGreaterThan(resyncs);
    expect(asA.registry?.watcher.refused.get('malformed')).toBe(2);

    // Each client finds its own cluster's AS.
    await waitFor(() => asB.registry?.registered === true, 'AS B to register', 10_000);
    const cb = await connect(b);
    expect(await cb.call<string>(WHO_AM_I)).toBe('fs-in-b');
    const keysA = await kv.getAll().prefix(`${a}/as/`).keys();
    expect(keysA).toHaveLength(1);
    expect(keysA[0]).toBe(`${a}/as/${asA.registry?.name}`);
  }, 30_000);

  it('with etcd paused, calls keep working through the known FS; after it resumes an FS started meanwhile appears', async () => {
    const prefix = newPrefix();
    const as = await startAs(prefix);
    await startFs('fs-known', prefix);
    await waitForAvailable(as, 1, 10_000);
    await waitFor(() => as.registry?.registered === true, 'the AS to register in etcd', 10_000);
    const c = await connect(prefix);
    expect(await c.call<string>(WHO_AM_I)).toBe('fs-known');

    etcd.pause();
    const late = await startFs('fs-late', prefix);
    const during: string[] = [];
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      during.push(await c.call<string>(WHO_AM_I));
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(new Set(during)).toEqual(new Set(['fs-known']));
    expect(late.registeredInRegistry).toBe(false);
    expect(as.listFunctionServers().map((f) => f.id)).toEqual(['fs-known']);
    etcd.resume();

    await waitForAvailable(as, 2, 20_000);
    expect(as.listFunctionServers().map((f) => f.id).sort()).toEqual(['fs-known', 'fs-late']);
    const after = new Set<string>();
    for (let i = 0; i < 10; i++) after.add(await c.call<string>(WHO_AM_I));
    expect(after).toEqual(new Set(['fs-known', 'fs-late']));
  }, 45_000);
});

describe('an etcd that is down from the start (nothing listens on its port)', () => {
  it("first registrations that fail log 'cannot register in etcd; retrying' (registry.md section 4), not 'registry lease lost': there was no lease", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    const client = createEtcdClient([`etcd://127.0.0.1:${await freePort()}`]);
    const key = new LeasedKey(client, '/sb-down/fs/fs-early', () => '{}', 10, logger, new RateLimitedLog(logger));
    try {
      key.start();
      await waitFor(() => lines.filter((l) => l.level === 40).length >= 2, 'two failed registrations', 10_000);
      const warned = lines.filter((l) => l.level === 40);
      expect(new Set(warned.map((l) => l.msg))).toEqual(new Set(['cannot register in etcd; retrying']));
      expect(warned[0]).toMatchObject({ key: '/sb-down/fs/fs-early', err: expect.any(String) });
      expect(key.registered).toBe(false);
    } finally {
      await key.stop(100);
      client.close();
    }
  }, 20_000);
});
