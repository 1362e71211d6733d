// Child processes for the chaos scenario: each role runs through the built CLI (RoleProcess), and
// every JSON log line it prints is kept with this process's own receive time, so that the script
// can measure "signal sent" → "the AS logged it" without trusting anyone else's clock.
import { createWriteStream } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { RoleProcess } from '../../dist/cli/child-process.js';
export { freePort } from './ports.mjs';

export const now = () => performance.now();

const MAX_EVENTS = 50_000;

/** Every role ever started, so that cleanup can stop each one by its PID. */
const started = new Set();

/** One process of one role. A restarted FS is a new Role with the same name. */
export class Role {
  /** @type {{ t: number, line: Record<string, unknown> }[]} */
  events = [];
  frozen = false;
  exitedAt = undefined;
  exit = undefined;
  #waiters = [];

  constructor(label, args, { logFile, t0 }) {
    this.label = label;
    this.startedAt = now();
    this.proc = new RoleProcess(label, args);
    started.add(this);
    const out = createWriteStream(logFile, { flags: 'a' });
    out.on('error', () => undefined);
    out.write(`# ${label}: node dist/cli/main.js ${args.join(' ')} (pid ${this.proc.pid})\n`);
    const stamp = (t) => ((t - t0) / 1000).toFixed(3).padStart(8);
    createInterface({ input: this.proc.child.stdout }).on('line', (text) => {
      const t = now();
      out.write(`${stamp(t)} ${text}\n`);
      let line;
      try {
        line = JSON.parse(text);
      } catch {
        return;
      }
      if (this.events.length < MAX_EVENTS) this.events.push({ t, line });
      for (let i = this.#waiters.length - 1; i >= 0; i--) {
        const w = this.#waiters[i];
        if (t >= w.since && w.pred(line)) {
          this.#waiters.splice(i, 1);
          w.done({ t, line });
        }
      }
    });
    this.proc.child.stderr.on('data', (d) => out.write(`${stamp(now())} [stderr] ${d}`));
    this.proc.child.once('exit', (code, signal) => {
      this.exitedAt = now();
      this.exit = { code, signal };
      this.frozen = false;
    });
    this.proc.child.once('close', () => out.end());
  }

  get pid() {
    return this.proc.pid;
  }

  get alive() {
    return this.exit === undefined;
  }

  /** The first log line matching `pred` received at or after `since`. */
  find(pred, since = 0) {
    return this.events.find((e) => e.t >= since && pred(e.line));
  }

  /** Resolves with the first matching line at or after `since`, or undefined after `timeoutMs` or when the process exits. */
  waitFor(pred, { since = 0, timeoutMs = 10_000 } = {}) {
    const seen = this.find(pred, since);
    if (seen) return Promise.resolve(seen);
    if (!this.alive) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const w = { pred, since, done: undefined };
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      const onExit = () => setTimeout(() => finish(this.find(pred, since)), 50);
      const finish = (v) => {
        clearTimeout(timer);
        this.proc.child.off('exit', onExit);
        const i = this.#waiters.indexOf(w);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve(v);
      };
      w.done = finish;
      this.#waiters.push(w);
      this.proc.child.once('exit', onExit);
    });
  }

  /** Sends a signal by PID; returns the time it was sent, or undefined if the process had gone. */
  signal(sig) {
    if (!this.alive) return undefined;
    const t = now();
    this.proc.signal(sig);
    if (sig === 'SIGSTOP') this.frozen = true;
    if (sig === 'SIGCONT') this.frozen = false;
    return t;
  }

  /** Resolves when the process has exited, or false after `timeoutMs`. */
  async exited(timeoutMs) {
    if (!this.alive) return true;
    let timer;
    const gone = await Promise.race([this.proc.exited().then(() => true), new Promise((r) => (timer = setTimeout(() => r(false), timeoutMs)))]);
    clearTimeout(timer);
    return gone;
  }

  /** Graceful stop (SIGCONT first if frozen), SIGKILL after `graceMs`. */
  async stop(graceMs = 5000) {
    if (!this.alive) return;
    if (this.frozen) this.signal('SIGCONT');
    await this.proc.stop('SIGTERM', graceMs);
  }

  /** Last resort, synchronous: for process 'exit'. */
  killNow() {
    if (!this.alive) return;
    for (const sig of ['SIGCONT', 'SIGKILL']) {
      try {
        process.kill(this.pid, sig);
      } catch {
        /* gone already */
      }
    }
  }
}

/** Stops every role started by this process, by PID, in parallel (FSs first, then the AS). */
export async function stopAll(graceMs = 5000) {
  const all = [...started].filter((r) => r.alive);
  const [as, fss] = [all.filter((r) => r.label === 'as'), all.filter((r) => r.label !== 'as')];
  await Promise.all(fss.map((r) => r.stop(graceMs).catch(() => r.killNow())));
  await Promise.all(as.map((r) => r.stop(graceMs).catch(() => r.killNow())));
}

export function killAllNow() {
  for (const r of started) r.killNow();
}

/** GET a JSON document from the AS's admin surface; undefined on any failure (bounded by `timeoutMs`). */
export function getJson(port, path, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        try {
          resolve(JSON.parse(text));
        } catch {
          resolve(undefined);
        }
      });
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/** Polls `fn` every `intervalMs` until it returns a truthy value, at most `timeoutMs`; returns that value or undefined. */
export async function poll(fn, { timeoutMs, intervalMs = 100 }) {
  const end = now() + timeoutMs;
  while (now() < end) {
    const v = await fn();
    if (v) return v;
    await sleep(intervalMs);
  }
  return undefined;
}

export function logPath(dir, label) {
  return join(dir, `${label}.log`);
}
