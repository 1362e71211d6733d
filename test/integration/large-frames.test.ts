import { describe, expect, it } from 'vitest';
import { ECHO } from '../../src/plugins/samples/echo-plugin.js';
import { useHarness } from '../fixtures/cluster.js';

const h = useHarness();

describe('frames larger than a read', () => {
  it('relays many concurrent answers bigger than the AS read buffer, each intact and to its own caller', async () => {
    await h.cluster({}, [{ name: 'fs-big' }]);
    const client = await h.client();
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
