import 'reflect-metadata';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { asConfigSchema, fsConfigSchema, loadConfigFile, merge, unreadEnvironment } from '../../src/cli/config.js';
import { fsCommand } from '../../src/cli/fs-command.js';
import { printed } from '../fixtures/print-config.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sb-config-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}


describe('loadConfigFile', () => {
  it('reads YAML and JSON under the API option names', () => {
    const y = loadConfigFile(file('as.yaml', 'port: 7300\nmaxAttempts: 2\noutlier:\n  consecutiveFailures: 0\nfunctionServers:\n  - { host: 127.0.0.1, port: 7201, standby: true }\n'), asConfigSchema);
    expect(y).toEqual({ port: 7300, maxAttempts: 2, outlier: { consecutiveFailures: 0 }, functionServers: [{ host: '127.0.0.1', port: 7201, standby: true }] });
    const j = loadConfigFile(file('fs.json', JSON.stringify({ name: 'fs-a', plugins: ['echo'], loadWeight: undefined, validateResponses: true })), fsConfigSchema);
    expect(j).toEqual({ name: 'fs-a', plugins: ['echo'], validateResponses: true });
  });

  it('takes an empty file as no settings', () => {
    expect(loadConfigFile(file('empty.yaml', ''), asConfigSchema)).toEqual({});
  });

  it('names the path of each bad field, and refuses unknown keys', () => {
    const p = file('bad.yaml', 'port: "7100"\noutlier:\n  maxEjectionPercent: 101\nfunctionServers:\n  - { host: a, port: 0 }\ncontrolprot: 1\n');
    let message = '';
    try {
      loadConfigFile(p, asConfigSchema);
    } catch (err) {
      expect((err as { code: string }).code).toBe('SB_ERR_CONFIG');
      message = (err as Error).message;
    }
    expect(message).toContain(p);
    expect(message).toMatch(/(^|; |: )port: /);
    expect(message).toContain('outlier.maxEjectionPercent');
    expect(message).toContain('functionServers.0.port');
    expect(message).toMatch(/Unrecognized key: "controlprot"/);
  });

  it('refuses a file it cannot read or parse, saying which', () => {
    expect(() => loadConfigFile(join(dir, 'missing.yaml'), asConfigSchema)).toThrow(/cannot read config file .*missing\.yaml: ENOENT/);
    expect(() => loadConfigFile(file('broken.json', '{"port": 1,'), asConfigSchema)).toThrow(/is not valid JSON/);
    expect(() => loadConfigFile(file('broken.yaml', 'port: [1\n'), asConfigSchema)).toThrow(/is not valid YAML/);
    expect(() => loadConfigFile(file('list.yaml', '- 1\n- 2\n'), asConfigSchema)).toThrow(/bad field: \(top\)/);
  });

  it('resolves file names and plugin paths from the config file folder, leaving packages and bundled names alone', () => {
    const c = loadConfigFile(file('fs.yaml', 'plugins: [./plugins/a.js, /abs/b.js, echo, "@acme/plugin"]\njoinSecretFile: secrets/join\ntls: { caFile: /etc/ca.pem }\n'), fsConfigSchema);
    expect(c.plugins).toEqual([join(dir, 'plugins/a.js'), '/abs/b.js', 'echo', '@acme/plugin']);
    expect(c.joinSecretFile).toBe(join(dir, 'secrets/join'));
    expect(c.tls?.caFile).toBe('/etc/ca.pem');
  });
});

describe('merge', () => {
  it('lays file over defaults and given flags over both, one group deep', () => {
    const m = merge<Record<string, unknown>>({ port: 7100, outlier: { intervalMs: 1 } }, { port: 7300, outlier: { consecutiveFailures: 0 } }, { port: 7301, controlPort: undefined });
    expect(m).toEqual({ port: 7301, outlier: { intervalMs: 1, consecutiveFailures: 0 } });
  });
});

describe('as and fs settings: defaults < --config < flags', () => {
  it('as: the file overrides flag defaults, typed flags override the file', async () => {
    const cfg = file('as.yaml', 'port: 7300\ncontrolPort: 7301\nheartbeatMs: 750\noutlier: { consecutiveFailures: 9 }\npair: { port: 7400, secretFile: pair.secret }\n');
    const s = await printed('as', ['--config', cfg, '--port', '7500', '--outlier-interval-ms', '250', '--pair-peer', '127.0.0.1:7401', '--timeout-ms', '1234']);
    expect(s.port).toBe(7500); // flag over file
    expect(s.controlPort).toBe(7301); // file over default
    expect(s.heartbeatMs).toBe(750);
    expect(s.clientHost).toBe('127.0.0.1'); // default
    expect(s.defaultTimeoutMs).toBe(1234); // --timeout-ms is the API's defaultTimeoutMs
    expect(s.outlier).toEqual({ consecutiveFailures: 9, intervalMs: 250 });
    expect(s.pair).toEqual({ port: 7400, secretFile: join(dir, 'pair.secret'), peer: { host: '127.0.0.1', port: 7401 } });
  });

  it('as: every new flag lands under its API name', async () => {
    const s = await printed('as', [
      '--connect-timeout-ms', '900', '--reconnect-base-ms', '50', '--eject-after-failures', '4', '--max-attempts', '1',
      '--max-body-bytes', '1000', '--load-weight', '0.5', '--hedge-after-ratio', '0', '--http-port', '0', '--http-host', '127.0.0.2',
      '--function-server', '127.0.0.1:7201,127.0.0.1:7202', '--function-server', '127.0.0.1:7203', '--max-control-body-bytes', '4096',
      '--max-inflight-bytes-per-client', '65536', '--outlier-max-ejection-percent', '10',
    ]);
    expect(s).toMatchObject({
      connectTimeoutMs: 900, reconnectBaseMs: 50, ejectAfterFailures: 4, maxAttempts: 1, maxBodyBytes: 1000, loadWeight: 0.5, hedgeAfterRatio: 0,
      httpPort: 0, httpHost: '127.0.0.2', maxControlBodyBytes: 4096, maxInflightBytesPerClient: 65536, outlier: { maxEjectionPercent: 10 },
      functionServers: [{ host: '127.0.0.1', port: 7201 }, { host: '127.0.0.1', port: 7202 }, { host: '127.0.0.1', port: 7203 }],
    });
  });

  it('as: no pair unless asked, and half a pair is refused naming the missing field', async () => {
    expect((await printed('as', [])).pair).toBeUndefined();
    const cfg = file('half.yaml', 'pair: { port: 7400 }\n');
    await expect(printed('as', ['--config', cfg])).rejects.toThrow(/pair\.peer/);
  });

  it('fs: plugins from the file or the flags, and none at all is refused when starting', async () => {
    const cfg = file('fs.yaml', 'plugins: [echo]\nname: fs-from-file\nport: 7250\nmaxBodyBytes: 2048\n');
    const s = await printed('fs', ['--config', cfg, '--port', '7251', '--as', '127.0.0.1:7101']);
    expect(s).toMatchObject({ plugins: ['echo'], name: 'fs-from-file', port: 7251, maxBodyBytes: 2048, applicationServers: [{ host: '127.0.0.1', port: 7101 }] });
    const flags = await printed('fs', ['--config', cfg, '--plugins', 'weather', '--name', 'fs-flag']);
    expect(flags).toMatchObject({ plugins: ['weather'], name: 'fs-flag' });
    const cmd = fsCommand().exitOverride().configureOutput({ writeErr: () => undefined });
    await expect(cmd.parseAsync(['--port', '0'], { from: 'user' })).rejects.toThrow(/no plugins: give --plugins/);
  });

  it('a bad flag value is refused by its flag, a bad file by its field path', async () => {
    await expect(printed('as', ['--max-attempts', '11'])).rejects.toThrow(/expected an integer from 1 to 10/);
    const cfg = file('bad.yaml', 'strategy: fastest\n');
    await expect(printed('as', ['--config', cfg])).rejects.toThrow(/strategy: /);
  });
});

describe('as: pair settings that would start something else are refused (SB_ERR_CONFIG), from flags or a file, by --print-config too', () => {
  const REGISTRY = 'etcd://127.0.0.1:2379';

  it('--pair-mode udp without --pair-port and --pair-peer: it would run alone', async () => {
    const said = "--pair-mode udp needs --pair-port (pair.port) and --pair-peer (pair.peer), this node's UDP port and the sibling's host:port; without them this AS would run alone. Give both, or drop --pair-mode to run alone";
    await expect(printed('as', ['--pair-mode', 'udp'])).rejects.toMatchObject({ code: 'SB_ERR_CONFIG', message: said });
    await expect(printed('as', ['--config', file('udp.yaml', 'pairMode: udp\n')])).rejects.toMatchObject({ code: 'SB_ERR_CONFIG', message: said });
    // With both, or with no pair asked for at all, it starts.
    expect((await printed('as', ['--pair-mode', 'udp', '--pair-port', '7110', '--pair-peer', '127.0.0.1:7111'])).pair).toEqual({ port: 7110, peer: { host: '127.0.0.1', port: 7111 } });
    expect((await printed('as', [])).pair).toBeUndefined();
  });

  it('half a UDP pair names what is missing and what was given', async () => {
    await expect(printed('as', ['--pair-port', '7110', '--pair-secret-file', 'pair.secret'])).rejects.toThrow(
      /^a UDP pair needs --pair-peer \(pair\.peer\) too: --pair-port \(pair\.port\), --pair-secret-file \(pair\.secretFile\) were given, but without it this AS would run alone\. Give it, or remove the pair settings to run alone$/,
    );
    // Settings an etcd election would use, without --pair-mode etcd: the hint says so.
    await expect(printed('as', ['--node-id', '0123456789abcdef'])).rejects.toThrow(
      'a UDP pair needs --pair-port (pair.port) and --pair-peer (pair.peer) too: --node-id (pair.nodeId) was given, but without them this AS would run alone (with --pair-mode etcd and --registry, these are used by the etcd election instead)',
    );
  });

  it('--pair-mode etcd with UDP-only settings names each, by flag and by key', async () => {
    const flags = ['--pair-mode', 'etcd', '--registry', REGISTRY, '--pair-port', '7110', '--pair-peer', '127.0.0.1:7111', '--pair-secret-file', 'pair.secret', '--priority', '150', '--preempt'];
    await expect(printed('as', flags)).rejects.toMatchObject({
      code: 'SB_ERR_CONFIG',
      message:
        '--pair-mode etcd does not use --pair-port (pair.port), --pair-peer (pair.peer), --pair-secret-file (pair.secretFile), --priority (pair.priority), --preempt (pair.preempt): they set up the UDP pair, which the etcd election replaces; remove them, or drop --pair-mode etcd to run a UDP pair',
    });
    const cfg = file('etcd.yaml', `pairMode: etcd\nregistry: ${REGISTRY}\npair: { insecure: true, host: 10.0.0.1, advertMs: 100, negotiationTimeoutMs: 900, maxClockSkewMs: 5000 }\n`);
    await expect(printed('as', ['--config', cfg])).rejects.toThrow(
      '--pair-mode etcd does not use --pair-host (pair.host), --pair-insecure (pair.insecure), --advert-ms (pair.advertMs), --negotiation-timeout-ms (pair.negotiationTimeoutMs), --max-clock-skew-ms (pair.maxClockSkewMs):',
    );
  });

  it('--pair-mode etcd needs --registry, and takes --node-id, --on-active and --on-standby', async () => {
    await expect(printed('as', ['--pair-mode', 'etcd'])).rejects.toMatchObject({ code: 'SB_ERR_CONFIG', message: '--pair-mode etcd needs --registry etcd://host:port (config key registry): the etcd that holds the election' });
    const s = await printed('as', ['--pair-mode', 'etcd', '--registry', REGISTRY, '--node-id', '0123456789abcdef', '--on-active', 'true', '--on-standby', 'false']);
    expect(s).toMatchObject({ pairMode: 'etcd', registry: REGISTRY, pair: { nodeId: '0123456789abcdef', onActive: 'true', onStandby: 'false' } });
  });
});

describe('SWITCHBOARD_* variables', () => {
  it('names every one the program does not read, so none seems to take effect', () => {
    expect(unreadEnvironment({ SWITCHBOARD_LOG_LEVEL: 'debug', SWITCHBOARD_PORT: '1', PATH: '/bin', SWITCHBOARD_ADMIN_TOKEN: 'x' })).toEqual(['SWITCHBOARD_PORT', 'SWITCHBOARD_ADMIN_TOKEN']);
  });
});
