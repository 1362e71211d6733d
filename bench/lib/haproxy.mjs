/**
 * haproxy in TCP mode between the raw client and a raw server (scenario 4), when it is installed.
 * Its listening socket is made here on port 0 and handed over as fd 3 (`bind fd@3`), so no port
 * is fixed and none is guessed free.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The haproxy binary and its version, or undefined when it is not on PATH. */
export function findHaproxy() {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin'])) {
    const bin = join(dir || '.', 'haproxy');
    try {
      const out = execFileSync(bin, ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
      return { bin, version: out.split('\n')[0].trim() };
    } catch {
      /* not here */
    }
  }
  return undefined;
}

function config(backendPort) {
  return `global
  nbthread 1
  maxconn 1024
  log stderr format raw local0 emerg

defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s

frontend bench_in
  bind fd@3
  default_backend bench_raw

backend bench_raw
  server raw 127.0.0.1:${backendPort}
`;
}

/**
 * Starts haproxy in the foreground with one thread. Resolves with { child, port } once it runs.
 * `children` is the runner's Children registry, so haproxy is stopped by PID like the rest.
 */
export async function startHaproxy(children, bin, backendPort) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-haproxy-'));
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, config(backendPort));
  const listener = createServer();
  await new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ port: 0, host: '127.0.0.1', backlog: 128 }, resolve);
  });
  const port = listener.address().port;
  const fd = listener._handle.fd;
  let child;
  try {
    child = children.spawn('haproxy', bin, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe', fd] });
  } finally {
    // haproxy holds its own copy of the listening socket now; ours must not accept anything.
    listener.close();
  }
  void child.exited().then(() => rmSync(dir, { recursive: true, force: true }));
  await new Promise((r) => setTimeout(r, 300));
  if (!child.alive) {
    throw new Error(`haproxy exited at start${child.lines.length ? `: ${child.lines.join(' | ')}` : ''}`);
  }
  return { child, port };
}
