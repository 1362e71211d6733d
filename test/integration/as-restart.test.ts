import { afterEach, describe, expect, it } from 'vitest';
import { ApplicationServer, Client, FunctionServer } from '../../src/index.js';
import { ECHO, EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

function available(as: ApplicationServer, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not become available within 5 s`)), 5000);
    as.on('fs-state', (info) => {
      if (info.name === name && info.state === 'available') {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

describe('an application server restart', () => {
  it('is survived by its FSs: they register again on their own and serve the new AS', async () => {
    const first = new ApplicationServer({ heartbeatMs: 200 });
    const { controlPort } = await first.start();
    const firstUp = available(first, 'fs-r');
    const fs = new FunctionServer({
      name: 'fs-r',
      plugins: [EchoPlugin],
      heartbeatMs: 200,
      reconnectBaseMs: 20,
      reconnectCapMs: 200,
      applicationServer: { host: '127.0.0.1', port: controlPort },
    });
    await fs.start();
    stops.push(() => fs.stop());
    await firstUp;
    await first.stop();

    // A new AS process on the same control port knows nothing of fs-r until it says HELLO again.
    const second = new ApplicationServer({ heartbeatMs: 200, controlPort });
    const secondUp = available(second, 'fs-r');
    const { port } = await second.start();
    stops.push(() => second.stop());
    await secondUp;
    const client = await Client.connect({ port });
    stops.push(() => client.close());
    expect(await client.call(ECHO, 'after the restart')).toBe('after the restart');
  });
});
