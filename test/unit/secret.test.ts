import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/protocol/errors.js';
import { MIN_SECRET_BYTES, readSecretFile, toSecret } from '../../src/security/secret.js';

const GOOD = 'abcdefghijklmnopqrstuvwxyz012345'; // 32 bytes

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('SB_ERR_CONFIG');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('toSecret', () => {
  it('undefined stays undefined', () => {
    expect(toSecret(undefined, 'join secret')).toBeUndefined();
  });

  it('takes 16 bytes or more, as text, Buffer or Uint8Array', () => {
    expect(MIN_SECRET_BYTES).toBe(16);
    expect(toSecret('0123456789abcdef', 's')).toEqual(Buffer.from('0123456789abcdef'));
    expect(toSecret(Buffer.from(GOOD), 's')).toEqual(Buffer.from(GOOD));
    expect(toSecret(new Uint8Array(16).fill(7), 's')).toEqual(Buffer.alloc(16, 7));
  });

  it('counts bytes, not characters', () => {
    expect(toSecret('ééééééé\u00e9', 's')).toHaveLength(16); // 8 characters, 16 bytes
  });

  it('refuses fewer than 16 bytes, saying how to make a good one', () => {
    const err = configErrorOf(() => toSecret('0123456789abcde', 'join secret'));
    expect(err.message).toContain('join secret is 15 bytes');
    expect(err.message).toContain('at least 16');
    expect(err.message).toContain('openssl rand -hex 32');
  });

  it('refuses an empty secret', () => {
    expect(configErrorOf(() => toSecret('', 'client secret')).message).toContain('client secret is 0 bytes');
  });

  it('copies the bytes: changing the input later does not change the secret', () => {
    const input = Buffer.from(GOOD);
    const s = toSecret(input, 's') as Buffer;
    input.fill(0);
    expect(s).toEqual(Buffer.from(GOOD));
  });
});

describe('readSecretFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-secret-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function file(name: string, content: string | Buffer, mode = 0o600): string {
    const p = join(dir, name);
    writeFileSync(p, content);
    chmodSync(p, mode);
    return p;
  }

  it('returns the bytes and no warning for a file only its owner can read', () => {
    const r = readSecretFile(file('s', GOOD), 'join secret');
    expect(r.secret).toEqual(Buffer.from(GOOD));
    expect(r.warning).toBeUndefined();
  });

  it('strips a trailing \\n', () => {
    expect(readSecretFile(file('s', `${GOOD}\n`), 'join secret').secret).toEqual(Buffer.from(GOOD));
  });

  it('strips a trailing \\r\\n (and several newlines)', () => {
    expect(readSecretFile(file('a', `${GOOD}\r\n`), 'join secret').secret).toEqual(Buffer.from(GOOD));
    expect(readSecretFile(file('b', `${GOOD}\n\n\r\n`), 'join secret').secret).toEqual(Buffer.from(GOOD));
  });

  it('keeps newlines and spaces that are not at the end', () => {
    const inner = `${GOOD.slice(0, 10)}\n ${GOOD.slice(10)} `;
    expect(readSecretFile(file('s', inner), 'join secret').secret).toEqual(Buffer.from(inner));
  });

  it('refuses a missing file, naming the path and how to create it', () => {
    const p = join(dir, 'nope');
    const err = configErrorOf(() => readSecretFile(p, 'join secret'));
    expect(err.message).toContain(`join secret file ${p}`);
    expect(err.message).toContain('ENOENT');
    expect(err.message).toContain(`openssl rand -hex 32 > ${p}`);
  });

  it('refuses a short file, naming the path', () => {
    const p = file('s', 'short\n');
    const err = configErrorOf(() => readSecretFile(p, 'join secret'));
    expect(err.message).toContain(`join secret file ${p} is 5 bytes`);
  });

  it('a newline does not count toward the 16 bytes', () => {
    const p = file('s', `${'x'.repeat(15)}\r\n`);
    expect(configErrorOf(() => readSecretFile(p, 'join secret')).message).toContain('is 15 bytes');
  });

  it('refuses an empty file', () => {
    const p = file('s', '');
    expect(configErrorOf(() => readSecretFile(p, 'join secret')).message).toContain(`${p} is 0 bytes`);
  });

  it.each([0o640, 0o604, 0o644, 0o660])('warns when group or others may read it (mode %o)', (mode) => {
    const p = file('s', GOOD, mode);
    const r = readSecretFile(p, 'join secret');
    expect(r.secret).toEqual(Buffer.from(GOOD));
    expect(r.warning).toContain(p);
    expect(r.warning).toContain(`mode ${mode.toString(8)}`);
    expect(r.warning).toContain('chmod 600');
  });

  it('does not warn for mode 400', () => {
    expect(readSecretFile(file('s', GOOD, 0o400), 'join secret').warning).toBeUndefined();
  });
});
