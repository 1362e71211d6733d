import { readFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Command } from 'commander';
import { readSecretFile } from '../security/index.js';
import { parseEndpoint } from './parse.js';

/** Exit codes shared by every command that talks to the admin port (status, pair, fs-admin, top). */
export const EXIT = {
  OK: 0,
  /** A usage error, or the AS refused the request (4xx other than 401 and 404) or failed (5xx). */
  FAILED: 1,
  /** No such function server (404). */
  NOT_FOUND: 2,
  /** The admin token is missing or wrong (401). */
  UNAUTHORIZED: 3,
  /** The admin port cannot be reached, or the event stream ended. */
  UNREACHABLE: 4,
  /** The AS answers but cannot serve now (`status` only). */
  NOT_READY: 5,
} as const;

export const EXIT_CODES_HELP = `
Exit codes (the same for status, pair, fs-admin and top):
  0  done
  1  usage error, or the AS refused the request (any 4xx but 401 and 404) or failed (5xx)
  2  not found: no function server with that id (404)
  3  unauthorized: the admin token is missing or wrong (401)
  4  cannot reach the admin port (nothing listens, timeout, TLS refused), or the event stream ended
  5  not ready: the AS answers but cannot serve requests now (status only)`;

/** A failure a command reports with its exit code; the message says what to do next. */
export class AdminError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface AdminTarget {
  host: string;
  port: number;
  /** Bearer token, read from --token-file. */
  token?: string;
  tokenFile?: string;
  /** Speak HTTPS (the AS has a TLS certificate); `ca` to trust it when a public CA did not sign it. */
  https?: boolean;
  ca?: Buffer;
  /** Per request: connect, then silence between bytes (default 5000). */
  timeoutMs?: number;
}

export interface AdminFlags {
  admin: { host: string; port: number };
  tokenFile?: string;
  https?: boolean;
  caFile?: string;
  json?: boolean;
}

/** Adds the flags every admin command takes, and the exit-code table to its --help. */
export function withAdminOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--admin <host:port>', "the AS's admin endpoint (its --admin-port)", parseEndpoint)
    .option('--token-file <file>', "file holding the admin token (the AS's --admin-token-file)")
    .option('--https', 'the admin port speaks HTTPS (the AS has --tls-cert)', false)
    .option('--ca-file <file>', "PEM CA that signed the AS's certificate (with --https)")
    .option('--json', 'print JSON for scripts', false)
    .addHelpText('after', EXIT_CODES_HELP);
}

/** Reads the token and CA files once, up front: a wrong path is a usage error (exit 1). */
export function adminTarget(o: AdminFlags): AdminTarget {
  const t: AdminTarget = { ...o.admin, tokenFile: o.tokenFile, https: o.https || o.caFile !== undefined };
  if (o.tokenFile) {
    const r = readSecretFile(o.tokenFile, 'admin token');
    if (r.warning) process.stderr.write(`warning: ${r.warning}\n`);
    t.token = r.secret.toString('utf8');
  }
  if (o.caFile) {
    try {
      t.ca = readFileSync(o.caFile);
    } catch (err) {
      throw new AdminError(`cannot read --ca-file ${o.caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; fix the path`, EXIT.FAILED);
    }
  }
  return t;
}

const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

const where = (t: AdminTarget): string => `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;

/** Why a connection failed, and what to try. */
function unreachable(t: AdminTarget, err: Error & { code?: string }): AdminError {
  const code = err.code ?? err.message;
  let hint = `is the AS running with --admin-port ${t.port}?`;
  if (/CERT|SELF_SIGNED|UNABLE_TO|ALTNAME/.test(code)) hint = "pass --ca-file with the CA that signed the AS's certificate";
  else if (code === 'EPROTO' || /wrong version/i.test(err.message)) hint = t.https ? 'the admin port speaks plain HTTP: drop --https' : 'the admin port speaks HTTPS: add --https';
  else if (code === 'ECONNRESET' || code === 'HPE_INVALID_CONSTANT') hint = t.https ? hint : 'if the AS has --tls-cert, add --https';
  return new AdminError(`cannot reach the admin port at ${where(t)}: ${code}; ${hint}`, EXIT.UNREACHABLE, code);
}

/** Sends one request; resolves with the response (not yet read), or rejects with exit code 4. */
function send(t: AdminTarget, method: string, path: string, body?: unknown, stream = false): Promise<{ res: IncomingMessage; abort: () => void }> {
  const accept = stream ? 'text/event-stream' : 'application/json';
  const headers: Record<string, string> = { accept };
  if (t.token !== undefined) headers.authorization = `Bearer ${t.token}`;
  const payload = body === undefined ? undefined : JSON.stringify(body);
  if (payload !== undefined) headers['content-type'] = 'application/json';
  const opts = { host: t.host, port: t.port, path, method, headers, agent: false as const, ...(t.ca ? { ca: t.ca } : {}) };
  return new Promise((resolve, reject) => {
    const req = (t.https ? https : http).request(opts, (res) => {
      if (stream) req.setTimeout(0); // a quiet stream is not a dead one: `top` watches it itself
      resolve({ res, abort: () => req.destroy() });
    });
    req.setTimeout(t.timeoutMs ?? 5000, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (err) => reject(unreachable(t, err)));
    req.end(payload);
  });
}

/** One JSON request to the admin surface: { status, body } (body is the text when it is not JSON). */
export async function adminRequest(t: AdminTarget, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const { res } = await send(t, method, path, body);
  res.setEncoding('utf8');
  let text = '';
  try {
    for await (const chunk of res as AsyncIterable<string>) {
      text += chunk;
      if (text.length > MAX_ANSWER_BYTES) throw new AdminError(`the admin port at ${where(t)} sent more than ${MAX_ANSWER_BYTES} bytes for ${path}`, EXIT.FAILED);
    }
  } catch (err) {
    if (err instanceof AdminError) throw err;
    throw unreachable(t, err as Error);
  }
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.statusCode ?? 0, body: parsed };
}

/** The body of a 2xx answer; otherwise an AdminError with the exit code for that status. */
export function expectOk<T>(t: AdminTarget, r: { status: number; body: unknown }): T {
  if (r.status >= 200 && r.status < 300) return r.body as T;
  throw refusal(t, r.status, r.body);
}

function refusal(t: AdminTarget, status: number, body: unknown): AdminError {
  const e = (typeof body === 'object' && body !== null ? body : {}) as { code?: string; message?: string };
  const message = e.message ?? (typeof body === 'string' ? body.slice(0, 200) : JSON.stringify(body));
  if (status === 401) {
    return t.token === undefined
      ? new AdminError(`the AS at ${where(t)} wants its admin token: pass --token-file with the file given to its --admin-token-file`, EXIT.UNAUTHORIZED, e.code)
      : new AdminError(`the AS at ${where(t)} refused the token in ${t.tokenFile}: it is not the one in the AS's --admin-token-file`, EXIT.UNAUTHORIZED, e.code);
  }
  if (status === 404) return new AdminError(message, EXIT.NOT_FOUND, e.code);
  return new AdminError(`the AS refused (${status}${e.code ? ` ${e.code}` : ''}): ${message}`, EXIT.FAILED, e.code);
}

/** Opens a Server-Sent Event stream; a non-200 answer is read and turned into an AdminError. */
export async function adminStream(t: AdminTarget, path: string): Promise<{ res: IncomingMessage; abort: () => void }> {
  const opened = await send(t, 'GET', path, undefined, true);
  if (opened.res.statusCode === 200) return opened;
  let text = '';
  opened.res.setEncoding('utf8');
  for await (const chunk of opened.res as AsyncIterable<string>) if (text.length < 65_536) text += chunk;
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* keep the text */
  }
  throw refusal(t, opened.res.statusCode ?? 0, body);
}

/** Reports a failure (stderr; also stdout as JSON with --json) and sets the exit code. */
export function fail(err: unknown, json = false): void {
  const e = err instanceof AdminError ? err : undefined;
  const exitCode = e?.exitCode ?? EXIT.FAILED;
  const message = (err as Error).message ?? String(err);
  const code = e?.code ?? (err as { code?: string }).code;
  process.stderr.write(`switchboard: ${message}\n`);
  if (json) process.stdout.write(`${JSON.stringify({ error: { exitCode, code: code ?? null, message } })}\n`);
  process.exitCode = exitCode;
}

/** Wraps a commander action: any error becomes fail() with that command's --json. */
export function adminAction<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await fn(...args);
    } catch (err) {
      const cmd = args[args.length - 1] as Command;
      fail(err, (cmd.opts() as { json?: boolean }).json === true);
    }
  };
}
