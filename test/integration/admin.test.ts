import { afterEach, describe, expect, it } from 'vitest';
import { AdminServer, ApplicationServer, Client, FunctionServer, silentLogger } from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

describe('admin surface', () => {
  it('serves /healthz and /functionservers as JSON, refuses writes and unknown paths', async () => {
    const as = new ApplicationServer();
    const { controlPort } = await as.start();
    stops.push(() => as.stop());
    const admin = new AdminServer(as, silentLogger);
    const port = await admin.listen(0, '127.0.0.1');
    stops.push(() => admin.close());
    const available = new Promise<void>((r) => as.on('fs-state', (i) => i.state === 'available' && r()));
    const fs = new FunctionServer({ name: 'fs-admin', plugins: [EchoPlugin], applicationServer: { host: '127.0.0.1', port: controlPort } });
    await fs.start();
    stops.push(() => fs.stop());
    await available;

    const base = `http://127.0.0.1:${port}`;
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, functionServers: 1 });

    const list = (await (await fetch(`${base}/functionservers`)).json()) as { name: string; state: string; serviceKeys: number[] }[];
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ name: 'fs-admin', state: 'available', serviceKeys: [1, 2] });

    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/functionservers`, { method: 'POST' })).status).toBe(405);
  });
});

describe('metrics', () => {
  it('serves Prometheus text with relayed and local answers by status, per-FS counts and states', async () => {
    const as = new ApplicationServer();
    const { port: clientPort, controlPort } = await as.start();
    stops.push(() => as.stop());
    const admin = new AdminServer(as, silentLogger);
    const port = await admin.listen(0, '127.0.0.1');
    stops.push(() => admin.close());
    const available = new Promise<void>((r) => as.on('fs-state', (i) => i.state === 'available' && r()));
    const fs = new FunctionServer({ name: 'fs-m', plugins: [EchoPlugin], applicationServer: { host: '127.0.0.1', port: controlPort } });
    await fs.start();
    stops.push(() => fs.stop());
    await available;
    const client = await Client.connect({ port: clientPort });
    stops.push(() => client.close());
    for (let i = 0; i < 3; i++) await client.call(1, i);
    await expect(client.call(4242, {})).rejects.toMatchObject({ code: 'SB_ERR_SERVICE_NOT_FOUND' });

    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toContain('switchboard_answers_relayed_total{status="OK"} 3');
    expect(text).toContain('switchboard_answers_local_total{status="SERVICE_NOT_FOUND"} 1');
    expect(text).toContain('switchboard_fs_served_total{fs="fs-m"} 3');
    expect(text).toContain('switchboard_fs_state{fs="fs-m",state="available"} 1');
    expect(text).toContain('switchboard_fs_state{fs="fs-m",state="draining"} 0');
    expect(text).toContain('switchboard_client_connections 1');
  });
});

describe('listening on a port that is taken', () => {
  it('fails start() with SB_ERR_CONFIG and a message that says what to do', async () => {
    const first = new ApplicationServer();
    const { port } = await first.start();
    stops.push(() => first.stop());
    const second = new ApplicationServer({ port });
    await expect(second.start()).rejects.toMatchObject({ code: 'SB_ERR_CONFIG', message: expect.stringMatching(/EADDRINUSE.*pick another port/) });
    await second.stop();
  });
});
