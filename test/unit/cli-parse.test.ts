import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { portClash } from '../../src/cli/as-command.js';
import { parseRoutingKey, parseServiceSpec, registryUrlProblem } from '../../src/cli/parse.js';

describe('call --service', () => {
  it('takes a key from 0 to 4294967295 or a service name', () => {
    expect(parseServiceSpec('0')).toBe(0);
    expect(parseServiceSpec('4294967295')).toBe(4294967295);
    expect(parseServiceSpec('greeter.greet')).toBe('greeter.greet');
    expect(parseServiceSpec('a_b-c.d')).toBe('a_b-c.d');
  });

  it('refuses a key too large and a name of the wrong form, saying what a name looks like', () => {
    expect(() => parseServiceSpec('4294967296')).toThrow(/a service key is an integer from 0 to 4294967295/);
    for (const bad of ['bad name!', 'a..b', '.a', 'a.', 'x'.repeat(129), '']) {
      expect(() => parseServiceSpec(bad), bad).toThrow(/such as greeter\.greet, at most 128 characters/);
    }
  });

  it('--routing-key is 1 to 255 bytes', () => {
    expect(parseRoutingKey('user-1')).toBe('user-1');
    expect(() => parseRoutingKey('')).toThrow(/1 to 255 bytes/);
    expect(() => parseRoutingKey('é'.repeat(128))).toThrow(/got 256/);
  });
});

describe('--registry', () => {
  it('takes etcd://, http:// and bare host:port endpoints', () => {
    for (const ok of ['etcd://127.0.0.1:2379', 'etcd://a:2379,b:2379', 'http://etcd-0.etcd:2379', '10.0.0.1:2379', 'etcd://[::1]:2379', 'ETCD://h:1/']) expect(registryUrlProblem(ok), ok).toBeUndefined();
  });

  it('refuses another scheme, TLS, and an endpoint without a port, naming the form to give', () => {
    expect(registryUrlProblem('redis://127.0.0.1:6379')).toMatch(/^redis:\/\/ is not a scheme for etcd; give etcd:\/\/host:2379/);
    expect(registryUrlProblem('https://127.0.0.1:2379')).toMatch(/TLS to etcd is not supported yet/);
    expect(registryUrlProblem('etcd://127.0.0.1')).toMatch(/expected etcd:\/\/host:port/);
    expect(registryUrlProblem('etcd://a:1,consul://b:2')).toMatch(/^consul:\/\/b:2: consul:\/\/ is not a scheme/);
    expect(registryUrlProblem(' , ')).toMatch(/names no etcd endpoint/);
    expect(registryUrlProblem('etcd://h:70000')).toMatch(/expected etcd:\/\/host:port/);
  });
});

describe('as: ports that clash within one AS', () => {
  const base = { clientHost: '127.0.0.1', controlHost: '127.0.0.1', adminHost: '127.0.0.1', port: 7100, controlPort: 7101 };
  it('finds two TCP ports with one number on overlapping addresses', () => {
    expect(portClash({ ...base, controlPort: 7100 })).toMatch(/^--port and --control-port are both 7100 \(on 127\.0\.0\.1\)/);
    expect(portClash({ ...base, adminPort: 7101 })).toMatch(/^--control-port and --admin-port are both 7101/);
    // The HTTP ingress follows the client host unless given its own.
    expect(portClash({ ...base, httpPort: 7100 })).toMatch(/^--port and --http-port are both 7100/);
    expect(portClash({ ...base, clientHost: '0.0.0.0', adminPort: 7100 })).toMatch(/on 0\.0\.0\.0 and 127\.0\.0\.1/);
    expect(portClash({ ...base, controlHost: '::', controlPort: 7100 })).toMatch(/both 7100/);
  });

  it('lets ports 0, different numbers, and addresses that do not overlap be', () => {
    expect(portClash(base)).toBeUndefined();
    expect(portClash({ ...base, port: 0, controlPort: 0 })).toBeUndefined();
    expect(portClash({ ...base, adminHost: '127.0.0.2', adminPort: 7100 })).toBeUndefined();
    expect(portClash({ ...base, clientHost: '0.0.0.0', controlHost: '::1', controlPort: 7100 })).toBeUndefined();
    expect(portClash({ ...base, httpHost: '10.0.0.1', httpPort: 7100 })).toBeUndefined();
  });
});
