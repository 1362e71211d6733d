/**
 * nginx's `stream { }` proxy between the raw client and a raw server (scenario nginx), when it is
 * installed. One worker process, loopback only. Its configuration, pid file and error log live in a
 * temporary directory under bench/results/, removed when nginx exits.
 *
 * Its listening socket is made here on port 0 and handed over as fd 3; nginx adopts it through the
 * NGINX environment variable (the descriptor list it reads at start to inherit listening sockets)
 * because the `listen` line names the same address. So no port is fixed and none is guessed free.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { RESULTS_DIR } from './paths.mjs';

// Not meter.mjs's sleep: that module brings the child side of the IPC (and its signal handlers) along.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const SETUP_HINT = 'npm run bench:setup, or on Debian: apt-get install nginx libnginx-mod-stream';

/**
 * The nginx binary, its version and how to get its stream module: { ok, bin, version, loadModule }
 * or { ok: false, reason } naming what is missing.
 */
export function findNginx() {
  let bin;
  let text;
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin'])) {
    const candidate = join(dir || '.', 'nginx');
    // `nginx -V` prints its version and configure arguments on stderr.
    const r = spawnSync(candidate, ['-V'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    if (!r.error && out.includes('nginx version')) {
      bin = candidate;
      text = out;
      break;
    }
  }
  if (!bin) return { ok: false, reason: `nginx is not on PATH (${SETUP_HINT})` };
  const version = /nginx version: (\S+)/.exec(text)?.[1] ?? 'nginx';
  const args = text.split(/\s+/);
  if (args.includes('--with-stream')) return { ok: true, bin, version, loadModule: undefined };
  if (!args.includes('--with-stream=dynamic')) return { ok: false, reason: `${version} was built without the stream module (${SETUP_HINT})` };
  const modulesPath = args.find((a) => a.startsWith('--modules-path='))?.slice('--modules-path='.length);
  const prefix = args.find((a) => a.startsWith('--prefix='))?.slice('--prefix='.length) ?? '/usr/local/nginx';
  const candidates = [modulesPath, join(prefix, 'modules'), '/usr/lib/nginx/modules', '/usr/lib64/nginx/modules'].filter(Boolean);
  const module = candidates.map((d) => join(d, 'ngx_stream_module.so')).find((f) => existsSync(f));
  if (!module) return { ok: false, reason: `${version} has its stream module as a separate package, not installed (${SETUP_HINT})` };
  return { ok: true, bin, version, loadModule: module };
}

function config(dir, loadModule, listenPort, backendPort) {
  return `${loadModule ? `load_module ${loadModule};\n` : ''}daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;

events {
  worker_connections 1024;
}

stream {
  upstream bench_raw {
    server 127.0.0.1:${backendPort};
  }
  server {
    listen 127.0.0.1:${listenPort};
    proxy_pass bench_raw;
    proxy_connect_timeout 5s;
    proxy_timeout 120s;
    tcp_nodelay on;
  }
}
`;
}

/** Temporary directories left by an earlier run that was killed: their nginx is gone, so are they. */
function sweepStale() {
  let names;
  try {
    names = readdirSync(RESULTS_DIR).filter((n) => n.startsWith('nginx-'));
  } catch {
    return;
  }
  for (const n of names) {
    const dir = join(RESULTS_DIR, n);
    let pid;
    try {
      pid = Number(readFileSync(join(dir, 'nginx.pid'), 'utf8').trim());
    } catch {
      pid = undefined;
    }
    let alive = false;
    if (pid) {
      try {
        process.kill(pid, 0);
        alive = true;
      } catch {
        alive = false;
      }
    }
    if (!alive) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts nginx in the foreground (master and one worker). Resolves with { child, port } once it
 * has written its pid file. `children` is the runner's Children registry: nginx is stopped by the
 * master's PID like the rest (SIGTERM, the fast shutdown that also ends the worker), and its CPU
 * is the master's plus its worker's, read from /proc.
 */
export async function startNginx(children, found, backendPort) {
  mkdirSync(RESULTS_DIR, { recursive: true });
  sweepStale();
  const dir = mkdtempSync(join(RESULTS_DIR, 'nginx-'));
  const listener = createServer();
  await new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ port: 0, host: '127.0.0.1', backlog: 511 }, resolve);
  });
  const port = listener.address().port;
  const fd = listener._handle.fd;
  const cfg = join(dir, 'nginx.conf');
  writeFileSync(cfg, config(dir, found.loadModule, port, backendPort));
  let child;
  try {
    child = children.spawn('nginx', found.bin, ['-p', dir, '-c', cfg, '-e', join(dir, 'error.log')], {
      stdio: ['ignore', 'pipe', 'pipe', fd],
      env: { ...process.env, NGINX: '3;' },
      cpuTree: true,
    });
  } finally {
    // nginx holds its own copy of the listening socket now; ours must not accept anything.
    listener.close();
  }
  void child.exited().then(() => rmSync(dir, { recursive: true, force: true }));
  const errorLog = () => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8').trim().split('\n').slice(-5).join(' | ');
    } catch {
      return child.lines.join(' | ');
    }
  };
  const until = Date.now() + 5000;
  while (child.alive && !existsSync(join(dir, 'nginx.pid')) && Date.now() < until) await sleep(25);
  await sleep(100);
  if (!child.alive) throw new Error(`nginx exited at start: ${errorLog()}`);
  if (!existsSync(join(dir, 'nginx.pid'))) throw new Error(`nginx wrote no pid file within 5 s: ${errorLog()}`);
  const log = errorLog();
  if (/\[(emerg|alert|crit)\]/.test(log)) throw new Error(`nginx: ${log}`);
  return { child, port };
}
