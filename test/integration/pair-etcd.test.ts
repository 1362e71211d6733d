import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationServer, ConfigError, Status, decodeBody, encodeRequest, requestIdOf, statusOf, type ApplicationServerOptions, type PairRole } from '../../src/index.js';
import { etcdUnavailable, startEtcd, type EtcdServer } from '../fixtures/etcd.js';
import { COUNT_ONCE, HOST, recordRoles, startStoppedOnce, usePairCleanup, waitRole, type PairCleanup, type RoleEvent } from '../fixtures/pair-cluster.js';
import { RawSocket } from '../fixtures/raw-socket.js';
import { waitFor } from '../fixtures/wait.js';

/*
 * The pair on an etcd election (pairMode 'etcd'): two in-process ASs campaigning on a real etcd on
 * loopback (test/fixtures/etcd.ts), each test under its own key prefix. etcd is paused with SIGSTOP
 * to take it away from both ASs at once.
 */

const NO_ETCD = etcdUnavailable();

describe.skipIf(NO_ETCD !== undefined)(`an AS pair on an etcd election${NO_ETCD ? ` (skipped: ${NO_ETCD})` : ''}`, () => {
  const c = usePairCleanup();
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcd();
  }, 20_000);
  afterAll(async () => {
    etcd?.resume();
    await etcd?.stop();
  });

  const roles = new Map<ApplicationServer, RoleEvent[]>();

  async function startEtcdAs(cl: PairCleanup, prefix: string, ttlSeconds: number, extra: Partial<ApplicationServerOptions> = {}): Promise<ApplicationServer> {
    const as = new ApplicationServer({
      port: 0,
      controlPort: 0,
      pairMode: 'etcd',
      pairEtcd: { endpoints: [etcd.url], prefix, ttlSeconds },
      ...extra,
    });
    roles.set(as, recordRoles(as));
    return startStoppedOnce(cl, as);
  }

  /** Two ASs on one election; resolves once one is active and the other standby. */
  async function startEtcdPair(cl: PairCleanup, ttlSeconds: number): Promise<{ active: ApplicationServer; standby: ApplicationServer; prefix: string }> {
    const prefix = `/sb-test-${randomBytes(4).toString('hex')}`;
    const a = await startEtcdAs(cl, prefix, ttlSeconds);
    await waitRole(a, 'active', 5000, 'the first AS');
    const b = await startEtcdAs(cl, prefix, ttlSeconds);
    await waitRole(b, 'standby', 5000, 'the second AS');
    return { active: a, standby: b, prefix };
  }

  /** Samples both roles every few ms until stopped; `both` counts samples with two actives. */
  function sampleRoles(x: ApplicationServer, y: ApplicationServer): { stop(): { samples: number; both: number; seen: Set<string> } } {
    let samples = 0;
    let both = 0;
    const seen = new Set<string>();
    const timer = setInterval(() => {
      const rx: PairRole = x.role;
      const ry: PairRole = y.role;
      samples++;
      seen.add(`${rx},${ry}`);
      if (rx === 'active' && ry === 'active') both++;
    }, 2);
    return {
      stop: () => {
        clearInterval(timer);
        return { samples, both, seen };
      },
    };
  }

  it('refuses an etcd pair without endpoints, with a fractional TTL, or mixed with UDP pair options', () => {
    expect(() => new ApplicationServer({ pairMode: 'etcd' })).toThrow(ConfigError);
    expect(() => new ApplicationServer({ pairMode: 'etcd', pairEtcd: { endpoints: [] } })).toThrow(/at least one etcd endpoint/);
    expect(() => new ApplicationServer({ pairMode: 'etcd', pairEtcd: { endpoints: ['etcd://127.0.0.1:2379'], ttlSeconds: 0.5 } })).toThrow(/whole number of seconds/);
    expect(() => new ApplicationServer({ pairMode: 'etcd', pairEtcd: { endpoints: ['etcd://127.0.0.1:2379'] }, pair: { port: 0, peer: { host: HOST, port: 1 }, insecure: true } })).toThrow(/not the UDP pair/);
  });

  it('elects exactly one active; the standby answers NOT_ACTIVE naming the active, and GET /pair shows the key, the TTL and the epoch (the leader key revision)', async () => {
    const { active, standby, prefix } = await startEtcdPair(c, 2);
    expect(roles.get(active)).toEqual([expect.objectContaining({ from: 'initial', to: 'active' })]);
    expect(roles.get(standby)).toEqual([expect.objectContaining({ from: 'initial', to: 'standby' })]);
    const sa = active.pairStatus();
    const sb = standby.pairStatus();
    expect(sa).toMatchObject({ mode: 'etcd', role: 'active', etcd: { key: `${prefix}/election/active`, ttlSeconds: 2, grantedTtlSeconds: 2 } });
    expect(sa?.epoch).toBeGreaterThan(0);
    expect(sb?.epoch).toBe(sa?.epoch);
    expect(sb?.sibling).toMatchObject({ nodeId: sa?.nodeId, role: 'active', epoch: sa?.epoch, clientEndpoint: { host: HOST, port: active.ports.port } });
    // leaseValidForMs is the active's alone (docs/pair.md section 8): GET /pair's JSON leaves it out on the standby.
    expect(sa?.etcd?.leaseValidForMs).toBeGreaterThan(0);
    const standbyEtcd = Object.keys(JSON.parse(JSON.stringify(sb?.etcd)) as object);
    expect(standbyEtcd).toEqual(expect.arrayContaining(['key', 'ttlSeconds', 'candidates']));
    expect(standbyEtcd).not.toContain('leaseValidForMs');
    expect(active.notReadyReason()).toBe('no function server available');
    expect(standby.notReadyReason()).toBe('not the active of its pair');
    await waitFor(() => active.pairStatus()?.siblingOnline === true && standby.pairStatus()?.siblingOnline === true, 'both to see the other candidate', 3000);

    const toB = await RawSocket.connect(standby.ports.port);
    c.defer(() => toB.destroy());
    toB.write(encodeRequest(7, COUNT_ONCE, { tag: 'standby' }, { budgetMs: 2000 }));
    const refused = await toB.nextFrame();
    expect(requestIdOf(refused)).toBe(7);
    expect(statusOf(refused)).toBe(Status.NOT_ACTIVE);
    const body = decodeBody(refused) as { code: string; active: { host: string; port: number } };
    expect(body.code).toBe('SB_ERR_NOT_ACTIVE');
    expect(body.active).toEqual({ host: HOST, port: active.ports.port });
  });

  it('two ASs starting together (repeatedly): one active and one standby, and the roles hold over two lease TTLs', async () => {
    // Both campaign and start watching within milliseconds: each sees the other's key put right
    // after its own. etcd3's ElectionObserver could take the later key for the leader then (the
    // active stepped down, or a candidate named its own later key and stayed initial).
    for (let round = 0; round < 4; round++) {
      const prefix = `/sb-test-${randomBytes(4).toString('hex')}`;
      const [x, y] = await Promise.all([startEtcdAs(c, prefix, 2), startEtcdAs(c, prefix, 2)]);
      await waitFor(() => [x.role, y.role].sort().join() === 'active,standby', `round ${round}: one active and one standby`, 5000, 10);
      const active = x.role === 'active' ? x : y;
      const standby = active === x ? y : x;
      expect(standby.pairStatus()?.sibling?.nodeId).toBe(active.pairStatus()?.nodeId);
      if (round === 0) {
        // Healthy etcd: the lease is renewed in time, again and again; nobody changes role.
        const changes = (roles.get(x)?.length ?? 0) + (roles.get(y)?.length ?? 0);
        const sampler = sampleRoles(x, y);
        await new Promise((r) => setTimeout(r, 4500));
        const s = sampler.stop();
        expect([...s.seen]).toEqual([x === active ? 'active,standby' : 'standby,active']);
        expect((roles.get(x)?.length ?? 0) + (roles.get(y)?.length ?? 0)).toBe(changes);
        expect(active.pairStatus()?.etcd?.leaseValidForMs).toBeGreaterThan(400);
      }
      await x.stop();
      await y.stop();
    }
  }, 30_000);

  it('a stopping active resigns: the standby is active well under the TTL (2 s), with a higher epoch', async () => {
    const { active, standby } = await startEtcdPair(c, 2);
    const epoch = active.pairStatus()?.epoch ?? 0;
    const sampler = sampleRoles(active, standby);
    const took = waitRole(standby, 'active', 5000, 'the standby');
    const t0 = performance.now();
    await active.stop();
    const e = await took;
    const ms = e.at - t0;
    const s = sampler.stop();
    expect(s.both).toBe(0);
    expect(ms).toBeLessThan(1000);
    expect(e.epoch).toBeGreaterThan(epoch);
    console.log(`hand-over by resignation: the standby was active ${ms.toFixed(0)} ms after stop() began (TTL 2000 ms)`);
  });

  it('etcd unreachable (SIGSTOP): the active steps down before its lease could expire, never two actives; when etcd returns the roles converge', async () => {
    const { active, standby } = await startEtcdPair(c, 2);
    const sampler = sampleRoles(active, standby);
    const down = waitRole(active, 'initial', 3000, 'the active');
    const t0 = performance.now();
    etcd.pause();
    let resumed = false;
    try {
      const e = await down;
      const ms = e.at - t0;
      // The lease (2 s) lives at etcd until at least the last keep-alive sent before the pause plus
      // 2 s; the active steps down 400 ms (the margin) before that instant.
      expect(ms).toBeLessThan(2000);
      expect(e.reason).toMatch(/lease/);
      expect(standby.role).not.toBe('active');
      // Hold etcd away well past the TTL: nobody may serve meanwhile.
      await new Promise((r) => setTimeout(r, 2500));
      expect(active.role).not.toBe('active');
      expect(standby.role).not.toBe('active');
      etcd.resume();
      resumed = true;
      console.log(`etcd paused: the active stepped down after ${ms.toFixed(0)} ms (TTL 2000 ms, margin 400 ms)`);
      await waitFor(() => [active.role, standby.role].sort().join() === 'active,standby', 'one active and one standby after etcd returned', 15_000, 20);
    } finally {
      if (!resumed) etcd.resume();
    }
    // Stable: still one active and one standby a lease later.
    await new Promise((r) => setTimeout(r, 2200));
    const s = sampler.stop();
    expect([active.role, standby.role].sort()).toEqual(['active', 'standby']);
    expect(s.both).toBe(0);
    expect(s.samples).toBeGreaterThan(100);
    console.log(`roles sampled ${s.samples} times; pairs seen: ${[...s.seen].join(' | ')}`);
  }, 30_000);

  it('designate standby on the active resigns: the other takes over and the old active queues behind it', async () => {
    const { active, standby } = await startEtcdPair(c, 2);
    const sampler = sampleRoles(active, standby);
    const took = waitRole(standby, 'active', 3000, 'the standby');
    active.designate('standby');
    await took;
    await waitRole(active, 'standby', 3000, 'the old active');
    // `active` cannot jump etcd's order: it stays a standby.
    active.designate('active');
    await new Promise((r) => setTimeout(r, 300));
    expect(active.role).toBe('standby');
    expect(sampler.stop().both).toBe(0);
  });
});
