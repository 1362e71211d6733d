import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RoleProcess } from '../../src/cli/child-process.js';
import { freePort } from '../fixtures/ports.js';

// Bad input fed to the built CLI, as a user would type it: each is refused up front, exit 1, with a
// message that says what is wrong and what would be right.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const LEVELS = 'trace, debug, info, warn, error, fatal, silent';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; a process still running after `timeoutMs` is sent SIGTERM (code null), which a demo passes on to its children. */
function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  const env = { ...process.env };
  delete env.SWITCHBOARD_LOG_LEVEL;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: { ...env, ...opts.env }, timeout: opts.timeoutMs ?? 15_000, killSignal: 'SIGTERM' }, (err, stdout, stderr) => {
      const code = err ? ((err as { killed?: boolean }).killed ? null : Number((err as { code?: number }).code ?? 1)) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir: string;
const started: RoleProcess[] = [];
beforeAll(() => {
  expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
});
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop('SIGTERM', 5000)));
  if (dir) rmSync(dir, { recursive: true, force: true });
});
function tmp(): string {
  dir = mkdtempSync(join(tmpdir(), 'sb-cli-input-'));
  return dir;
}

/** Syntax and semantic-free check: the TypeScript parser's own diagnostics for one file. */
function syntaxErrors(file: string): string[] {
  const out = ts.transpileModule(readFileSync(file, 'utf8'), { reportDiagnostics: true, fileName: file, compilerOptions: { experimentalDecorators: true } });
  return (out.diagnostics ?? []).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

/** The keys that occur more than once at the top level of one JSON object line. */
function duplicateTopKeys(line: string): string[] {
  const seen = new Map<string, number>();
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') {
      let j = i + 1;
      while (line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      const text = line.slice(i + 1, j);
      let k = j + 1;
      while (line[k] === ' ') k++;
      if (depth === 1 && line[k] === ':') seen.set(text, (seen.get(text) ?? 0) + 1);
      i = j;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return [...seen].filter(([, n]) => n > 1).map(([k]) => k);
}

describe('init plugin: the name becomes valid TypeScript or is refused', () => {
  it("'My Plugin_V2!' and --name foo- give a package name without stray '-' and a class name of letters and digits", async () => {
    const base = tmp();
    const a = await cli(['init', 'plugin', join(base, 'My Plugin_V2!')]);
    expect(a.code, a.stderr).toBe(0);
    const pa = join(base, 'My Plugin_V2!');
    expect(JSON.parse(readFileSync(join(pa, 'package.json'), 'utf8')).name).toBe('my-plugin-v2');
    expect(readFileSync(join(pa, 'src/plugin.ts'), 'utf8')).toContain('export class MyPluginV2Plugin {');
    expect(readFileSync(join(pa, 'src/contracts.ts'), 'utf8')).toContain("name: 'my-plugin-v2.greet'");

    const b = await cli(['init', 'plugin', join(base, 'b'), '--name', 'foo-']);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(base, 'b', 'package.json'), 'utf8')).name).toBe('foo');
    expect(readFileSync(join(base, 'b', 'src/plugin.ts'), 'utf8')).toContain('export class FooPlugin {');

    const c = await cli(['init', 'plugin', join(base, 'c'), '--name', '--Weird__Name--2--']);
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(base, 'c', 'package.json'), 'utf8')).name).toBe('weird-name-2');

    for (const pkg of [pa, join(base, 'b'), join(base, 'c')]) {
      for (const f of ['src/plugin.ts', 'src/contracts.ts', 'test/plugin.test.ts']) expect(syntaxErrors(join(pkg, f)), `${pkg}/${f}`).toEqual([]);
    }
  });

  it('refuses, exit 1, a name whose service name would pass 128 characters, and writes nothing', async () => {
    const base = tmp();
    const long = await cli(['init', 'plugin', join(base, 'long'), '--name', 'a'.repeat(200)]);
    expect(long.code).toBe(1);
    expect(long.stderr).toMatch(/is 200 characters; it can be at most 122/);
    expect(long.stderr).toMatch(/service names are at most 128 characters/);
    expect(existsSync(join(base, 'long'))).toBe(false);
    // The longest allowed makes a service name of exactly 128.
    const max = await cli(['init', 'plugin', join(base, 'max'), '--name', `x${'y'.repeat(121)}`]);
    expect(max.code, max.stderr).toBe(0);
    expect(readFileSync(join(base, 'max', 'src/contracts.ts'), 'utf8')).toContain(`name: 'x${'y'.repeat(121)}.greet'`);
  });

  it('refuses, exit 1, a name with no letter first, none at all, or that of a dependency', async () => {
    const base = tmp();
    for (const [name, why] of [
      ['9lives', /does not start with a letter/],
      ['!!!', /has no letter or digit/],
      ['switchboard', /a package this one depends on/],
    ] as const) {
      const r = await cli(['init', 'plugin', join(base, 'p'), '--name', name]);
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toMatch(why);
    }
    expect(existsSync(join(base, 'p'))).toBe(false);
  });
});

describe('demo: its flags are checked before anything starts', () => {
  it('refuses --busy 1 and --busy -0.1 at once, exit 1, naming the range', async () => {
    for (const busy of ['1', '-0.1']) {
      const t0 = Date.now();
      const r = await cli(['demo', '--busy', busy, '--requests', '10'], { timeoutMs: 8000 });
      expect(r.code, `--busy ${busy}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(/--busy <fraction>' argument '-?[\d.]+' is invalid\. expected a fraction from 0 to 0\.99/);
      expect(Date.now() - t0).toBeLessThan(5000);
    }
  });

  it('reports the requests really in flight: no more than there are requests', { timeout: 60_000 }, async () => {
    const r = await cli(['demo', '--requests', '20', '--concurrency', '100'], { timeoutMs: 50_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^20 requests, 20 in flight, .* ok 20$/m);
  });
});

describe('SWITCHBOARD_LOG_LEVEL is checked like --log-level', () => {
  it('refuses a level that is none, exit 1, listing the levels (as, fs, demo)', async () => {
    const env = { SWITCHBOARD_LOG_LEVEL: 'loud' };
    const runs = await Promise.all([
      cli(['as', '--port', '0', '--control-port', '0'], { env, timeoutMs: 8000 }),
      cli(['fs', '--plugins', 'echo', '--port', '0'], { env, timeoutMs: 8000 }),
      cli(['demo', '--requests', '10'], { env, timeoutMs: 8000 }),
    ]);
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`SWITCHBOARD_LOG_LEVEL=loud is not a log level; use one of ${LEVELS}`);
      expect(r.stderr).not.toMatch(/custom levels/);
    }
  });
});

describe('config files: every flag has its key, and --print-config shows every setting', () => {
  it('an FS file takes applicationServer (the API name), busy and defaultTimeoutMs; --as typed replaces the file ASs', async () => {
    const base = tmp();
    writeFileSync(join(base, 'fs.yaml'), 'plugins: [echo]\napplicationServer: { host: 127.0.0.1, port: 7101 }\nbusy: 0.2\ndefaultTimeoutMs: 500\n');
    const r = await cli(['fs', '--config', join(base, 'fs.yaml'), '--print-config']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ applicationServers: [{ host: '127.0.0.1', port: 7101 }], busy: 0.2, defaultTimeoutMs: 500, logLevel: 'info' });
    const flags = await cli(['fs', '--config', join(base, 'fs.yaml'), '--as', '10.0.0.1:7101', '--print-config']);
    expect(JSON.parse(flags.stdout).applicationServers).toEqual([{ host: '10.0.0.1', port: 7101 }]);
  });

  it('fs --busy 0.3 --print-config prints busy, the log level and the defaults it runs with', async () => {
    const r = await cli(['fs', '--plugins', 'echo', '--busy', '0.3', '--print-config'], { env: { SWITCHBOARD_LOG_LEVEL: 'warn' } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ busy: 0.3, logLevel: 'warn', authTimeoutMs: 5000, defaultTimeoutMs: 30_000, reconnectCapMs: 10_000, weight: 1 });
  });

  it('an AS file takes host, as --host: it binds the client and control ports; a typed --client-host wins', async () => {
    const base = tmp();
    writeFileSync(join(base, 'as.yaml'), 'host: 0.0.0.0\nadminTokenFile: token\n');
    const r = await cli(['as', '--config', join(base, 'as.yaml'), '--client-host', '10.0.0.5', '--print-config']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(s).toMatchObject({ clientHost: '10.0.0.5', controlHost: '0.0.0.0', adminHost: '127.0.0.1', maxAttempts: 3, hedgeAfterRatio: 0.5, logLevel: 'info' });
  });

  it("a file key spelt as the flag (timeoutMs) is refused with the key to use", async () => {
    const base = tmp();
    writeFileSync(join(base, 'fs.yaml'), 'plugins: [echo]\ntimeoutMs: 500\n');
    const r = await cli(['fs', '--config', join(base, 'fs.yaml'), '--print-config']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the key for --timeout-ms is defaultTimeoutMs');
  });
});

describe('as: ports that clash within its own settings', () => {
  it('refuses --port Q --control-port Q, exit 1, naming both flags, not "another process"', async () => {
    const q = await freePort();
    const r = await cli(['as', '--port', String(q), '--control-port', String(q)], { timeoutMs: 8000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`--port and --control-port are both ${q} (on 127.0.0.1)`);
    expect(r.stderr).not.toMatch(/another process/);
  });

  it('refuses the admin or HTTP port on the client or control port, through --host 0.0.0.0 too; other addresses may share a number', async () => {
    const q = await freePort();
    const admin = await cli(['as', '--port', '0', '--control-port', String(q), '--admin-port', String(q), '--print-config']);
    expect(admin.code).toBe(1);
    expect(admin.stderr).toContain(`--control-port and --admin-port are both ${q}`);
    const http = await cli(['as', '--host', '0.0.0.0', '--port', String(q), '--control-port', '0', '--http-port', String(q), '--print-config']);
    expect(http.code).toBe(1);
    expect(http.stderr).toContain(`--port and --http-port are both ${q} (on 0.0.0.0)`);
    const apart = await cli(['as', '--port', String(q), '--control-port', '0', '--admin-port', String(q), '--admin-host', '127.0.0.2', '--print-config']);
    expect(apart.code, apart.stderr).toBe(0);
  });
});

describe('as: pair settings and strategy modules are checked before anything starts', () => {
  it('a pair that would not be one is refused at a real start, exit 1, SB_ERR_CONFIG, before any port listens', async () => {
    const q = await freePort();
    const runs = await Promise.all([
      cli(['as', '--port', String(q), '--control-port', '0', '--pair-mode', 'udp'], { timeoutMs: 8000 }),
      cli(['as', '--port', String(q), '--control-port', '0', '--pair-mode', 'etcd', '--registry', 'etcd://127.0.0.1:2379', '--pair-port', '7110', '--pair-peer', '127.0.0.1:7111'], { timeoutMs: 8000 }),
    ]);
    expect(runs.map((r) => r.code)).toEqual([1, 1]);
    expect(runs[0].stderr).toBe(
      "switchboard: --pair-mode udp needs --pair-port (pair.port) and --pair-peer (pair.peer), this node's UDP port and the sibling's host:port; without them this AS would run alone. Give both, or drop --pair-mode to run alone (SB_ERR_CONFIG)\n",
    );
    expect(runs[1].stderr).toContain('switchboard: --pair-mode etcd does not use --pair-port (pair.port), --pair-peer (pair.peer): they set up the UDP pair');
    for (const r of runs) expect(r.stdout).not.toContain('listening');
  });

  it('a strategy factory that throws: exit 1, SB_ERR_CONFIG, the module named and what to export', async () => {
    const base = tmp();
    const path = join(base, 'factory-throws.mjs');
    writeFileSync(path, "export default function make() { throw new Error('factory exploded'); }\n");
    for (const extra of [[], ['--print-config']]) {
      const r = await cli(['as', '--port', '0', '--control-port', '0', '--strategy', path, ...extra], { timeoutMs: 8000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `switchboard: the strategy module ${path} exports a function that threw when called to make the strategy: factory exploded; export (as default or as "strategy") an object with pick(candidates, ctx) and, optionally, a name, or a function that returns one (SB_ERR_CONFIG)\n`,
      );
    }
  });
});

describe('--registry: the scheme is checked before anything starts', () => {
  it('refuses a scheme that is not etcd://, exit 1, on as, fs, call and in a config file', async () => {
    const base = tmp();
    writeFileSync(join(base, 'fs.yaml'), 'plugins: [echo]\nregistry: consul://127.0.0.1:8500\n');
    const runs = await Promise.all([
      cli(['as', '--port', '0', '--control-port', '0', '--registry', 'redis://127.0.0.1:6379'], { timeoutMs: 8000 }),
      cli(['fs', '--plugins', 'echo', '--port', '0', '--registry', 'redis://127.0.0.1:6379'], { timeoutMs: 8000 }),
      cli(['call', '--service', '1', '--registry', 'redis://127.0.0.1:6379'], { timeoutMs: 8000 }),
    ]);
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain("error: option '--registry <etcd://host:port,...>' argument 'redis://127.0.0.1:6379' is invalid. redis:// is not a scheme for etcd; give etcd://host:2379");
    }
    const file = await cli(['fs', '--config', join(base, 'fs.yaml'), '--print-config']);
    expect(file.code).toBe(1);
    expect(file.stderr).toContain('registry: consul:// is not a scheme for etcd');
    const tls = await cli(['as', '--registry', 'https://127.0.0.1:2379', '--print-config']);
    expect(tls.code).toBe(1);
    expect(tls.stderr).toContain('TLS to etcd is not supported yet');
    const noPort = await cli(['as', '--registry', 'etcd://127.0.0.1', '--print-config']);
    expect(noPort.code).toBe(1);
    expect(noPort.stderr).toContain('expected etcd://host:port');
  });

  it('takes the documented forms: etcd://h:p,h:p and http://h:p', async () => {
    for (const v of ['etcd://127.0.0.1:2379,127.0.0.2:2379', 'http://127.0.0.1:2379']) {
      const r = await cli(['as', '--registry', v, '--print-config']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).registry).toBe(v);
    }
  });
});

describe('call: local mistakes read as flag errors, not as server answers', () => {
  it('--service 4294967296 is a flag error like any other', async () => {
    const r = await cli(['call', '--service', '4294967296']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: option '--service <key\|name>' argument '4294967296' is invalid\. a service key is an integer from 0 to 4294967295/);
  });

  it("--service 'bad name!' is checked here, saying what a service name looks like", async () => {
    const r = await cli(['call', '--service', 'bad name!']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: option '--service <key\|name>' argument 'bad name!' is invalid\./);
    expect(r.stderr).toContain('dot-separated words of letters, digits, _ and -, such as greeter.greet');
  });

  it('an unreadable --secret-file is a usage error, not SERVER_ERROR', async () => {
    const r = await cli(['call', '--service', '1', '--secret-file', '/nonexistent/secret']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot read client secret file \/nonexistent\/secret: ENOENT/);
    expect(r.stderr).not.toMatch(/SERVER_ERROR/);
  });

  it('with no AS running, asks whether it runs once', async () => {
    const r = await cli(['call', '--as', '127.0.0.1:1', '--service', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^UNAVAILABLE: /);
    expect(r.stderr.match(/running\?/g)).toHaveLength(1);
  });
});

describe('FS log lines', () => {
  it('carry each key once: listening, plugins reloaded, draining and stopped name the FS in `fs`', async () => {
    const base = tmp();
    const pluginFile = join(base, 'watched.mjs');
    const source = (text: string): string => `import { Plugin, Service } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'index.js')).href)};
export class Watched { answer() { return ${JSON.stringify(text)}; } }
Service(9201)(Watched.prototype, 'answer');
Plugin({ name: 'watched' })(Watched);
`;
    writeFileSync(pluginFile, source('one'));
    const child = spawn(process.execPath, [CLI, 'fs', '--plugins', pluginFile, '--watch', '--port', '0', '--name', 'fs-dup-check'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const waitFor = async (msg: string): Promise<void> => {
      for (let i = 0; i < 200 && !out.includes(`"msg":"${msg}"`); i++) await new Promise((r) => setTimeout(r, 50));
      expect(out, `no "${msg}" line`).toContain(`"msg":"${msg}"`);
    };
    try {
      await waitFor('watching plugin modules; a change reloads them');
      await waitFor('function server listening');
      writeFileSync(pluginFile, source('two'));
      await waitFor('plugins reloaded');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    const lines = out.trim().split('\n');
    for (const line of lines) expect(duplicateTopKeys(line), line).toEqual([]);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const msg of ['function server listening', 'plugins reloaded', 'draining', 'function server stopped']) {
      expect(parsed.find((l) => l.msg === msg), msg).toMatchObject({ role: 'function-server', fs: 'fs-dup-check' });
    }
  });
});

describe('--plugins <package name>', () => {
  it("loads a package installed in the user's project (switchboard linked), from the working directory", async () => {
    const project = tmp();
    const pkg = join(project, 'node_modules', 'lab-pkg');
    mkdirSync(join(pkg, 'dist'), { recursive: true });
    // switchboard as a linked (file:) dependency: a symlink to this checkout.
    symlinkSync(ROOT, join(project, 'node_modules', 'switchboard'), 'dir');
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'lab-project', private: true, dependencies: { 'lab-pkg': '1.0.0', switchboard: `file:${ROOT}` } }));
    // An ES module package whose exports map answers `import` only, as tsc-built packages often do.
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'lab-pkg', version: '1.0.0', type: 'module', exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } } }));
    writeFileSync(
      join(pkg, 'dist', 'index.js'),
      "import { Plugin, Service } from 'switchboard';\nexport class LabPlugin { hi() { return 'hi'; } }\nService(9301)(LabPlugin.prototype, 'hi');\nPlugin({ name: 'lab' })(LabPlugin);\n",
    );
    const fs = new RoleProcess('fs-lab', ['fs', '--plugins', 'lab-pkg', '--port', '0', '--name', 'fs-lab'], { cliPath: CLI, cwd: project });
    started.push(fs);
    const up = await fs.waitForLog('function server listening');
    expect(up.services).toEqual([9301]);

    // Not installed anywhere: the message says where it looked and what to do.
    const missing = await cli(['fs', '--plugins', 'no-such-lab-pkg', '--port', '0'], { cwd: project });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`no package no-such-lab-pkg in node_modules from ${project} up`);
  });
});

describe('a process whose stdout reader has gone', () => {
  it('still stops on SIGTERM (exit 0): its log writes fail with EPIPE and logging stops, rather than retrying for ever at exit', async () => {
    const child = spawn(process.execPath, [CLI, 'fs', '--as', '127.0.0.1:1', '--port', '0', '--plugins', 'echo'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      // The FS is up (its handlers are set). Then the reader goes, as when a parent dies.
      let out = '';
      await new Promise<void>((r) => child.stdout.on('data', (d: Buffer) => (out += d.toString()).includes('function server listening') && r()));
      child.stdout.destroy();
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 8000))]);
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
