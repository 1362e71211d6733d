/**
 * The runner's side of every child process: started here, known by PID, asked for its CPU time,
 * and stopped by PID at the end, on error and on SIGINT. Loopback only; children pick their own
 * ports (port 0) and report them.
 */
import { fork, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { procCpuUs, procDescendants, procTreeCpuUs } from './proc-cpu.mjs';
import { procScript } from './paths.mjs';

const KEEP_LINES = 40;

export class Child {
  label;
  proc;
  ipc;
  lines = [];
  #nextId = 0;
  #waiters = new Map();
  #exit;

  /** For an external program that forks workers (nginx): count its descendants' CPU too. */
  cpuTree = false;

  constructor(label, proc, ipc, verbose) {
    this.label = label;
    this.proc = proc;
    this.ipc = ipc;
    this.#exit = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    for (const stream of [proc.stdout, proc.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        this.lines.push(line);
        if (this.lines.length > KEEP_LINES) this.lines.shift();
        if (verbose) process.stderr.write(`[${label}] ${line}\n`);
      });
    }
    proc.on('message', (msg) => this.#onMessage(msg));
    proc.on('error', (err) => this.lines.push(`spawn error: ${err.message}`));
    void this.#exit.then(({ code, signal }) => {
      const err = new Error(`${label} (pid ${proc.pid}) exited (${signal ?? `code ${code}`})${this.lines.length ? `; last output:\n  ${this.lines.slice(-10).join('\n  ')}` : ''}`);
      for (const w of this.#waiters.values()) w.reject(err);
      this.#waiters.clear();
    });
  }

  get pid() {
    return this.proc.pid;
  }

  get alive() {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Resolves with the next message of `type` (matching `id` when given). */
  waitFor(type, { id, timeoutMs = 20_000 } = {}) {
    const key = `${type}#${id ?? ''}`;
    return new Promise((resolve, reject) => {
      if (!this.alive) return reject(new Error(`${this.label} is not running`));
      const t = setTimeout(() => {
        this.#waiters.delete(key);
        reject(new Error(`${this.label}: no "${type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.set(key, {
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
    });
  }

  /** A fresh message id, for a caller that must wait on messages tagged with it before sending. */
  nextId() {
    return ++this.#nextId;
  }

  /** Sends a request and resolves with its answer (`<type>:done` with the same id). */
  async request(msg, timeoutMs, id = this.nextId()) {
    const done = this.waitFor(`${msg.type}:done`, { id, timeoutMs });
    this.proc.send({ ...msg, id });
    const answer = await done;
    if (!answer.ok) throw new Error(`${this.label}: ${answer.error}`);
    return answer.result;
  }

  /** Cumulative CPU time (user + system) in µs: asked over IPC, or read from /proc. */
  async cpuUs() {
    if (!this.ipc) return this.cpuTree ? procTreeCpuUs(this.pid) : procCpuUs(this.pid);
    const id = ++this.#nextId;
    const answer = this.waitFor('cpu', { id, timeoutMs: 5000 });
    this.proc.send({ type: 'cpu', id });
    return (await answer).us;
  }

  #onMessage(msg) {
    if (!msg || typeof msg.type !== 'string') return;
    const exact = this.#waiters.get(`${msg.type}#${msg.id ?? ''}`);
    const any = this.#waiters.get(`${msg.type}#`);
    const w = exact ?? any;
    if (!w) return;
    this.#waiters.delete(exact ? `${msg.type}#${msg.id ?? ''}` : `${msg.type}#`);
    w.resolve(msg);
  }

  /** SIGKILL by PID; for a master that forks workers, its descendants first, so none is orphaned. */
  kill() {
    const pids = this.cpuTree ? [...procDescendants(this.pid).reverse(), this.pid] : [this.pid];
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  /** Asks it to stop (IPC, then SIGTERM), and SIGKILLs it after `graceMs`. */
  async stop(graceMs = 4000) {
    if (!this.alive) return;
    try {
      if (this.ipc && this.proc.connected) this.proc.send({ type: 'exit' });
      else process.kill(this.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const t = setTimeout(() => {
      if (this.alive) this.kill();
    }, graceMs);
    await this.#exit;
    clearTimeout(t);
  }

  exited() {
    return this.#exit;
  }
}

export class Children {
  #all = new Set();
  #verbose;
  #profile;
  #profileDir;
  #profileIntervalUs;
  /** Labels of the children started with --cpu-prof, and where their profiles go (label.cpuprofile). */
  profiled = [];

  constructor({ verbose = false, profile = [], profileDir = undefined, profileIntervalUs = 1000 } = {}) {
    this.#verbose = verbose;
    this.#profileIntervalUs = profileIntervalUs;
    this.#profile = new Set(profile);
    this.#profileDir = profileDir;
    // Last resort: whatever is still running when the runner exits is killed by PID.
    process.on('exit', () => {
      for (const c of this.#all) {
        if (c.alive) c.kill();
      }
    });
  }

  /** Forks one of bench/lib/procs/<name>.mjs with an IPC channel and waits for its "ready". */
  async fork(label, name, args = [], { readyTimeoutMs = 20_000 } = {}) {
    const execArgv = [];
    if (this.#profile.has(label)) {
      // The profile is written when the child exits cleanly, which stop() lets it do.
      execArgv.push('--cpu-prof', '--cpu-prof-interval', String(this.#profileIntervalUs), '--cpu-prof-dir', this.#profileDir, '--cpu-prof-name', `${label}.cpuprofile`);
      this.profiled.push(label);
    }
    const proc = fork(procScript(name), args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv });
    const child = new Child(label, proc, true, this.#verbose);
    this.#all.add(child);
    // A child that cannot start says why ({ type: 'error' }) before it exits: that is the reason given.
    const failed = child.waitFor('error', { timeoutMs: readyTimeoutMs + 1000 }).then((m) => {
      throw new Error(`${label}: ${m.message}`);
    });
    failed.catch(() => undefined);
    child.info = await Promise.race([child.waitFor('ready', { timeoutMs: readyTimeoutMs }), failed]);
    return child;
  }

  /**
   * Spawns an external program (haproxy, nginx); its CPU is read from /proc (with `cpuTree`, its
   * own and its descendants', for a master that forks workers).
   */
  spawn(label, command, args, { stdio = ['ignore', 'pipe', 'pipe'], env = undefined, cpuTree = false } = {}) {
    const proc = spawn(command, args, { stdio, env });
    const child = new Child(label, proc, false, this.#verbose);
    child.cpuTree = cpuTree;
    this.#all.add(child);
    return child;
  }

  async stop(list) {
    await Promise.all(list.map((c) => c.stop()));
    for (const c of list) this.#all.delete(c);
  }

  async stopAll() {
    await this.stop([...this.#all]);
  }

  get running() {
    return [...this.#all].filter((c) => c.alive);
  }
}
