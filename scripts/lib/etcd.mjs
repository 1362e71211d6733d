// A throw-away etcd for the scripts and the tests (test/fixtures/etcd.ts re-exports it): Debian's
// etcd-server binary on loopback, random free ports, a temporary data directory, ready once GET
// /health answers. stop() kills it by its PID and removes the directory; killNow() is the
// synchronous last resort for a process 'exit' handler. Types: etcd.d.mts.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePorts } from './ports.mjs';

/** Why etcd cannot run here, or undefined when it can. */
export function etcdMissing() {
  const r = spawnSync('etcd', ['--version'], { stdio: 'ignore' });
  return r.status === 0 ? undefined : 'etcd is not installed (Debian: apt-get install etcd-server; .ci/run installs it)';
}

/**
 * Starts etcd and resolves once it is healthy (at most `readyMs`). The result has `url`
 * (`etcd://127.0.0.1:<port>`, what `switchboard as --registry` takes), `clientPort`, `pid`, `dir`,
 * `pause()` / `resume()` (SIGSTOP / SIGCONT), `stop()` and `killNow()`.
 */
export async function startEtcd({ readyMs = 15_000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-etcd-'));
  let child;
  let stderr = '';
  const killNow = () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      for (const sig of ['SIGCONT', 'SIGKILL']) {
        try {
          process.kill(child.pid, sig);
        } catch {
          /* already gone */
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      killNow();
      await Promise.race([gone, sleep(5000)]);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const {
      tcp: [clientPort, peerPort],
    } = await freePorts(2);
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    child = spawn(
      'etcd',
      [
        '--name', 'switchboard-chaos',
        '--data-dir', join(dir, 'data'),
        '--listen-client-urls', client,
        '--advertise-client-urls', client,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `switchboard-chaos=${peer}`,
        '--initial-cluster-state', 'new',
        '--log-level', 'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr.on('data', (d) => (stderr = (stderr + d.toString()).slice(-4000)));
    const spawnError = new Promise((_, reject) => child.once('error', reject));
    spawnError.catch(() => undefined);
    const deadline = Date.now() + readyMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}) before it was ready: ${stderr.trim()}`);
      const healthy = await Promise.race([
        fetch(`${client}/health`, { signal: globalThis.AbortSignal.timeout(1000) }).then((r) => r.ok, () => false),
        spawnError,
      ]);
      if (healthy) break;
      if (Date.now() > deadline) throw new Error(`etcd did not answer /health within ${readyMs} ms: ${stderr.trim()}`);
      await sleep(100);
    }
    const pause = () => child.kill('SIGSTOP');
    const resume = () => child.kill('SIGCONT');
    return { url: `etcd://127.0.0.1:${clientPort}`, clientPort, pid: child.pid, dir, pause, resume, stop, killNow };
  } catch (err) {
    await stop();
    throw err;
  }
}
