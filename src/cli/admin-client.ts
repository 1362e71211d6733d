import { readSecretFile } from '../security/index.js';

export interface AdminTarget {
  host: string;
  port: number;
  tokenFile?: string;
  /** Speak HTTPS (the AS has a TLS certificate); `caFile` to trust it. */
  https?: boolean;
}

/** A small JSON client for the AS admin surface, for the CLI commands. Exit codes: see callers. */
export async function adminRequest(t: AdminTarget, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (t.tokenFile) headers.authorization = `Bearer ${readSecretFile(t.tokenFile, 'admin token').secret.toString('utf8')}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const url = `${t.https ? 'https' : 'http'}://${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}${path}`;
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  } catch (err) {
    throw new Error(`cannot reach the admin port at ${t.host}:${t.port}: ${(err as Error).message}; is the AS running with --admin-port?`, { cause: err });
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, body: parsed };
}
