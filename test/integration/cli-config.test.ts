import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RoleProcess } from '../../src/cli/child-process.js';
import { Client } from '../../src/client/index.js';

const DIST_CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;

let dir: string;
const started: RoleProcess[] = [];
const clients: Client[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sb-cli-config-'));
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(started.splice(0).map((p) => p.stop('SIGTERM', 5000)));
  rmSync(dir, { recursive: true, force: true });
});

function start(label: string, args: string[], env?: NodeJS.ProcessEnv): RoleProcess {
  const p = new RoleProcess(label, args, { cliPath: DIST_CLI, env: env ? { ...process.env, ...env } : undefined });
  started.push(p);
  return p;
}

describe('--config files, as separate processes', () => {
  it('an FS from a YAML file, dialled by an AS from its JSON file (a static pool list), serves calls', async () => {
    writeFileSync(join(dir, 'fs.yaml'), 'name: fs-static\nplugins: [echo]\nport: 0\nheartbeatMs: 500\n');
    const fs = start('fs', ['fs', '--config', join(dir, 'fs.yaml')]);
    const fsUp = await fs.waitForLog('function server listening');
    expect(fsUp.fs).toBe('fs-static');

    writeFileSync(join(dir, 'as.json'), JSON.stringify({ port: 0, controlPort: 0, heartbeatMs: 500, functionServers: [{ host: '127.0.0.1', port: fsUp.port }] }));
    const as = start('as', ['as', '--config', join(dir, 'as.json'), '--heartbeat-ms', '400'], { SWITCHBOARD_PORT: '9', SWITCHBOARD_LOG_LEVEL: 'info' });
    const asUp = await as.waitForLog('application server listening');
    const joined = await as.waitForLog('function server joined');
    expect(joined).toMatchObject({ host: '127.0.0.1', port: fsUp.port, source: expect.any(String) });
    await as.waitForLog('function server is available');
    // A variable that is not read is named, not silently ignored.
    const warned = as.lines.find((l) => String(l.msg).startsWith('these SWITCHBOARD_* variables are not read'));
    expect(warned?.variables).toEqual(['SWITCHBOARD_PORT']);

    const client = await Client.connect({ host: '127.0.0.1', port: asUp.port as number });
    clients.push(client);
    expect(await client.call(1, { hello: 'config' })).toEqual({ hello: 'config' });
  });

  it('refuses a bad file at start, naming the file and the bad field, and exits 1', async () => {
    writeFileSync(join(dir, 'as.yaml'), 'port: 0\ncontrolPort: 0\noutlier:\n  maxEjectionPercent: 150\n');
    const as = start('as', ['as', '--config', join(dir, 'as.yaml')]);
    expect(await as.exited()).toBe(1);
    expect(as.stderr).toContain(join(dir, 'as.yaml'));
    expect(as.stderr).toContain('outlier.maxEjectionPercent');
    expect(as.stderr).toContain('SB_ERR_CONFIG');
  });
});
