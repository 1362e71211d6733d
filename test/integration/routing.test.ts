import { describe, expect, it } from 'vitest';
import { ServiceNotFoundError, Status, type SwitchboardError } from '../../src/index.js';
import { CityCatalog } from '../../src/plugins/samples/city-catalog.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { ForecastModel } from '../../src/plugins/samples/forecast-model.js';
import { WeatherPlugin, type ForecastReply } from '../../src/plugins/samples/weather-plugin.js';
import { runBounded, tally, useHarness } from '../fixtures/cluster.js';
import { POOL_ECHO, PoolEchoPlugin, WHO_AM_I, WhoAmIPlugin } from '../fixtures/test-plugins.js';

const h = useHarness();

async function rejection(p: Promise<unknown>): Promise<SwitchboardError> {
  try {
    await p;
  } catch (err) {
    return err as SwitchboardError;
  }
  throw new Error('expected the call to fail');
}

describe('routing by service key', () => {
  it('sends each key to the FS whose plugin serves it', async () => {
    const [echoFs, weatherFs] = await h.cluster({}, [
      { name: 'echo-fs', plugins: [EchoPlugin] },
      { name: 'weather-fs', plugins: [WeatherPlugin, WhoAmIPlugin] },
    ]);
    const keys = Object.fromEntries(h.as.listFunctionServers().map((f) => [f.name, f.serviceKeys]));
    expect(keys).toEqual({ 'echo-fs': [1, 2], 'weather-fs': [101, 102, WHO_AM_I] });

    const c = await h.client();
    for (let i = 0; i < 20; i++) {
      expect(await c.call(1, { i })).toEqual({ i });
      expect(await c.call(WHO_AM_I)).toBe('weather-fs');
    }
    const cities = await c.call<{ name: string }[]>(102);
    expect(cities.map((x) => x.name)).toContain('Beijing');

    const served = Object.fromEntries(h.as.listFunctionServers().map((f) => [f.name, f.served]));
    expect(served).toEqual({ 'echo-fs': 20, 'weather-fs': 21 });
    expect(echoFs.table.keys()).not.toContain(WHO_AM_I);
    expect(weatherFs.table.keys()).not.toContain(1);
  });

  it('answers an unknown service key with ServiceNotFoundError (status 20)', async () => {
    await h.cluster({}, [{ name: 'fs-1' }]);
    const c = await h.client();
    const err = await rejection(c.call(4242, { x: 1 }));
    expect(err).toBeInstanceOf(ServiceNotFoundError);
    expect(err.status).toBe(Status.SERVICE_NOT_FOUND);
    expect(err.status).toBe(20);
    expect(err.code).toBe('SB_ERR_SERVICE_NOT_FOUND');
    expect(err.message).toContain('4242');
    // The connection carries on.
    expect(await c.call(1, 'still here')).toBe('still here');
  });

  it('returns a computed weather forecast through the AS', async () => {
    await h.cluster({}, [{ name: 'weather', plugins: [WeatherPlugin] }]);
    const c = await h.client();
    const reply = await c.call<ForecastReply>(101, { city: 'beijing', days: 5, from: '2026-11-23' });
    expect(reply.city).toBe('Beijing');
    expect(reply.country).toBe('CN');
    expect(reply.days.map((d) => d.date)).toEqual(['2026-11-23', '2026-11-24', '2026-11-25', '2026-11-26', '2026-11-27']);
    for (const d of reply.days) {
      expect(d.highC).toBeGreaterThan(d.lowC);
      expect(d.precipitationChance).toBeGreaterThanOrEqual(0);
      expect(d.precipitationChance).toBeLessThanOrEqual(1);
      expect(['sunny', 'cloudy', 'rain', 'snow']).toContain(d.condition);
    }
    // Exactly what the model computes, after a msgpack round trip through AS and FS.
    const city = new CityCatalog().find('Beijing');
    expect(city).toBeDefined();
    expect(reply.days).toEqual(new ForecastModel().forecast(city!, new Date('2026-11-23T00:00:00Z'), 5));
    // Winter in Beijing is cold; Singapore is not.
    const sg = await c.call<ForecastReply>(101, { city: 'Singapore', days: 5, from: '2026-11-23' });
    const mean = (r: ForecastReply): number => r.days.reduce((a, d) => a + d.highC, 0) / r.days.length;
    expect(mean(sg)).toBeGreaterThan(mean(reply) + 10);
  });
});

describe('routing by pool type', () => {
  const specs = [
    { name: 'p1-a', poolType: 1, plugins: [PoolEchoPlugin] },
    { name: 'p1-b', poolType: 1, plugins: [PoolEchoPlugin] },
    { name: 'p2-a', poolType: 2, plugins: [PoolEchoPlugin] },
  ];

  async function where(poolType: number, n: number): Promise<Map<string, number>> {
    const c = await h.client();
    const names: string[] = [];
    await runBounded(n, 8, async () => {
      const r = await c.call<{ fs: string; poolType: number }>(POOL_ECHO, undefined, { poolType });
      expect(r.poolType).toBe(poolType);
      names.push(r.fs);
    });
    return tally(names);
  }

  it('sends pool type 1 only to pool-1 FSs and pool type 2 only to pool-2 FSs', async () => {
    await h.cluster({ strategy: 'round-robin' }, specs);
    const one = await where(1, 60);
    expect([...one.keys()].sort()).toEqual(['p1-a', 'p1-b']);
    expect(one.get('p1-a')).toBe(30);
    const two = await where(2, 30);
    expect([...two.entries()]).toEqual([['p2-a', 30]]);
  });

  it('sends pool type 0 to FSs of any pool type', async () => {
    await h.cluster({ strategy: 'round-robin' }, specs);
    const any = await where(0, 90);
    expect([...any.keys()].sort()).toEqual(['p1-a', 'p1-b', 'p2-a']);
    for (const n of any.values()) expect(n).toBe(30);
  });

  it('answers SERVICE_NOT_FOUND for a pool type no FS has', async () => {
    await h.cluster({}, specs);
    const c = await h.client();
    const err = await rejection(c.call(POOL_ECHO, undefined, { poolType: 3 }));
    expect(err).toBeInstanceOf(ServiceNotFoundError);
    expect(err.status).toBe(Status.SERVICE_NOT_FOUND);
    expect(err.code).toBe('SB_ERR_SERVICE_NOT_FOUND');
    expect(err.message).toContain('pool type 3');
    const served = h.as.listFunctionServers().reduce((a, f) => a + f.served + f.inflight, 0);
    expect(served).toBe(0);
  });
});
