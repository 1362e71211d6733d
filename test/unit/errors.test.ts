import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as protocolErrors from '../../src/protocol/errors.js';
import {
  AuthError,
  NotActiveError,
  BadMagicError,
  BadRequestError,
  BadVersionError,
  BodyDecodeError,
  ChannelClosedError,
  ConfigError,
  ConnectError,
  DeadlineExceededError,
  ERROR_CODES,
  FrameTooLargeError,
  OverloadedError,
  ServerError,
  ServiceFailedError,
  ServiceNotFoundError,
  SwitchboardError,
  UnavailableError,
  errorFromStatus,
} from '../../src/protocol/errors.js';
import { PLUGIN_ERROR_CODES, PluginError } from '../../src/plugins/errors.js';
import { Status, statusName } from '../../src/protocol/status.js';

type AnyErrorClass = abstract new (...args: never[]) => SwitchboardError;

/** One row per exported error class: how to build it, and the code and status it must carry. */
const TABLE: [AnyErrorClass, () => SwitchboardError, string, number][] = [
  [BadMagicError, () => new BadMagicError(0x4854), 'SB_ERR_BAD_MAGIC', Status.BAD_REQUEST],
  [BadVersionError, () => new BadVersionError(3), 'SB_ERR_BAD_VERSION', Status.BAD_REQUEST],
  [FrameTooLargeError, () => new FrameTooLargeError(10, 5), 'SB_ERR_FRAME_TOO_LARGE', Status.BAD_REQUEST],
  [BodyDecodeError, () => new BodyDecodeError(new Error('x')), 'SB_ERR_BAD_BODY', Status.BAD_REQUEST],
  [BadRequestError, () => new BadRequestError(), 'SB_ERR_BAD_REQUEST', Status.BAD_REQUEST],
  [ServiceNotFoundError, () => new ServiceNotFoundError(), 'SB_ERR_SERVICE_NOT_FOUND', Status.SERVICE_NOT_FOUND],
  [UnavailableError, () => new UnavailableError(), 'SB_ERR_UNAVAILABLE', Status.UNAVAILABLE],
  [DeadlineExceededError, () => new DeadlineExceededError(), 'SB_ERR_TIMEOUT', Status.TIMEOUT],
  [ServiceFailedError, () => new ServiceFailedError('boom', 'X'), 'SB_ERR_SERVICE', Status.SERVICE_ERROR],
  [ServerError, () => new ServerError(), 'SB_ERR_SERVER', Status.SERVER_ERROR],
  [ChannelClosedError, () => new ChannelClosedError(), 'SB_ERR_CHANNEL_CLOSED', Status.CHANNEL_CLOSED],
  [OverloadedError, () => new OverloadedError(), 'SB_ERR_OVERLOADED', Status.OVERLOADED],
  [ConfigError, () => new ConfigError('bad'), 'SB_ERR_CONFIG', Status.SERVER_ERROR],
  [ConnectError, () => new ConnectError('refused'), 'SB_ERR_CONNECT', Status.UNAVAILABLE],
  [AuthError, () => new AuthError('SB_ERR_AUTH_FAILED', 'wrong proof'), 'SB_ERR_AUTH_FAILED', Status.UNAUTHORIZED],
  [NotActiveError, () => new NotActiveError('standby', { host: '127.0.0.1', port: 7100 }), 'SB_ERR_NOT_ACTIVE', Status.NOT_ACTIVE],
];

describe('error classes', () => {
  it('the table covers every error class src/protocol/errors.ts exports', () => {
    const exported = (Object.values(protocolErrors) as unknown[]).filter(
      (v): v is AnyErrorClass => typeof v === 'function' && v.prototype instanceof SwitchboardError,
    );
    expect(new Set(exported)).toEqual(new Set(TABLE.map(([cls]) => cls)));
  });

  it.each(TABLE.map(([cls, make, code, status]) => [cls.name, make, code, status] as const))(
    '%s has a stable code and status',
    (name, make, code, status) => {
      const err = make();
      expect(err).toBeInstanceOf(SwitchboardError);
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe(code);
      expect(err.status).toBe(status);
      expect(err.name).toBe(name);
      expect(err.message.length).toBeGreaterThan(0);
      expect(ERROR_CODES).toContain(code);
    },
  );

  it('SwitchboardError defaults to SERVER_ERROR status', () => {
    const e = new SwitchboardError('SB_ERR_X', 'msg');
    expect(e.status).toBe(Status.SERVER_ERROR);
    expect(e.name).toBe('SwitchboardError');
  });

  it('BodyDecodeError keeps its cause', () => {
    const cause = new Error('inner');
    expect(new BodyDecodeError(cause).cause).toBe(cause);
  });
});

describe('PluginError', () => {
  it('takes a code of 1 to 128 characters and refuses others where the error is made, saying what to give', () => {
    expect(new PluginError('C'.repeat(128), 'm').code).toHaveLength(128);
    for (const bad of ['', 'C'.repeat(129), 42 as unknown as string]) {
      expect(() => new PluginError(bad, 'm')).toThrow(/a PluginError code must be 1 to 128 characters.*such as 'UNKNOWN_CITY'/);
    }
  });
});

describe('errorFromStatus', () => {
  const cases: [keyof typeof Status, AnyErrorClass, string][] = [
    ['BAD_REQUEST', BadRequestError, 'SB_ERR_BAD_REQUEST'],
    ['SERVICE_NOT_FOUND', ServiceNotFoundError, 'SB_ERR_SERVICE_NOT_FOUND'],
    ['UNAVAILABLE', UnavailableError, 'SB_ERR_UNAVAILABLE'],
    ['TIMEOUT', DeadlineExceededError, 'SB_ERR_TIMEOUT'],
    ['SERVICE_ERROR', ServiceFailedError, 'SB_ERR_SERVICE'],
    ['SERVER_ERROR', ServerError, 'SB_ERR_SERVER'],
    ['CHANNEL_CLOSED', ChannelClosedError, 'SB_ERR_CHANNEL_CLOSED'],
    ['OVERLOADED', OverloadedError, 'SB_ERR_OVERLOADED'],
    ['UNAUTHORIZED', AuthError, 'SB_ERR_AUTH_FAILED'],
    ['NOT_ACTIVE', NotActiveError, 'SB_ERR_NOT_ACTIVE'],
  ];

  it.each(cases)('maps %s to its class and keeps the message', (name, cls, code) => {
    const err = errorFromStatus(Status[name], { code: 'WHATEVER', message: 'went wrong' });
    expect(err).toBeInstanceOf(cls);
    expect(err.code).toBe(code);
    expect(err.status).toBe(Status[name]);
    expect(err.message).toBe('went wrong');
  });

  it('covers every non-OK status', () => {
    const mapped = new Set(cases.map(([n]) => n));
    const nonOk = (Object.keys(Status) as (keyof typeof Status)[]).filter((n) => n !== 'OK');
    expect(new Set(nonOk)).toEqual(mapped);
  });

  it('NotActiveError keeps the active endpoint from the body, and drops a malformed one', () => {
    const e = errorFromStatus(Status.NOT_ACTIVE, { code: 'SB_ERR_NOT_ACTIVE', message: 'standby', active: { host: '10.0.0.1', port: 7100 } }) as NotActiveError;
    expect(e.active).toEqual({ host: '10.0.0.1', port: 7100 });
    expect((errorFromStatus(Status.NOT_ACTIVE, { message: 'x', active: { host: '', port: 0 } }) as NotActiveError).active).toBeUndefined();
    expect((errorFromStatus(Status.NOT_ACTIVE, { message: 'x', active: 'nope' }) as NotActiveError).active).toBeUndefined();
  });

  it('ServiceFailedError keeps the plugin error code as serviceCode', () => {
    const err = errorFromStatus(Status.SERVICE_ERROR, { code: 'UNKNOWN_CITY', message: 'no such city' });
    expect(err).toBeInstanceOf(ServiceFailedError);
    expect((err as ServiceFailedError).serviceCode).toBe('UNKNOWN_CITY');
    expect(err.code).toBe('SB_ERR_SERVICE');
  });

  it('ServiceFailedError without a code in the body has serviceCode undefined', () => {
    const err = errorFromStatus(Status.SERVICE_ERROR, { message: 'x' }) as ServiceFailedError;
    expect(err.serviceCode).toBeUndefined();
  });

  it('falls back to the status name when the body has no message', () => {
    expect(errorFromStatus(Status.TIMEOUT, undefined).message).toBe('TIMEOUT');
    expect(errorFromStatus(Status.UNAVAILABLE, { message: 42 }).message).toBe('UNAVAILABLE');
  });

  it('an unknown status gives SB_ERR_UNKNOWN_STATUS, keeping the status', () => {
    const err = errorFromStatus(99, { message: 'from the future' });
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err.code).toBe('SB_ERR_UNKNOWN_STATUS');
    expect(err.status).toBe(99);
    expect(err.message).toContain('STATUS_99');
    expect(err.message).toContain('from the future');
  });
});

describe('statusName', () => {
  it.each(Object.entries(Status))('names %s', (name, code) => {
    expect(statusName(code)).toBe(name);
  });

  it('names an unknown code STATUS_<n>', () => {
    expect(statusName(99)).toBe('STATUS_99');
    expect(statusName(255)).toBe('STATUS_255');
  });
});

describe('documentation (every code and status is documented)', () => {
  const docPath = (name: string): string => fileURLToPath(new URL(`../../docs/${name}`, import.meta.url));
  const readDoc = (name: string): string => {
    const path = docPath(name);
    expect(existsSync(path), `${path} must exist`).toBe(true);
    return readFileSync(path, 'utf8');
  };

  it('docs/errors.md lists every code in ERROR_CODES and PLUGIN_ERROR_CODES', () => {
    const text = readDoc('errors.md');
    const missing = [...ERROR_CODES, ...PLUGIN_ERROR_CODES].filter((code) => !text.includes(code));
    expect(missing, 'codes missing from docs/errors.md').toEqual([]);
  });

  it('docs/protocol.md names every status', () => {
    const text = readDoc('protocol.md');
    const missing = Object.keys(Status).filter((name) => !new RegExp(`\\b${name}\\b`).test(text));
    expect(missing, 'statuses missing from docs/protocol.md').toEqual([]);
  });
});

describe('code registry', () => {
  it('every SB_ERR_* literal in src/ is listed in ERROR_CODES or PLUGIN_ERROR_CODES', () => {
    const srcDir = fileURLToPath(new URL('../../src', import.meta.url));
    const files = readdirSync(srcDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const used = new Set<string>();
    for (const f of files) {
      for (const m of readFileSync(join(srcDir, f), 'utf8').matchAll(/['"`](SB_ERR_[A-Z0-9_]+)['"`]/g)) used.add(m[1]);
    }
    const known = new Set<string>([...ERROR_CODES, ...PLUGIN_ERROR_CODES]);
    expect([...used].filter((c) => !known.has(c)), 'codes raised in src/ but not registered').toEqual([]);
  });

  it('no code is listed twice', () => {
    const all = [...ERROR_CODES, ...PLUGIN_ERROR_CODES];
    expect(new Set(all).size).toBe(all.length);
  });
});

describe('errorFromStatus keeps the wire code', () => {
  it('keeps a Switchboard code that is narrower than its status (SB_ERR_BAD_BODY under BAD_REQUEST)', () => {
    const e = protocolErrors.errorFromStatus(Status.BAD_REQUEST, { code: 'SB_ERR_BAD_BODY', message: 'bad msgpack' });
    expect(e).toBeInstanceOf(protocolErrors.BadRequestError);
    expect(e.code).toBe('SB_ERR_BAD_BODY');
    expect(e.status).toBe(Status.BAD_REQUEST);
  });

  it('does not let a foreign code replace a status class code', () => {
    const e = protocolErrors.errorFromStatus(Status.OVERLOADED, { code: 'MY_OWN', message: 'x' });
    expect(e.code).toBe('SB_ERR_OVERLOADED');
  });
});
