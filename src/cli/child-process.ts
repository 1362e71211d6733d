import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The CLI entry point, so that launchers start children of the same build. */
export const CLI_PATH = fileURLToPath(new URL('./main.js', import.meta.url));

export interface LogLine {
  msg?: string;
  level?: number;
  [k: string]: unknown;
}

/**
 * A switchboard role in a child process. Reads its pino JSON log lines so that a launcher can
 * wait for "listening" and learn the ports it picked; stops it by PID.
 */
export class RoleProcess {
  readonly child: ChildProcess;
  readonly label: string;
  readonly #waiters: { msg: string; resolve: (l: LogLine) => void }[] = [];
  readonly #exit: Promise<number | null>;
  readonly lines: LogLine[] = [];
  /** What the process wrote to stderr (its first 64 KiB): a refused start says why there. */
  stderr = '';

  /** `cliPath` overrides the entry point (tests run from src/ but start the built CLI). */
  constructor(label: string, args: string[], opts: { echo?: boolean; cliPath?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
    this.label = label;
    this.child = spawn(process.execPath, [opts.cliPath ?? CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd });
    this.#exit = new Promise((r) => this.child.once('exit', (code) => r(code)));
    const rl = createInterface({ input: this.child.stdout as NodeJS.ReadableStream });
    rl.on('line', (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        if (opts.echo) process.stderr.write(`[${label}] ${text}\n`);
        return;
      }
      if (this.lines.length < 2000) this.lines.push(line);
      if (opts.echo && (line.level ?? 0) >= 40) process.stderr.write(`[${label}] ${line.msg}\n`);
      for (let i = this.#waiters.length - 1; i >= 0; i--) {
        if (this.#waiters[i].msg === line.msg) this.#waiters.splice(i, 1)[0].resolve(line);
      }
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      if (this.stderr.length < 64 * 1024) this.stderr += d.toString();
      if (opts.echo) process.stderr.write(`[${label}] ${d.toString()}`);
    });
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Resolves with the first log line whose msg is `msg` (from now on), or rejects after `timeoutMs`. */
  waitForLog(msg: string, timeoutMs = 10_000): Promise<LogLine> {
    const seen = this.lines.find((l) => l.msg === msg);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.label} did not log "${msg}" within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({
        msg,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      });
      void this.#exit.then((code) => {
        clearTimeout(t);
        reject(new Error(`${this.label} exited (code ${code}) before logging "${msg}"`));
      });
    });
  }

  signal(sig: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) process.kill(this.pid, sig);
  }

  /** Sends `sig`, waits for exit, and kills with SIGKILL if it has not gone within `graceMs`. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.signal(sig);
    const t = setTimeout(() => this.signal('SIGKILL'), graceMs);
    const code = await this.#exit;
    clearTimeout(t);
    return code;
  }

  exited(): Promise<number | null> {
    return this.#exit;
  }
}
