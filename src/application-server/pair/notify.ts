import { spawn } from 'node:child_process';
import type { Logger } from '../../common/logger.js';

/** Longest a notify command may run before it is killed. */
const NOTIFY_TIMEOUT_MS = 30_000;

/**
 * Runs the operator's command on a role change, as keepalived's notify scripts do (to move a
 * virtual IP, say). One at a time: a change that comes while one runs waits, and only the latest
 * waits, so a flapping pair cannot pile up processes. The role, epoch and reason are in the
 * environment (SWITCHBOARD_ROLE, SWITCHBOARD_EPOCH, SWITCHBOARD_REASON).
 */
export class NotifyRunner {
  readonly #logger: Logger;
  #running = false;
  #next: { command: string; env: Record<string, string> } | undefined;
  /** Commands run and how they ended, for tests and metrics. */
  readonly history: { command: string; role: string; code: number | null; signal: string | null }[] = [];

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  run(command: string | undefined, role: string, epoch: number, reason: string): void {
    if (!command) return;
    this.#next = { command, env: { SWITCHBOARD_ROLE: role, SWITCHBOARD_EPOCH: String(epoch), SWITCHBOARD_REASON: reason } };
    if (!this.#running) this.#start();
  }

  #start(): void {
    const job = this.#next;
    if (!job) return;
    this.#next = undefined;
    this.#running = true;
    const child = spawn(job.command, { shell: true, stdio: 'ignore', env: { ...process.env, ...job.env } });
    const timer = setTimeout(() => child.kill('SIGKILL'), NOTIFY_TIMEOUT_MS);
    timer.unref();
    let ended = false;
    const done = (code: number | null, signal: string | null): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      this.#running = false;
      if (this.history.length >= 100) this.history.shift();
      this.history.push({ command: job.command, role: job.env.SWITCHBOARD_ROLE, code, signal });
      const level = code === 0 ? 'info' : 'warn';
      this.#logger[level]({ command: job.command, role: job.env.SWITCHBOARD_ROLE, code, signal }, 'notify command finished');
      this.#start();
    };
    child.once('error', (err) => {
      this.#logger.warn({ command: job.command, err: err.message }, 'notify command could not start');
      done(null, null);
    });
    child.once('exit', done);
  }
}
