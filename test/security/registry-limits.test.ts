import { describe, expect, it } from 'vitest';
import { AdminServer, EventKind, HEADER_SIZE, Status, encodeEventRequest, silentLogger, type Client } from '../../src/index.js';
import { MAX_FS_SERIES } from '../../src/application-server/admin/metrics.js';
import { expectRefusedAndClosed, expectTrafficUnharmed, useHarness, waitFor, waitForRegistry } from '../fixtures/cluster.js';
import { freePort } from '../fixtures/ports.js';
import { ControlPeer, type EventAnswer, FakeFs, fsInfo, helloFor, quantile, steadyBackground, waitForLeft } from './registry-fixtures.js';

// The registry is bounded: by entries, keys per entry, host policy, control frame size and time
// (unreachable FSs are forgotten), and so is what /metrics shows of it. Each test keeps a good
// client calling echo throughout and checks its answers.

const h = useHarness();

/** `n` distinct loopback endpoints on one port nobody listens on: 127.0.<i/250 + 1>.<i%250 + 1>. */
function loopbackEndpoints(n: number, port: number): { host: string; port: number }[] {
  return Array.from({ length: n }, (_, i) => ({ host: `127.0.${Math.floor(i / 250) + 1}.${(i % 250) + 1}`, port }));
}

/** Latencies (ms) of sequential echo calls on `lanes` lanes until `until()` holds (at least `min` calls). */
async function echoLatencies(c: Client, lanes: number, min: number, until: () => boolean = () => true): Promise<number[]> {
  const out: number[] = [];
  let seq = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (out.length < min || !until()) {
        const body = { seq: seq++ };
        const t = performance.now();
        const got = await c.call<{ seq: number }>(1, body, { timeoutMs: 2000 });
        out.push(performance.now() - t);
        if (got.seq !== body.seq) throw new Error(`wrong answer ${JSON.stringify(got)} for ${JSON.stringify(body)}`);
      }
    }),
  );
  return out;
}

describe('HELLO flood', () => {
  it('holds at most maxFunctionServers entries; later HELLOs get OVERLOADED SB_ERR_REGISTRY_FULL; good traffic keeps its latency', async () => {
    const MAX = 20;
    await h.cluster({ maxFunctionServers: MAX }, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h, 2);
    const c = await h.client();
    const port = await freePort();

    await echoLatencies(c, 2, 200); // warm-up
    const before = await echoLatencies(c, 2, 400);

    // 40 links × 25 HELLOs, each a new name and endpoint, each link sending the next as soon as
    // the AS answers the last. A link holds one FS, so once one of its HELLOs is admitted the rest
    // are refused BAD_REQUEST; the others keep meeting the full registry. (The flooders run on the
    // same event loop as the AS and the good client: what they cost themselves is charged to the
    // measurement too.)
    const LINKS = 40;
    const PER_LINK = 25;
    const endpoints = loopbackEndpoints(LINKS * PER_LINK, port);
    const links = await Promise.all(Array.from({ length: LINKS }, () => ControlPeer.connect(h)));
    let flooding = true;
    const answers: EventAnswer[] = [];
    const flood = Promise.all(
      links.map(async (link, l) => {
        for (let i = 0; i < PER_LINK; i++) {
          const n = l * PER_LINK + i;
          answers.push(await link.hello(helloFor(`flood-${n}`, endpoints[n], [500 + (n % 7)])));
        }
      }),
    ).finally(() => (flooding = false));
    const during = await echoLatencies(c, 2, 50, () => !flooding);
    await flood;

    const ok = answers.filter((a) => a.status === Status.OK).length;
    const refused = answers.filter((a) => a.status !== Status.OK);
    expect(answers).toHaveLength(LINKS * PER_LINK);
    expect(ok).toBe(MAX - 1); // fs-a holds one place
    const full = refused.filter((a) => a.body?.code === 'SB_ERR_REGISTRY_FULL');
    expect(new Set(refused.map((a) => `${a.status}/${a.body?.code}`))).toEqual(new Set([`${Status.OVERLOADED}/SB_ERR_REGISTRY_FULL`, `${Status.BAD_REQUEST}/SB_ERR_BAD_REQUEST`]));
    expect(full.length).toBeGreaterThan(LINKS * PER_LINK / 2);
    expect(h.as.manager.counters.refusedHellos.get('SB_ERR_REGISTRY_FULL')).toBe(full.length);
    expect(h.as.manager.size).toBe(MAX);
    expect(fsInfo(h.as, 'fs-a')?.state).toBe('available');
    // A real FS arriving now is refused too, until a place frees up.
    const late = await ControlPeer.connect(h);
    expect((await late.hello(helloFor('fs-late', { host: '127.0.0.1', port: 1 }))).body?.code).toBe('SB_ERR_REGISTRY_FULL');

    const p99Before = quantile(before, 0.99);
    const p99During = quantile(during, 0.99);
    console.log(
      `HELLO flood: ${answers.length} HELLOs on ${LINKS} links, ${ok} admitted, ${refused.length} refused; ` +
        `good client p50/p99 before ${quantile(before, 0.5).toFixed(2)}/${p99Before.toFixed(2)} ms (${before.length} calls), ` +
        `during ${quantile(during, 0.5).toFixed(2)}/${p99During.toFixed(2)} ms (${during.length} calls)`,
    );
    expect(p99During).toBeLessThan(50 * p99Before + 50);
    await expectTrafficUnharmed(bg);
  });
});

describe('per-HELLO and per-frame limits', () => {
  it('refuses more keys than maxServicesPerFs (SB_ERR_LIMIT), a host over 253 chars (schema), and closes a control link whose frame is over maxControlBodyBytes', async () => {
    await h.cluster({ maxServicesPerFs: 8, maxControlBodyBytes: 4096 }, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    const ctl = await ControlPeer.connect(h);
    const fake = await FakeFs.start(h, { name: 'fs-wide', services: [] });

    const nine = await ctl.hello(helloFor('fs-wide', fake.endpoint, [1, 2, 3, 4, 5, 6, 7, 8, 9]));
    expect(nine.status).toBe(Status.BAD_REQUEST);
    expect(nine.body?.code).toBe('SB_ERR_LIMIT');
    expect(nine.body?.message).toMatch(/9 service keys.*at most 8/);
    expect(h.as.manager.counters.refusedHellos.get('SB_ERR_LIMIT')).toBe(1);

    const longHost = await ctl.hello(helloFor('fs-long', { host: 'a'.repeat(254), port: 4000 }));
    expect(longHost.status).toBe(Status.BAD_REQUEST);
    expect(longHost.body?.code).toBe('SB_ERR_BAD_REQUEST');
    expect(longHost.body?.message).toMatch(/endpoint\.host/);
    // 253 passes the schema and meets the next rule (not loopback): the 254 above was the schema's.
    const maxHost = await ctl.hello(helloFor('fs-long', { host: 'a'.repeat(253), port: 4000 }));
    expect(maxHost.body?.code).toBe('SB_ERR_HOST_NOT_ALLOWED');
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-a']);
    expect(fake.accepted).toBe(0);
    expect(ctl.isClosed).toBe(false);

    // A frame header announcing 4097 body bytes on a control port capped at 4096.
    const raw = await h.raw(h.controlPort);
    const frame = encodeEventRequest(EventKind.HELLO, 1, { pad: 'x'.repeat(4100) }, true);
    expect(frame.length - HEADER_SIZE).toBeGreaterThan(4096);
    raw.write(frame);
    await expectRefusedAndClosed(raw, 'SB_ERR_FRAME_TOO_LARGE');
    expect(h.as.closedConnections().control.get('protocol')).toBe(1);
    // Other links, and the FS, are untouched.
    expect(ctl.isClosed).toBe(false);
    expect((await ctl.request(EventKind.DRAIN, {})).status).toBe(Status.OK);
    const a = fsInfo(h.as, 'fs-a');
    expect(a?.state).toBe('available');
    expect(a?.registeredFrom).toBeDefined();
    expect(h.as.manager.get('fs-a')?.held).toBe(true);
    await expectTrafficUnharmed(bg);
  });
});

describe('host policy', () => {
  it('without a join secret, a HELLO whose endpoint is not loopback is refused SB_ERR_HOST_NOT_ALLOWED and nothing joins', async () => {
    await h.cluster({}, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    const joined: string[] = [];
    h.as.on('fs-joined', (i) => joined.push(i.id));
    const ctl = await ControlPeer.connect(h);

    const answer = await ctl.hello(helloFor('fs-far', { host: '198.18.0.9', port: 4000 }));
    expect(answer.status).toBe(Status.BAD_REQUEST);
    expect(answer.body?.code).toBe('SB_ERR_HOST_NOT_ALLOWED');
    expect(answer.body?.message).toMatch(/not loopback/);
    // A name is not an address the policy can vouch for either.
    expect((await ctl.hello(helloFor('fs-named', { host: 'localhost.example', port: 4000 }))).body?.code).toBe('SB_ERR_HOST_NOT_ALLOWED');
    expect(h.as.manager.counters.refusedHellos.get('SB_ERR_HOST_NOT_ALLOWED')).toBe(2);
    expect(joined).toEqual([]);
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-a']);
    await expectTrafficUnharmed(bg);
  });

  it("with allowedFsHosts ['127.0.0.2'], an FS advertising 127.0.0.1 is refused SB_ERR_HOST_NOT_ALLOWED and never dialled", async () => {
    // The good FS listens on 127.0.0.2, the one allowed host.
    const [good] = await h.cluster({ allowedFsHosts: ['127.0.0.2'] }, [{ name: 'fs-a', host: '127.0.0.2' }]);
    expect(good.address().host).toBe('127.0.0.2');
    const bg = await steadyBackground(h);
    const elsewhere = await FakeFs.start(h, { name: 'fs-lo', services: [{ key: 1 }] });
    const ctl = await ControlPeer.connect(h);

    const answer = await ctl.hello(helloFor('fs-lo', elsewhere.endpoint, [1]));
    expect(answer.status).toBe(Status.BAD_REQUEST);
    expect(answer.body?.code).toBe('SB_ERR_HOST_NOT_ALLOWED');
    expect(answer.body?.message).toMatch(/allowed hosts/);
    expect(h.as.manager.counters.refusedHellos.get('SB_ERR_HOST_NOT_ALLOWED')).toBe(1);
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-a']);
    await expectTrafficUnharmed(bg);
    expect(elsewhere.accepted).toBe(0); // nothing dialled it, during all that traffic
  });
});

describe('forgetting unreachable FSs', () => {
  const FORGET = { forgetUnavailableAfterMs: 300, reconnectBaseMs: 20, reconnectCapMs: 60, ejectAfterFailures: 2, connectTimeoutMs: 300 };

  it('a HELLO-registered FS whose port is dead becomes unavailable, is forgotten (fs-left, counters.forgotten) and not dialled again; an FS added by address is kept', async () => {
    await h.cluster(FORGET, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    // Ports whose process is gone: the address still takes the connection, and it closes at once.
    const ghostPort = await FakeFs.start(h, { name: 'fs-ghost', services: [], slam: true });
    const manualPort = await FakeFs.start(h, { name: 'fs-manual', services: [], slam: true });
    h.as.addFunctionServer({ host: '127.0.0.1', port: manualPort.port, name: 'fs-manual', services: [{ key: 1, idempotent: true }] });
    const states: string[] = [];
    h.as.on('fs-state', (i) => {
      if (i.id === 'fs-ghost') states.push(i.state);
    });

    const ctl = await ControlPeer.connect(h);
    const left = waitForLeft(h.as, 'fs-ghost', 3000);
    const t0 = performance.now();
    expect((await ctl.hello(helloFor('fs-ghost', ghostPort.endpoint, [1]))).status).toBe(Status.OK);
    expect(await left).toMatch(/unavailable for \d+ ms/);
    const forgottenAfter = performance.now() - t0;
    expect(states).toEqual(['unavailable']);
    expect(h.as.manager.counters.forgotten).toBe(1);
    // Its control link is closed too: it says HELLO again when it comes back.
    await ctl.waitClosed();
    expect(ghostPort.accepted).toBeGreaterThanOrEqual(2);

    // Not dialled again, while the manual FS (same dead-port situation) keeps being probed.
    const ghostDials = ghostPort.accepted;
    const manualDials = manualPort.accepted;
    await waitFor(() => manualPort.accepted >= manualDials + 5, 'five more probes of the manual FS', 3000);
    expect(ghostPort.accepted).toBe(ghostDials);
    const manual = fsInfo(h.as, 'fs-manual');
    expect(manual?.state).toBe('unavailable');
    expect(manual?.source).toBe('manual');
    expect(Date.now() - (h.as.manager.get('fs-manual')?.unavailableSince ?? Date.now())).toBeGreaterThan(300);
    expect(h.as.listFunctionServers().map((f) => f.id).sort()).toEqual(['fs-a', 'fs-manual']);
    console.log(`forgotten ${forgottenAfter.toFixed(0)} ms after its HELLO (${ghostDials} dials); the manual FS was probed ${manualPort.accepted - manualDials} more times meanwhile`);
    await expectTrafficUnharmed(bg);
  });

  it('an endpoint whose DESCRIBE answer is malformed is re-dialled with backoff, marked unavailable and forgotten: it does not hold a place for ever', async () => {
    await h.cluster(FORGET, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    const junk = await FakeFs.start(h, { name: 'fs-junk', services: [], describe: { name: 42, services: 'all of them' } });
    const ctl = await ControlPeer.connect(h);
    const left = waitForLeft(h.as, 'fs-junk', 3000);
    expect((await ctl.hello(helloFor('fs-junk', junk.endpoint, [1]))).status).toBe(Status.OK);
    await waitFor(() => junk.accepted >= 1, 'the AS to dial fs-junk');
    // Never counted as a ready connection, never routed to.
    expect(h.as.manager.get('fs-junk')?.pool.readyCount ?? 0).toBe(0);
    expect(await left).toMatch(/unavailable for/);
    expect(junk.accepted).toBeGreaterThanOrEqual(2); // re-dialled, not stuck on the first answer
    expect(junk.requests).toHaveLength(0);
    expect(h.as.manager.counters.forgotten).toBe(1);
    await ctl.waitClosed();
    await expectTrafficUnharmed(bg);
  });
});

describe('metrics cardinality', () => {
  it(`/metrics shows at most MAX_FS_SERIES (${MAX_FS_SERIES}) fs label values plus "_other", however many FSs the registry holds`, async () => {
    const EXTRA = MAX_FS_SERIES + 15;
    await h.cluster({ maxFunctionServers: EXTRA + 10 }, [{ name: 'fs-a' }]);
    const bg = await steadyBackground(h);
    const admin = new AdminServer(h.as, silentLogger);
    const adminPort = await admin.listen(0, '127.0.0.1');
    h.defer(() => admin.close());

    const port = await freePort();
    const endpoints = loopbackEndpoints(EXTRA, port);
    // One control link per FS: a link registers one.
    const links = await Promise.all(endpoints.map(() => ControlPeer.connect(h)));
    const answers = await Promise.all(endpoints.map((ep, i) => links[i].hello(helloFor(`m-${String(i).padStart(3, '0')}`, ep, [600]))));
    expect(answers.every((a) => a.status === Status.OK)).toBe(true);
    await waitForRegistry(h.as, (l) => l.length === EXTRA + 1, `${EXTRA + 1} entries`);

    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    const labels = new Set([...text.matchAll(/\bfs="([^"]*)"/g)].map((m) => m[1]));
    expect(labels.size).toBeLessThanOrEqual(MAX_FS_SERIES + 1);
    expect(labels.has('_other')).toBe(true);
    // The rest are summed under _other: every FS is in exactly one state.
    const states = [...text.matchAll(/^switchboard_fs_state\{fs="_other",state="(\w+)"\} (\d+)$/gm)];
    expect(states.reduce((a, m) => a + Number(m[2]), 0)).toBe(EXTRA + 1 - MAX_FS_SERIES);
    console.log(`/metrics: ${EXTRA + 1} FSs, ${labels.size} fs label values, ${text.length} bytes`);
    await expectTrafficUnharmed(bg);
  });
});
