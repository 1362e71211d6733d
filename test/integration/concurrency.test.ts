import { describe, expect, it } from 'vitest';
import type { Client } from '../../src/index.js';
import { tally, useHarness, waitFor } from '../fixtures/cluster.js';
import { WHO_AM_I } from '../fixtures/test-plugins.js';

const h = useHarness();

const TOTAL = 1000;

/** A body unique to call `i`, of varying size and shape. */
function bodyFor(tag: string, i: number): { tag: string; i: number; text: string; list: number[] } {
  return { tag, i, text: `${tag}-${i}-${'z'.repeat(i % 97)}`, list: [i, i * 2, -i] };
}

/** Issues every call at once and checks that each answer is its own request's body. */
async function allAtOnce(clients: Client[], total: number): Promise<void> {
  const calls = Array.from({ length: total }, (_, i) => {
    const c = clients[i % clients.length];
    const body = bodyFor(`c${i % clients.length}`, i);
    return c.call(1, body).then((got) => ({ body, got }));
  });
  expect(clients.reduce((a, c) => a + c.inflight, 0)).toBe(total);
  const results = await Promise.all(calls);
  const wrong = results.filter((r) => JSON.stringify(r.got) !== JSON.stringify(r.body));
  expect(wrong).toEqual([]);
  for (const c of clients) expect(c.inflight).toBe(0);
}

describe('concurrency', () => {
  it(`answers ${TOTAL} calls issued at once on one client, each with its own body`, async () => {
    await h.cluster({}, [{ name: 'fs-1' }, { name: 'fs-2' }, { name: 'fs-3' }]);
    const c = await h.client();
    await allAtOnce([c], TOTAL);

    const fsList = h.as.listFunctionServers();
    expect(fsList.reduce((a, f) => a + f.served, 0)).toBe(TOTAL);
    for (const f of fsList) {
      expect(f.served).toBeGreaterThan(0);
      expect(f.inflight).toBe(0);
    }
    expect(h.as.dispatcher.localAnswers.size).toBe(0);
  });

  it(`answers ${TOTAL} calls spread over 4 clients at once`, async () => {
    await h.cluster({}, [{ name: 'fs-1' }, { name: 'fs-2' }, { name: 'fs-3' }]);
    const clients = await Promise.all([h.client(), h.client(), h.client(), h.client()]);
    await waitFor(() => h.as.clientConnections === 4, 'the AS to accept 4 clients');
    await allAtOnce(clients, TOTAL);
    expect(h.as.listFunctionServers().reduce((a, f) => a + f.served, 0)).toBe(TOTAL);
  });

  it('mixes services and delays in one burst without crossing answers', async () => {
    await h.cluster({}, [{ name: 'fs-1' }, { name: 'fs-2' }, { name: 'fs-3' }]);
    const c = await h.client();
    const calls: Promise<boolean>[] = [];
    const who: Promise<string>[] = [];
    for (let i = 0; i < 300; i++) {
      const value = { delayed: i };
      calls.push(c.call(2, { ms: i % 20, value }).then((got) => JSON.stringify(got) === JSON.stringify(value)));
      calls.push(c.call(1, bodyFor('mix', i)).then((got) => JSON.stringify(got) === JSON.stringify(bodyFor('mix', i))));
      who.push(c.call<string>(WHO_AM_I));
    }
    expect((await Promise.all(calls)).every(Boolean)).toBe(true);
    const names = tally(await Promise.all(who));
    expect([...names.keys()].sort()).toEqual(['fs-1', 'fs-2', 'fs-3']);
  });
});
