import { describe, expect, it } from 'vitest';
import { AdminServer, ApplicationServer, silentLogger } from '../../src/index.js';
import { useHarness, waitForAvailable } from '../fixtures/cluster.js';
import { ECHO_DELAYED } from '../../src/plugins/samples/echo-plugin.js';

const h = useHarness();

/** One FS named `name` behind an AS, with the admin surface on a free port; resolves its base URL. */
async function withAdmin(name: string): Promise<string> {
  await h.cluster({}, [{ name }]);
  const admin = new AdminServer(h.as, silentLogger);
  const port = await admin.listen(0, '127.0.0.1');
  h.defer(() => admin.close());
  return `http://127.0.0.1:${port}`;
}

describe('admin surface', () => {
  it('serves /healthz and /functionservers as JSON, refuses writes and unknown paths', async () => {
    const base = await withAdmin('fs-admin');
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, functionServers: 1 });

    const list = (await (await fetch(`${base}/functionservers`)).json()) as { name: string; state: string; serviceKeys: number[] }[];
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ name: 'fs-admin', state: 'available' });
    expect(list[0].serviceKeys).toContain(1);

    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/functionservers`, { method: 'PUT' })).status).toBe(405);
  });

  it('serves Prometheus text with relayed and local answers by status, per-FS counts and states', async () => {
    const base = await withAdmin('fs-m');
    const client = await h.client();
    for (let i = 0; i < 3; i++) await client.call(1, i);
    await expect(client.call(4242, {})).rejects.toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND' });

    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toContain('switchboard_answers_relayed_total{status="OK"} 3');
    expect(text).toContain('switchboard_answers_local_total{status="SERVICE_NOT_FOUND"} 1');
    expect(text).toContain('switchboard_fs_served_total{fs="fs-m"} 3');
    expect(text).toContain('switchboard_fs_state{fs="fs-m",state="available"} 1');
    expect(text).toContain('switchboard_fs_state{fs="fs-m",state="draining"} 0');
    expect(text).toContain('switchboard_client_connections 1');
    expect(text).toContain('switchboard_hedge_losers_total 0');
    // The three relayed calls: durations by service key, cumulative buckets; the unknown key is not there.
    expect(text).toContain('switchboard_request_duration_seconds_count{service="1"} 3');
    expect(text).toContain('switchboard_request_duration_seconds_bucket{le="+Inf",service="1"} 3');
    expect(text).not.toContain('service="4242"');
  });

  it('times each request from the AS taking it to its answer: a 60 ms call lands above le 0.05 and within le 0.1', async () => {
    const base = await withAdmin('fs-t');
    const client = await h.client();
    await client.call(ECHO_DELAYED, { ms: 60 });
    const text = await (await fetch(`${base}/metrics`)).text();
    const bucket = (le: string): string | undefined => text.match(new RegExp(`switchboard_request_duration_seconds_bucket\\{le="${le}",service="${ECHO_DELAYED}"\\} (\\d+)`))?.[1];
    expect([bucket('0.05'), bucket('0.1'), bucket('\\+Inf')]).toEqual(['0', '1', '1']);
    const sum = Number(text.match(new RegExp(`switchboard_request_duration_seconds_sum\\{service="${ECHO_DELAYED}"\\} ([0-9.]+)`))?.[1]);
    expect(sum).toBeGreaterThanOrEqual(0.06);
    expect(sum).toBeLessThan(0.1);
  });

  it('two FSs that share a name (one added by endpoint, named by its DESCRIBE) get series by id, each with its own state', async () => {
    const base = await withAdmin('fs-twin');
    const twin = await h.startFs({ name: 'fs-twin', register: false });
    const info = h.as.addFunctionServer({ ...twin.address(), name: 'dup' });
    await waitForAvailable(h.as, 2);
    expect(h.as.drain(info.id)).toBe(true);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain(`switchboard_fs_state{fs="fs-twin",state="available"} 1`);
    expect(text).toContain(`switchboard_fs_state{fs="${info.id}",state="draining"} 1`);
    expect(text).toContain(`switchboard_fs_state{fs="${info.id}",state="available"} 0`);
  });
});

describe('listening on a port that is taken', () => {
  it('fails start() with SB_ERR_CONFIG and a message that says what to do', async () => {
    const first = await h.startAs();
    const second = new ApplicationServer({ port: h.port });
    h.defer(() => second.stop());
    await expect(second.start()).rejects.toMatchObject({ code: 'SB_ERR_CONFIG', message: expect.stringMatching(/EADDRINUSE.*pick another port/) });
    expect(first.ports.port).toBe(h.port);
  });
});
