import { describe, expect, it } from 'vitest';
import { advertisedHost, formatEndpoint, isWildcardHost, pickAdvertiseHost, stripBrackets, type Interfaces } from '../../src/common/addresses.js';
import { parseEndpoint, parseEndpoints } from '../../src/cli/parse.js';
import { printed as printedBy } from '../fixtures/print-config.js';

const lo = [
  { address: '127.0.0.1', family: 'IPv4', internal: true },
  { address: '::1', family: 'IPv6', internal: true },
] as const;
const machine: Interfaces = {
  lo: [...lo],
  docker0: [{ address: 'fe80::1', family: 'IPv6', internal: false }],
  eth0: [
    { address: 'fe80::abcd', family: 'IPv6', internal: false },
    { address: '2001:db8::7', family: 'IPv6', internal: false },
    { address: '10.1.2.3', family: 'IPv4', internal: false },
  ],
  eth1: [{ address: '192.168.9.9', family: 'IPv4', internal: false }],
};

describe('pickAdvertiseHost', () => {
  it('takes the first non-loopback IPv4 address when bound to 0.0.0.0', () => {
    expect(pickAdvertiseHost('0.0.0.0', machine)).toBe('10.1.2.3');
  });

  it('takes the first routable IPv6 address (never link-local) when bound to ::', () => {
    expect(pickAdvertiseHost('::', machine)).toBe('2001:db8::7');
  });

  it('falls back to the other family, then to loopback', () => {
    expect(pickAdvertiseHost('0.0.0.0', { lo: [...lo], eth0: [{ address: '2001:db8::9', family: 'IPv6', internal: false }] })).toBe('2001:db8::9');
    expect(pickAdvertiseHost('::', { lo: [...lo], eth0: [{ address: '10.0.0.5', family: 'IPv4', internal: false }] })).toBe('10.0.0.5');
    expect(pickAdvertiseHost('0.0.0.0', { lo: [...lo] })).toBe('127.0.0.1');
    expect(pickAdvertiseHost('::', { lo: [...lo] })).toBe('::1');
    expect(pickAdvertiseHost('0.0.0.0', {})).toBe('127.0.0.1');
  });

  it('skips loopback addresses even on an interface not marked internal, and reads numeric families', () => {
    const odd: Interfaces = { veth: [{ address: '127.0.0.2', family: 'IPv4', internal: false }], eth0: [{ address: '172.16.0.1', family: 4 as unknown as 'IPv4', internal: false }] };
    expect(pickAdvertiseHost('0.0.0.0', odd)).toBe('172.16.0.1');
  });

  it('reads this machine without throwing', () => {
    expect(typeof pickAdvertiseHost('0.0.0.0')).toBe('string');
  });
});

describe('advertisedHost', () => {
  it('is the advertise host when one is given, brackets removed', () => {
    expect(advertisedHost('0.0.0.0', 'fs-1.example')).toBe('fs-1.example');
    expect(advertisedHost('::', '[2001:db8::5]')).toBe('2001:db8::5');
  });

  it('is the bound address when that is a real one', () => {
    expect(advertisedHost('127.0.0.1', undefined, machine)).toBe('127.0.0.1');
    expect(advertisedHost('::1', undefined, machine)).toBe('::1');
    expect(advertisedHost('[::1]', undefined, machine)).toBe('::1');
  });

  it('is the picked address for a wildcard bind', () => {
    expect(advertisedHost('0.0.0.0', undefined, machine)).toBe('10.1.2.3');
    expect(advertisedHost('::', undefined, machine)).toBe('2001:db8::7');
    expect(advertisedHost('0.0.0.0', '', machine)).toBe('10.1.2.3');
  });
});

describe('endpoints', () => {
  it('knows the wildcards', () => {
    for (const h of ['0.0.0.0', '::', '[::]', '']) expect(isWildcardHost(h)).toBe(true);
    for (const h of ['127.0.0.1', '::1', 'localhost', '10.0.0.1']) expect(isWildcardHost(h)).toBe(false);
    expect(stripBrackets('[::1]')).toBe('::1');
    expect(stripBrackets('a.b')).toBe('a.b');
  });

  it('prints an IPv6 literal in brackets, and parses it back', () => {
    expect(formatEndpoint({ host: '::1', port: 7101 })).toBe('[::1]:7101');
    expect(formatEndpoint({ host: '2001:db8::7', port: 7200 })).toBe('[2001:db8::7]:7200');
    expect(formatEndpoint({ host: '10.0.0.1', port: 7101 })).toBe('10.0.0.1:7101');
    expect(formatEndpoint({ host: 'as-1.example', port: 7101 })).toBe('as-1.example:7101');
    for (const e of [{ host: '::1', port: 7101 }, { host: '2001:db8::7', port: 1 }, { host: '10.0.0.1', port: 65535 }]) expect(parseEndpoint(formatEndpoint(e))).toEqual(e);
    expect(parseEndpoints('[::1]:7101,127.0.0.1:7102')).toEqual([{ host: '::1', port: 7101 }, { host: '127.0.0.1', port: 7102 }]);
  });

  it('refuses an IPv6 literal without brackets: the port would be ambiguous', () => {
    expect(() => parseEndpoint('::1:7101')).toThrow(/in brackets/);
    expect(() => parseEndpoint('2001:db8::7:7200')).toThrow(/\[::1\]:7101/);
  });
});

describe('switchboard as: --host and --advertise-host', () => {
  const printed = (args: string[]): Promise<Record<string, unknown>> => printedBy('as', args);

  it('--host binds the client and control ports together; the admin port stays on loopback', async () => {
    const s = await printed(['--host', '0.0.0.0']);
    expect(s).toMatchObject({ clientHost: '0.0.0.0', controlHost: '0.0.0.0', adminHost: '127.0.0.1' });
    expect(s.host).toBeUndefined();
  });

  it('--client-host and --control-host win over --host', async () => {
    expect(await printed(['--host', '::', '--control-host', '::1'])).toMatchObject({ clientHost: '::', controlHost: '::1' });
    expect(await printed(['--client-host', '10.0.0.1', '--host', '0.0.0.0'])).toMatchObject({ clientHost: '10.0.0.1', controlHost: '0.0.0.0' });
  });

  it('--advertise-host is clientAdvertiseHost, and the older --client-advertise-host still works', async () => {
    expect((await printed(['--advertise-host', 'as-1.example'])).clientAdvertiseHost).toBe('as-1.example');
    expect((await printed(['--client-advertise-host', 'fd00::7'])).clientAdvertiseHost).toBe('fd00::7');
    const d = await printed([]);
    expect(d).toMatchObject({ clientHost: '127.0.0.1', controlHost: '127.0.0.1' });
    expect(d.clientAdvertiseHost).toBeUndefined();
  });
});

describe('FunctionServer and ApplicationServer addresses', () => {
  it('an FS bound to 0.0.0.0 without an advertise host advertises a non-loopback address when the machine has one; with one, that', async () => {
    const { FunctionServer, ApplicationServer } = await import('../../src/index.js');
    const fs = new FunctionServer({ name: 'addr-fs', plugins: [], host: '0.0.0.0', port: 0 });
    const fs6 = new FunctionServer({ name: 'addr-fs6', plugins: [], host: '::1', port: 0, advertiseHost: '[::1]' });
    try {
      const a = await fs.start();
      expect(a.host).toBe(pickAdvertiseHost('0.0.0.0'));
      expect(fs.hello().endpoint).toEqual(a);
      const b = await fs6.start();
      expect(b.host).toBe('::1');
    } finally {
      await fs.stop();
      await fs6.stop();
    }
    // IPv6 end to end: AS, FS and client on ::1.
    const { Client } = await import('../../src/index.js');
    const { EchoPlugin } = await import('../../src/plugins/samples/echo-plugin.js');
    const as = new ApplicationServer({ clientHost: '::1', controlHost: '::1' });
    const ports = await as.start();
    const fs1 = new FunctionServer({ name: 'v6-fs', plugins: [EchoPlugin], host: '::1', port: 0, applicationServer: { host: '::1', port: ports.controlPort } });
    let client: Awaited<ReturnType<typeof Client.connect>> | undefined;
    try {
      await fs1.start();
      await fs1.whenRegistered();
      const f = as.listFunctionServers().find((x) => x.name === 'v6-fs');
      expect(f?.host).toBe('::1');
      expect(formatEndpoint({ host: f?.host ?? '', port: f?.port ?? 0 })).toMatch(/^\[::1\]:\d+$/);
      client = await Client.connect({ host: '::1', port: ports.port });
      expect(await client.call(1, { v: 6 }, { timeoutMs: 3000 })).toEqual({ v: 6 });
    } finally {
      await client?.close();
      await fs1.stop();
      await as.stop();
    }
  });
});
