import { afterEach, describe, expect, it } from 'vitest';
import { ApplicationServer, Client, FunctionServer } from '../../src/index.js';
import { ECHO, EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

describe('frames larger than a read', () => {
  it('relays many concurrent answers bigger than the AS read buffer, each intact and to its own caller', async () => {
    const as = new ApplicationServer();
    const { port, controlPort } = await as.start();
    stops.push(() => as.stop());
    const up = new Promise<void>((r) => as.on('fs-state', (i) => i.state === 'available' && r()));
    const fs = new FunctionServer({ name: 'fs-big', plugins: [EchoPlugin], applicationServer: { host: '127.0.0.1', port: controlPort } });
    await fs.start();
    stops.push(() => fs.stop());
    await up;
    const client = await Client.connect({ port });
    stops.push(() => client.close());
    // 100 KiB each (the AS reads FS answers into one reused 64 KiB buffer), binary and text.
    const bodies = Array.from({ length: 40 }, (_, i) => ({
      i,
      text: String.fromCharCode(65 + (i % 26)).repeat(100 * 1024),
      bin: Buffer.alloc(100 * 1024, i),
    }));
    const answers = (await Promise.all(bodies.map((b) => client.call(ECHO, b)))) as { i: number; text: string; bin: Uint8Array }[];
    answers.forEach((a, i) => {
      expect(a.i).toBe(i);
      expect(a.text).toBe(bodies[i].text);
      expect(Buffer.from(a.bin).equals(bodies[i].bin)).toBe(true);
    });
  });
});
