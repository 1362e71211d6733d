import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { loadStrategy } from '../../src/cli/strategy-module.js';
import { ConfigError } from '../../src/index.js';
import { useHarness, waitForAvailable } from '../fixtures/cluster.js';
import { printConfig } from '../fixtures/print-config.js';
import { WHO_AM_I } from '../fixtures/test-plugins.js';

const h = useHarness();
const dir = mkdtempSync(join(tmpdir(), 'sb-strategy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function module(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('--strategy <module>', () => {
  it('loads a module whose strategy sees the request (key and routing key) and chooses the FS', async () => {
    const path = module(
      'by-key.mjs',
      `// Sends routing key "to-b" to fs-b and everything else to fs-a.
export default {
  name: 'by-key',
  pick(candidates, ctx) {
    const want = ctx.routingKey && ctx.routingKey.toString() === 'to-b' ? 'fs-b' : 'fs-a';
    return ctx.serviceKey === ${WHO_AM_I} ? candidates.find((c) => c.id === want) : candidates[0];
  },
};
`,
    );
    const strategy = await loadStrategy(path);
    expect(typeof strategy === 'object' && strategy.name).toBe('by-key');
    await h.cluster({ strategy }, [{ name: 'fs-a' }, { name: 'fs-b' }]);
    const c = await h.client();
    for (let i = 0; i < 10; i++) expect(await c.call(WHO_AM_I, {})).toBe('fs-a');
    for (let i = 0; i < 10; i++) expect(await c.call(WHO_AM_I, {}, { routingKey: 'to-b' })).toBe('fs-b');
  });

  it('a factory export works too; a strategy that throws costs a fallback pick and a rate-limited warning (5 per 10 s), not a call', async () => {
    const path = module('throws.mjs', `export function strategy() { return { name: 'broken', pick() { throw new Error('bug in my strategy'); } }; }\n`);
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    await h.cluster({ strategy: await loadStrategy(path), logger }, [{ name: 'fs-a' }, { name: 'fs-b' }]);
    await waitForAvailable(h.as, 2);
    const c = await h.client();
    const served = await Promise.all(Array.from({ length: 200 }, () => c.call(WHO_AM_I, {}) as Promise<string>));
    expect(new Set(served)).toEqual(new Set(['fs-a', 'fs-b']));
    const warned = lines.filter((l) => l.msg === 'the scheduling strategy failed; least-loaded chose instead');
    expect(warned.length).toBeGreaterThanOrEqual(1);
    // 200 failed picks, but the log is rate-limited: the burst of 5 per window, no more.
    expect(warned.length).toBe(5);
    expect(warned[0]).toMatchObject({ strategy: 'broken', err: 'bug in my strategy' });
  });

  it('refuses a name it does not know, a module that does not load, and one without pick(), saying what to give', async () => {
    await expect(loadStrategy('fastest')).rejects.toThrow(/neither least-loaded, round-robin, consistent-hash nor a module path/);
    await expect(loadStrategy(join(dir, 'missing.mjs'))).rejects.toThrow(ConfigError);
    await expect(loadStrategy(join(dir, 'missing.mjs'))).rejects.toThrow(/; give the path of a built \.js file$/);
    const broken = module('top-throws.mjs', "throw new Error('module top-level throws');\n");
    await expect(loadStrategy(broken)).rejects.toThrow(`cannot load the strategy module ${broken}: module top-level throws; its code failed while loading; fix it so that node ${broken} runs`);
    const bad = module('no-pick.mjs', 'export default { name: "x" };\n');
    await expect(loadStrategy(bad)).rejects.toThrow(/must export .* pick\(candidates, ctx\)/);
    for (const name of ['least-loaded', 'round-robin', 'consistent-hash']) expect(await loadStrategy(name)).toBe(name);
  });

  it('a factory that throws is refused SB_ERR_CONFIG, naming the module and what to export', async () => {
    const path = module('factory-throws.mjs', "export default function make() { throw new Error('factory exploded'); }\n");
    const refused = loadStrategy(path);
    await expect(refused).rejects.toBeInstanceOf(ConfigError);
    await expect(refused).rejects.toMatchObject({
      code: 'SB_ERR_CONFIG',
      message: `the strategy module ${path} exports a function that threw when called to make the strategy: factory exploded; export (as default or as "strategy") an object with pick(candidates, ctx) and, optionally, a name, or a function that returns one`,
    });
  });

  it('the name is optional: without one, the module file name names the strategy', async () => {
    const path = module('no-name.mjs', 'export default { pick: (c) => c[0] };\n');
    const strategy = await loadStrategy(path);
    expect(typeof strategy === 'object' && strategy.name).toBe('no-name.mjs');
    const blank = await loadStrategy(module('blank-name.mjs', "export default { name: '', pick: (c) => c[0] };\n"));
    expect(typeof blank === 'object' && blank.name).toBe('blank-name.mjs');
  });

  it('--print-config loads the module as start does: a module start would refuse is refused there too', async () => {
    const printStrategy = (strategy: string): Promise<string> => printConfig('as', ['--strategy', strategy]);
    await expect(printStrategy(module('pc-throws.mjs', "export function strategy() { throw new Error('no'); }\n"))).rejects.toThrow(/exports a function that threw when called to make the strategy: no;/);
    await expect(printStrategy(module('pc-no-pick.mjs', 'export default { name: "x" };\n'))).rejects.toThrow(/must export .* pick\(candidates, ctx\)/);
    await expect(printStrategy(join(dir, 'pc-missing.mjs'))).rejects.toThrow(/cannot load the strategy module/);
    const good = module('pc-good.mjs', 'export default { pick: (c) => c[0] };\n');
    expect(JSON.parse(await printStrategy(good)).strategy).toBe(good);
  });

  it('the example in docs/routing.md loads and does what its comment says', async () => {
    const doc = readFileSync(new URL('../../docs/routing.md', import.meta.url), 'utf8');
    const code = /```js\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(code).toBeDefined();
    const strategy = await loadStrategy(module('fast-lane.mjs', code as string));
    if (typeof strategy !== 'object') throw new Error('expected a strategy object');
    const cand = (id: string, inflight: number): never => ({ id, inflight, weight: 1 }) as never;
    const cands = [cand('fast-1', 5), cand('slow-1', 0), cand('fast-2', 2)];
    expect(strategy.pick(cands, { now: 0, random: Math.random, serviceKey: 10 })).toBe(cands[2]);
    expect(strategy.pick(cands, { now: 0, random: Math.random, serviceKey: 5000 })).toBe(cands[1]);
  });
});
