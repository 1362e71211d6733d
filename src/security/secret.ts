import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from '../protocol/index.js';

/** Shortest secret accepted: 16 bytes (128 bits) of whatever the operator put in the file. */
export const MIN_SECRET_BYTES = 16;

/** A secret given as text or bytes, checked; undefined stays undefined. */
export function toSecret(value: string | Buffer | Uint8Array | undefined, what: string): Buffer | undefined {
  if (value === undefined) return undefined;
  const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  if (b.length < MIN_SECRET_BYTES) {
    throw new ConfigError(`${what} is ${b.length} bytes; use at least ${MIN_SECRET_BYTES} random bytes (for example: openssl rand -hex 32 > secret)`);
  }
  return b;
}

export interface SecretFile {
  secret: Buffer;
  /** Set when group or others may read the file: the caller logs it. */
  warning?: string;
}

/**
 * Reads a secret file: its bytes without a trailing newline. Refuses a missing, empty or short
 * file with the path and what to do.
 */
export function readSecretFile(path: string, what: string): SecretFile {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    throw new ConfigError(`cannot read ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; create it (openssl rand -hex 32 > ${path}) or fix the path`, { cause: err });
  }
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d)) end--;
  const secret = toSecret(raw.subarray(0, end), `${what} file ${path}`) as Buffer;
  const mode = statSync(path).mode & 0o077;
  const warning = mode !== 0 ? `${what} file ${path} can be read by other users (mode ${(statSync(path).mode & 0o777).toString(8)}); chmod 600 it` : undefined;
  return { secret, warning };
}
