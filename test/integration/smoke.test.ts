import { afterEach, describe, expect, it } from 'vitest';
import { ApplicationServer, Client, FunctionServer } from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { WeatherPlugin } from '../../src/plugins/samples/weather-plugin.js';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

describe('smoke', () => {
  it('routes a call through AS to FS', async () => {
    const as = new ApplicationServer({});
    const { port, controlPort } = await as.start();
    stops.push(() => as.stop());
    const fs = new FunctionServer({ name: 'fs-1', plugins: [EchoPlugin, WeatherPlugin], applicationServer: { host: '127.0.0.1', port: controlPort } });
    await fs.start();
    stops.push(() => fs.stop());
    await fs.whenRegistered();
    await new Promise<void>((r) => as.once('fs-state', () => r()));
    const c = await Client.connect({ port });
    stops.push(() => c.close());
    expect(await c.call(1, { hi: 1 })).toEqual({ hi: 1 });
    const f = await c.call<{ days: unknown[] }>(101, { city: 'Beijing', days: 3, from: '2026-11-23' });
    expect(f.days).toHaveLength(3);
  });
});
