import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/protocol/errors.js';
import { HostAllowList, isLoopback } from '../../src/security/address-policy.js';

describe('isLoopback', () => {
  it.each(['127.0.0.1', '127.1.2.3', '127.255.255.254', '::1', '::ffff:127.0.0.1', 'localhost'])('%s is loopback', (a) => {
    expect(isLoopback(a)).toBe(true);
  });

  it.each(['10.0.0.1', '::ffff:10.0.0.1', '198.18.0.1', '128.0.0.1', '::2', '127.evil.example.com', '', undefined])('%s is not loopback', (a) => {
    expect(isLoopback(a)).toBe(false);
  });
});

/** The ConfigError thrown by `fn`, or a failure when it throws nothing or something else. */
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

describe('HostAllowList', () => {
  it('an empty list allows every host', () => {
    const l = new HostAllowList([]);
    expect(l.size).toBe(0);
    for (const h of ['8.8.8.8', '::1', 'anything.example.com']) expect(l.allows(h)).toBe(true);
  });

  it('allows listed IPv4 and IPv6 addresses only', () => {
    const l = new HostAllowList(['192.168.1.7', '2001:db8::1']);
    expect(l.allows('192.168.1.7')).toBe(true);
    expect(l.allows('192.168.1.8')).toBe(false);
    expect(l.allows('2001:db8::1')).toBe(true);
    expect(l.allows('2001:db8::2')).toBe(false);
  });

  it('allows the addresses inside an IPv4 CIDR block only', () => {
    const l = new HostAllowList(['10.0.0.0/8']);
    expect(l.allows('10.0.0.0')).toBe(true);
    expect(l.allows('10.255.255.255')).toBe(true);
    expect(l.allows('11.0.0.0')).toBe(false);
    expect(l.allows('9.255.255.255')).toBe(false);
  });

  it('allows the addresses inside an IPv6 CIDR block only', () => {
    const l = new HostAllowList(['fd00::/8']);
    expect(l.allows('fd12:3456::1')).toBe(true);
    expect(l.allows('fe80::1')).toBe(false);
  });

  it('matches host names exactly, ignoring case', () => {
    const l = new HostAllowList(['Db-1.Example.com']);
    expect(l.allows('db-1.example.com')).toBe(true);
    expect(l.allows('DB-1.EXAMPLE.COM')).toBe(true);
    expect(l.allows('db-2.example.com')).toBe(false);
    expect(l.allows('x.db-1.example.com')).toBe(false);
  });

  it('a name does not allow an IP and a block does not allow a name', () => {
    const l = new HostAllowList(['localhost', '127.0.0.0/8']);
    expect(l.allows('localhost')).toBe(true);
    expect(l.allows('127.0.0.1')).toBe(true);
    expect(new HostAllowList(['localhost']).allows('127.0.0.1')).toBe(false);
    expect(new HostAllowList(['127.0.0.0/8']).allows('localhost')).toBe(false);
  });

  it('trims entries', () => {
    expect(new HostAllowList([' 10.0.0.1 ']).allows('10.0.0.1')).toBe(true);
  });

  it.each(['10.0.0.0/33', 'fd00::/129', '10.0.0.0/-1', '10.0.0.0/1.5', 'db.example.com/8'])('refuses the bad CIDR block %s', (e) => {
    const err = configErrorOf(() => new HostAllowList(['10.0.0.1', e]));
    expect(err.message).toContain(`"${e}" is not a valid CIDR block`);
  });

  it.each(['', 'a b', 'db_1.example.com', '/8', 'x'.repeat(254)])('refuses the bad entry %j', (e) => {
    const err = configErrorOf(() => new HostAllowList([e]));
    expect(err.message).toContain('is neither an IP, a CIDR block nor a host name');
  });

  // Number('') is 0: without a digits check, "10.0.0.0/" (a prefix left off) would read as /0 and
  // allow every IPv4 host.
  it('refuses a CIDR block with no prefix length ("10.0.0.0/")', () => {
    configErrorOf(() => new HostAllowList(['10.0.0.0/']));
  });
});
