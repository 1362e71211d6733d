import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The README's quick start runs `npm run demo`: an AS and three FSs as processes, real requests.
// It is run here through the built CLI so that it cannot break unnoticed (it once waited for a log
// line whose wording had changed). The demo starts and stops its own processes.
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

describe('switchboard demo (the quick start)', () => {
  it('serves every request across three FSs, the busy one getting the smallest share, and exits 0', { timeout: 90_000 }, () => {
    const r = spawnSync(process.execPath, [CLI, 'demo', '--requests', '600'], { encoding: 'utf8', timeout: 80_000 });
    expect(r.stderr.trim().split('\n').filter((l) => /failed|error/i.test(l))).toEqual([]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/600 requests, 16 in flight, .* ok 600/);
    const served = Object.fromEntries([...r.stdout.matchAll(/^(fs-\S+)\s+(\d+)\s/gm)].map((m) => [m[1], Number(m[2])]));
    expect(Object.keys(served).sort()).toEqual(['fs-1', 'fs-2', 'fs-3-busy']);
    expect(served['fs-3-busy']).toBeLessThan(Math.min(served['fs-1'], served['fs-2']));
  });
});
