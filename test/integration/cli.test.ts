import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, RoleProcess } from '../../src/cli/child-process.js';

const run = promisify(execFile);
const DIST_CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;


const started: RoleProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop('SIGTERM', 5000)));
});

function callCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [DIST_CLI, 'call', ...args], { timeout: 15_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('the CLI, as separate processes', () => {
  beforeAll(() => {
    expect(existsSync(DIST_CLI), 'run `npm run build` first (npm test does)').toBe(true);
    expect(CLI_PATH.endsWith('main.js')).toBe(true);
  });

  it('starts an AS and an FS and answers `switchboard call` with the JSON reply', async () => {
    const as = new RoleProcess('as', ['as', '--port', '0', '--control-port', '0', '--heartbeat-ms', '500', '--startup-grace-ms', '0'], { cliPath: DIST_CLI });
    started.push(as);
    const listening = await as.waitForLog('application server listening');
    const fs = new RoleProcess('fs', ['fs', '--as', `127.0.0.1:${listening.controlPort}`, '--port', '0', '--plugins', 'echo', 'weather', '--name', 'cli-fs'], {
      cliPath: DIST_CLI,
    });
    started.push(fs);
    await as.waitForLog('function server is available');

    const ok = await callCli(['--as', `127.0.0.1:${listening.port}`, '--service', '101', '--data', '{"city":"Beijing","days":3,"from":"2026-11-23"}']);
    expect(ok.code).toBe(0);
    const reply = JSON.parse(ok.stdout) as { city: string; days: { date: string }[] };
    expect(reply.city).toBe('Beijing');
    expect(reply.days.map((d) => d.date)).toEqual(['2026-11-23', '2026-11-24', '2026-11-25']);

    // A handler that returns nothing (echo.delayed without a value): JSON null, not the word undefined.
    const nothing = await callCli(['--as', `127.0.0.1:${listening.port}`, '--service', '2', '--data', '{"ms":0}']);
    expect([nothing.code, nothing.stdout]).toEqual([0, 'null\n']);

    const missing = await callCli(['--as', `127.0.0.1:${listening.port}`, '--service', '4242']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/^SERVICE_NOT_FOUND/);

    const badJson = await callCli(['--as', `127.0.0.1:${listening.port}`, '--service', '1', '--data', '{nope']);
    expect(badJson.code).not.toBe(0);
    expect(badJson.stderr).toMatch(/BAD_REQUEST: --data is not valid JSON/);

    // SIGTERM drains the FS: it tells the AS, which logs the state change, and exits 0.
    expect(await fs.stop('SIGTERM')).toBe(0);
    expect(as.lines.some((l) => l.msg === 'function server is draining')).toBe(true);
  });

  it('rejects a malformed --as with a message that shows the expected form', async () => {
    const r = await callCli(['--as', 'nowhere', '--service', '1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/expected host:port/);
  });

  it('exits non-zero with UNAVAILABLE when no AS listens', async () => {
    const r = await callCli(['--as', '127.0.0.1:1', '--service', '1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^UNAVAILABLE: cannot connect/);
  });
});
