import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ChannelClosedError, Client, ConnectError, Status, type SwitchboardError } from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { useHarness, waitFor } from '../fixtures/cluster.js';
import { FaultyPlugin, NEVER_ANSWERS } from '../fixtures/test-plugins.js';

const h = useHarness();

/** A port that was free a moment ago and has nothing listening on it now. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function settleAll(ps: Promise<unknown>[]): Promise<PromiseSettledResult<unknown>[]> {
  return Promise.all(ps.map((p) => p.then((value) => ({ status: 'fulfilled' as const, value }), (reason: unknown) => ({ status: 'rejected' as const, reason }))));
}

describe('client', () => {
  it('rejects connect to a closed port with ConnectError', async () => {
    const port = await closedPort();
    const err = await Client.connect({ port }).then(
      async (c) => {
        await c.close();
        throw new Error('connect should have failed');
      },
      (e: SwitchboardError) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.code).toBe('SB_ERR_CONNECT');
    expect(err.message).toContain(String(port));
    // Asked once, not once per layer.
    expect(err.message.match(/running\?/g)).toHaveLength(1);
    const two = await Client.connect({ endpoints: [{ host: '127.0.0.1', port }, { host: '127.0.0.1', port: await closedPort() }] }).then(
      () => undefined,
      (e: SwitchboardError) => e,
    );
    expect(two?.message).toMatch(/^cannot connect to any application server/);
    expect(two?.message.match(/running\?/g)).toHaveLength(1);
  });

  it('rejects pending calls with ChannelClosedError when the AS stops (reconnection off)', async () => {
    await h.cluster({}, [{ name: 'fs-1', plugins: [EchoPlugin, FaultyPlugin] }]);
    const c = await h.client({ reconnect: false });
    const pending = [c.call(NEVER_ANSWERS, {}), c.call(NEVER_ANSWERS, {}), c.call(2, { ms: 250, value: 'late' })];
    await waitFor(() => h.as.listFunctionServers()[0]?.inflight === 3, 'the three calls to reach the FS');
    await h.as.stop();
    const results = await settleAll(pending);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const e = (r as PromiseRejectedResult).reason as SwitchboardError;
      expect(e).toBeInstanceOf(ChannelClosedError);
      expect(e.code).toBe('SB_ERR_CHANNEL_CLOSED');
      expect(e.status).toBe(Status.CHANNEL_CLOSED);
    }
    expect(c.connected).toBe(false);
    expect(c.inflight).toBe(0);
    // Without reconnection, a later call fails at once, the same way.
    await expect(c.call(1, 'again')).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it('pipelines: fast calls issued after a slow one resolve first, each with its own answer', async () => {
    await h.cluster({}, [{ name: 'fs-1' }]);
    const c = await h.client();
    const order: string[] = [];
    const slow = c.call(2, { ms: 200, value: 'slow' }).then((v) => {
      order.push(String(v));
      return v;
    });
    const fast = Array.from({ length: 10 }, (_, i) =>
      c.call(1, `fast-${i}`).then((v) => {
        order.push(String(v));
        return v;
      }),
    );
    expect(c.inflight).toBe(11);
    expect(await Promise.all(fast)).toEqual(Array.from({ length: 10 }, (_, i) => `fast-${i}`));
    expect(order).not.toContain('slow');
    expect(await slow).toBe('slow');
    expect(order).toHaveLength(11);
    expect(order[10]).toBe('slow');
    expect(order.slice(0, 10).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `fast-${i}`).sort());
  });

  it('pipelines slow calls of different lengths and matches each answer to its id', async () => {
    await h.cluster({}, [{ name: 'fs-1' }]);
    const c = await h.client();
    const delays = [120, 10, 80, 40, 0];
    const order: number[] = [];
    const calls = delays.map((ms) => c.call<number>(2, { ms, value: ms }).then((v) => void order.push(v)));
    await Promise.all(calls);
    expect(order).toEqual([0, 10, 40, 80, 120]);
  });
});
