import { describe, expect, it } from 'vitest';
import { BadMagicError, BadRequestError, BadVersionError, NotActiveError, errorFromStatus } from '../../src/protocol/errors.js';
import { Status } from '../../src/protocol/status.js';

// What errorFromStatus keeps from an error body that came over the wire: validation issues and the
// active endpoint are taken only when well-formed, so a peer cannot smuggle odd shapes into them.

const issuesOf = (issues: unknown) => (errorFromStatus(Status.BAD_REQUEST, { code: 'SB_ERR_VALIDATION', message: 'bad', issues }) as BadRequestError).issues;
const activeOf = (active: unknown) => (errorFromStatus(Status.NOT_ACTIVE, { message: 'standby', active }) as NotActiveError).active;

describe('errorFromStatus: validation issues', () => {
  it('keeps well-formed issues, only their path and message', () => {
    expect(issuesOf([{ path: 'a.b', message: 'too short', extra: 1 }])).toEqual([{ path: 'a.b', message: 'too short' }]);
  });

  it('drops an issue whose path or message is missing or not a string, and null entries', () => {
    const got = issuesOf([
      { path: 'ok', message: 'kept' },
      { message: 'no path' },
      { path: 'no message' },
      { path: 1, message: 'path not a string' },
      { path: 'p', message: 2 },
      null,
      'text',
    ]);
    expect(got).toEqual([{ path: 'ok', message: 'kept' }]);
  });

  it('keeps at most 50 issues', () => {
    const many = Array.from({ length: 60 }, (_, i) => ({ path: `f${i}`, message: 'm' }));
    const got = issuesOf(many);
    expect(got).toHaveLength(50);
    expect(got?.[49].path).toBe('f49');
  });

  it('no issues unless the body carries an array', () => {
    expect(issuesOf(undefined)).toBeUndefined();
    expect(issuesOf({ path: 'a', message: 'b' })).toBeUndefined();
  });
});

describe('errorFromStatus: the active endpoint of a pair', () => {
  it('keeps a host of 1 to 253 characters and a port of 1 to 65535', () => {
    expect(activeOf({ host: 'h', port: 1 })).toEqual({ host: 'h', port: 1 });
    expect(activeOf({ host: 'h'.repeat(253), port: 65535 })).toEqual({ host: 'h'.repeat(253), port: 65535 });
  });

  it('drops a host that is empty, too long or not a string', () => {
    expect(activeOf({ host: '', port: 7100 })).toBeUndefined();
    expect(activeOf({ host: 'h'.repeat(254), port: 7100 })).toBeUndefined();
    expect(activeOf({ host: 42, port: 7100 })).toBeUndefined();
  });

  it('drops a port that is 0, above 65535, negative or not an integer', () => {
    for (const port of [0, -1, 65536, 1.5, '7100', undefined]) expect(activeOf({ host: 'h', port }), String(port)).toBeUndefined();
  });
});

describe('frame error messages', () => {
  it('BadMagicError shows the bytes it got and says what to check', () => {
    const e = new BadMagicError(0x4745);
    expect(e.code).toBe('SB_ERR_BAD_MAGIC');
    expect(e.status).toBe(Status.BAD_REQUEST);
    expect(e.message).toContain('(got 0x4745)');
    expect(e.message).toContain('check the host and port');
  });

  it('BadVersionError by default says the version is not supported', () => {
    expect(new BadVersionError(3).message).toContain('protocol version 3 is not supported');
    expect(new BadVersionError(2, true).message).toContain('for requests only');
  });
});
