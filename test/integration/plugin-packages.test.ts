import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RoleProcess } from '../../src/cli/child-process.js';
import { Client, type ServiceContract } from '../../src/index.js';
import { useHarness, waitForAvailable } from '../fixtures/cluster.js';

// Both tests run npm install against the registry (typescript, @types/node): the package a user
// gets must install and pass its own tests as written.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const EXAMPLE = join(ROOT, 'examples', 'greeter');
const h = useHarness();

function run(cmd: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

async function npm(args: string[], cwd: string): Promise<string> {
  const r = await run('npm', [...args, '--no-audit', '--no-fund'], cwd);
  expect(r.code, `npm ${args.join(' ')} in ${cwd} failed:\n${r.out.slice(-3000)}`).toBe(0);
  return r.out;
}

describe('plugin packages', () => {
  it('switchboard init plugin writes a package whose npm install && npm test pass as written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-init-'));
    h.defer(() => rmSync(dir, { recursive: true, force: true }));
    const target = join(dir, 'weatherman');
    const init = await run(process.execPath, [CLI, 'init', 'plugin', target, '--key', '4100'], dir);
    expect(init.code, init.out).toBe(0);
    for (const f of ['package.json', 'tsconfig.json', 'src/contracts.ts', 'src/plugin.ts', 'test/plugin.test.ts', 'README.md']) expect(existsSync(join(target, f)), f).toBe(true);
    // A second init into the same (now not empty) directory is refused.
    const again = await run(process.execPath, [CLI, 'init', 'plugin', target], dir);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/is not empty/);
    await npm(['install'], target);
    const test = await npm(['test'], target);
    expect(test).toMatch(/# pass 4/);
    expect(test).toMatch(/# fail 0/);
  }, 240_000);

  it('examples/greeter installs, passes its tests, and serves a typed call through real AS and FS processes', async () => {
    await npm(['install'], EXAMPLE);
    expect(await npm(['test'], EXAMPLE)).toMatch(/# fail 0/);
    await h.startAs({});
    const fs = new RoleProcess('greeter-fs', ['fs', '--as', `127.0.0.1:${h.controlPort}`, '--port', '0', '--plugins', join(EXAMPLE, 'dist/src/plugin.js'), '--name', 'greeter-1'], { cliPath: CLI });
    h.defer(() => fs.stop('SIGTERM', 5000));
    await waitForAvailable(h.as, 1, 10_000);
    // The caller imports the same contract module the plugin was built with.
    const { greet } = (await import(join(EXAMPLE, 'dist/src/contracts.js'))) as { greet: ServiceContract<{ name: string; lang?: 'en' | 'fr' }, { text: string }> };
    const client = await Client.connect({ port: h.port });
    h.defer(() => client.close());
    const answer = await client.call(greet, { name: 'Ada', lang: 'fr' });
    expect(answer.text).toBe('Bonjour, Ada');
    await expect(client.call(greet, { name: '' })).rejects.toMatchObject({ code: 'SB_ERR_VALIDATION' });
    // The AS knows the service by name too.
    expect(await client.resolve('greeter.greet')).toMatchObject({ key: 301, name: 'greeter.greet', idempotent: true });
  }, 240_000);
});
