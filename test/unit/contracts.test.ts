import 'reflect-metadata';
import { describe, expect, expectTypeOf, it, vi } from 'vitest';
import { defineService, describeIssues, isServiceContract, z, type BodyOf, type RequestOf, type ResponseOf, type ServiceContract } from '../../src/contracts/index.js';
import { Plugin, Service, type ServiceMetadata } from '../../src/plugins/decorators.js';
import { DuplicateServiceKeyError, InvalidPluginError } from '../../src/plugins/errors.js';
import { SERVICES_METADATA } from '../../src/plugins/metadata-keys.js';
import { ServiceTable } from '../../src/plugins/service-table.js';
import { ConfigError } from '../../src/protocol/errors.js';
import type { Client } from '../../src/client/client.js';
import type { TestBed } from '../../src/function-server/test-bed.js';

/** The contract of the documentation's greeter: a default, a transform, a response schema. */
const greet = defineService({
  key: 301,
  name: 'greeter.greet',
  idempotent: true,
  timeoutMs: 500,
  request: z.object({
    name: z.string().min(1),
    lang: z.enum(['en', 'fr']).default('en'),
    tags: z.string().transform((s) => s.split(',')).optional(),
  }),
  response: z.object({ text: z.string(), length: z.string().transform((s) => s.length) }),
});

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('SB_ERR_CONFIG');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('defineService', () => {
  it('makes a contract with the given key, name, options and schemas', () => {
    expect(greet.kind).toBe('switchboard.service');
    expect(greet.key).toBe(301);
    expect(greet.name).toBe('greeter.greet');
    expect(greet.idempotent).toBe(true);
    expect(greet.timeoutMs).toBe(500);
    expect(greet.request).toBeDefined();
    expect(greet.response).toBeDefined();
  });

  it('defaults: not idempotent, no timeout, no schemas', () => {
    const c = defineService({ key: 7, name: 'plain' });
    expect(c.idempotent).toBe(false);
    expect(c.timeoutMs).toBeUndefined();
    expect(c.request).toBeUndefined();
    expect(c.response).toBeUndefined();
  });

  it('takes idempotent only when it is exactly true', () => {
    expect(defineService({ key: 7, name: 'x', idempotent: 'yes' as unknown as boolean }).idempotent).toBe(false);
    expect(defineService({ key: 7, name: 'x', idempotent: false }).idempotent).toBe(false);
  });

  it.each([0, 1, 0xffffffff])('accepts key %s', (key) => {
    expect(defineService({ key, name: 'k' }).key).toBe(key);
  });

  it.each([
    ['negative', -1],
    ['a fraction', 1.5],
    ['above 0xffffffff', 0x100000000],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a string', '5' as unknown as number],
  ])('refuses a key that is %s, naming the service and the range', (_label, key) => {
    const e = configErrorOf(() => defineService({ key, name: 'bad.key' }));
    expect(e.message).toContain('bad.key');
    expect(e.message).toContain('0 to 4294967295');
  });

  it.each(['greeter.greet', 'a', 'A-b_c.D9', 'x.y.z', 'a'.repeat(128), '9.8'])('accepts the name %j', (name) => {
    expect(defineService({ key: 1, name }).name).toBe(name);
  });

  it.each([
    ['empty', ''],
    ['with a space', 'greeter greet'],
    ['with a slash', 'greeter/greet'],
    ['starting with a dot', '.greet'],
    ['ending with a dot', 'greet.'],
    ['with an empty word', 'greeter..greet'],
    ['non-ASCII', 'grüße'],
    ['129 characters', 'a'.repeat(129)],
    ['not a string', 42 as unknown as string],
    ['undefined', undefined as unknown as string],
  ])('refuses a name that is %s', (_label, name) => {
    const e = configErrorOf(() => defineService({ key: 1, name }));
    expect(e.message).toMatch(/dot-separated words/);
    expect(e.message).toMatch(/at most 128 characters/);
  });

  it.each([
    ['zero', 0],
    ['negative', -1],
    ['a fraction', 2.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
  ])('refuses timeoutMs that is %s', (_label, timeoutMs) => {
    const e = configErrorOf(() => defineService({ key: 1, name: 'slow.one', timeoutMs }));
    expect(e.message).toContain('slow.one');
    expect(e.message).toMatch(/timeoutMs must be a positive integer/);
  });

  it('accepts timeoutMs 1', () => {
    expect(defineService({ key: 1, name: 'fast', timeoutMs: 1 }).timeoutMs).toBe(1);
  });

  it('returns a frozen contract: nobody can change the key, the name or the schemas under a running FS', () => {
    expect(Object.isFrozen(greet)).toBe(true);
    // ES modules are strict: writing a frozen property throws.
    expect(() => {
      (greet as { key: number }).key = 302;
    }).toThrow(TypeError);
    expect(() => {
      (greet as { name: string }).name = 'other';
    }).toThrow(TypeError);
    expect(() => {
      (greet as unknown as { extra: number }).extra = 1;
    }).toThrow(TypeError);
    expect(greet.key).toBe(301);
    expect(greet.name).toBe('greeter.greet');
  });
});

describe('isServiceContract', () => {
  it('is true for what defineService makes', () => {
    expect(isServiceContract(greet)).toBe(true);
    expect(isServiceContract(defineService({ key: 0, name: 'x' }))).toBe(true);
  });

  it.each([
    ['a key', 301],
    ['null', null],
    ['undefined', undefined],
    ['an empty object', {}],
    ['an object of another kind', { kind: 'other', key: 1, name: 'x' }],
    ['a string', 'switchboard.service'],
    ['a function', () => 1],
  ])('is false for %s', (_label, v) => {
    expect(isServiceContract(v)).toBe(false);
  });
});

describe('describeIssues', () => {
  it('gives each failing field as a dotted path, "(body)" for the body itself, at most `max`', () => {
    const schema = z.object({ a: z.string(), nested: z.object({ list: z.array(z.number()) }) });
    const r = schema.safeParse({ a: 1, nested: { list: [1, 'two'] } });
    expect(r.success).toBe(false);
    const issues = describeIssues(r.error!);
    expect(issues.map((i) => i.path)).toEqual(['a', 'nested.list.1']);
    for (const i of issues) expect(i.message.length).toBeGreaterThan(0);
    expect(describeIssues(z.string().safeParse(5).error!)).toEqual([{ path: '(body)', message: expect.any(String) }]);
    expect(describeIssues(r.error!, 1)).toHaveLength(1);
  });
});

describe('types inferred from a contract', () => {
  it('RequestOf is what callers send (defaults optional, transform inputs); BodyOf what the handler gets; ResponseOf what callers get', () => {
    expectTypeOf<RequestOf<typeof greet>>().toEqualTypeOf<{ name: string; lang?: 'en' | 'fr' | undefined; tags?: string | undefined }>();
    expectTypeOf<BodyOf<typeof greet>>().toEqualTypeOf<{ name: string; lang: 'en' | 'fr'; tags?: string[] | undefined }>();
    expectTypeOf<ResponseOf<typeof greet>>().toEqualTypeOf<{ text: string; length: number }>();
    expectTypeOf(greet).toExtend<ServiceContract<RequestOf<typeof greet>, ResponseOf<typeof greet>, BodyOf<typeof greet>>>();
  });

  it('a contract without schemas takes and gives unknown', () => {
    const bare = defineService({ key: 9, name: 'bare' });
    expect(bare.request).toBeUndefined();
    expectTypeOf<RequestOf<typeof bare>>().toEqualTypeOf<unknown>();
    expectTypeOf<BodyOf<typeof bare>>().toEqualTypeOf<unknown>();
    expectTypeOf<ResponseOf<typeof bare>>().toEqualTypeOf<unknown>();
  });

  it('client.call(contract, body) and bed.call(contract, body) are typed from the contract', () => {
    // Never called: the types are what is tested (by tsc, `npm run typecheck`).
    const viaClient = (c: Client) => c.call(greet, { name: 'Ada' });
    const viaBed = (b: TestBed) => b.call(greet, { name: 'Ada', lang: 'fr' });
    const byKey = (c: Client) => c.call<{ text: string }>(301, { anything: true });
    expectTypeOf(viaClient).returns.toEqualTypeOf<Promise<{ text: string; length: number }>>();
    expectTypeOf(viaBed).returns.toEqualTypeOf<Promise<{ text: string; length: number }>>();
    expectTypeOf(byKey).returns.toEqualTypeOf<Promise<{ text: string }>>();
    const wrong = (c: Client) => {
      // @ts-expect-error name must be a string
      void c.call(greet, { name: 1 });
      // @ts-expect-error name is required
      void c.call(greet, { lang: 'en' });
      // @ts-expect-error lang is one of the enum's values
      void c.call(greet, { name: 'Ada', lang: 'de' });
      // @ts-expect-error the caller sends the transform's input (a string), not its output
      void c.call(greet, { name: 'Ada', tags: ['a'] });
      // @ts-expect-error a contract with a request schema needs a body
      void c.call(greet);
    };
    expect(typeof wrong).toBe('function');
  });

  it('a contract that takes no body is called without one, by the client and the test bed alike', () => {
    const count = defineService({ key: 9, name: 'orders.count', response: z.number() });
    const optional = defineService({ key: 10, name: 'orders.list', request: z.object({ page: z.number() }).optional() });
    const viaClient = (c: Client) => c.call(count);
    const withOptions = (c: Client) => c.call(count, undefined, { timeoutMs: 100 });
    const viaBed = (b: TestBed) => b.call(count);
    const optionalBody = (c: Client) => c.call(optional);
    expectTypeOf(viaClient).returns.toEqualTypeOf<Promise<number>>();
    expectTypeOf(withOptions).returns.toEqualTypeOf<Promise<number>>();
    expectTypeOf(viaBed).returns.toEqualTypeOf<Promise<number>>();
    expectTypeOf(optionalBody).returns.toEqualTypeOf<Promise<unknown>>();
  });
});

describe('@Service(contract)', () => {
  const hello = defineService({ key: 40, name: 'hello.say', idempotent: true, timeoutMs: 250 });

  it("writes the contract's key, its options and the contract itself", () => {
    @Plugin({ name: 'hello' })
    class Hello {
      @Service(hello)
      say(): string {
        return 'hi';
      }

      @Service(41, { timeoutMs: 10 })
      plain(): string {
        return 'plain';
      }
    }
    const meta = Reflect.getOwnMetadata(SERVICES_METADATA, Hello) as ServiceMetadata[];
    expect(meta).toHaveLength(2);
    expect(meta[0]).toEqual({ key: 40, method: 'say', options: { idempotent: true, timeoutMs: 250 }, contract: hello });
    expect(meta[0].contract).toBe(hello);
    expect(meta[1]).toEqual({ key: 41, method: 'plain', options: { timeoutMs: 10 } });
    expect(meta[1].contract).toBeUndefined();
  });

  it("an explicit timeoutMs overrides the contract's (the FS's own handler limit); the same idempotent is accepted", () => {
    @Plugin({ name: 'hello-over' })
    class HelloOver {
      @Service(hello, { timeoutMs: 50, idempotent: true })
      say(): string {
        return 'hi';
      }
    }
    const meta = Reflect.getOwnMetadata(SERVICES_METADATA, HelloOver) as ServiceMetadata[];
    expect(meta[0].options).toEqual({ idempotent: true, timeoutMs: 50 });
    const table = new ServiceTable([HelloOver]);
    expect(table.get(40)).toMatchObject({ name: 'hello.say', idempotent: true, timeoutMs: 50 });
  });

  it('refuses an idempotent option that contradicts the contract: callers re-send by the contract', () => {
    @Plugin({ name: 'hello-contradicts' })
    class HelloContradicts {
      @Service(defineService({ key: 42, name: 'hello.twice', idempotent: true }), { idempotent: false })
      twice(): string {
        return 'hi';
      }
    }
    expect(() => new ServiceTable([HelloContradicts])).toThrow(InvalidPluginError);
    expect(() => new ServiceTable([HelloContradicts])).toThrow(
      "plugin hello-contradicts: @Service(hello.twice) on twice() sets idempotent false, but the contract says true; callers act on the contract, so change it there and drop the option",
    );
  });
});

describe('ServiceTable and names', () => {
  const area = defineService({
    key: 50,
    name: 'geo.area',
    idempotent: true,
    timeoutMs: 100,
    request: z.object({ w: z.number() }),
    response: z.number(),
  });

  @Plugin({ name: 'geo' })
  class Geo {
    @Service(area)
    area(body: BodyOf<typeof area>): number {
      return body.w * body.w;
    }

    @Service(51)
    raw(): string {
      return 'raw';
    }
  }

  it('reports names in descriptors() (what HELLO and DESCRIBE carry), none for a bare key', () => {
    const table = new ServiceTable([Geo]);
    expect(table.descriptors()).toEqual([
      { key: 50, name: 'geo.area', idempotent: true, timeoutMs: 100 },
      { key: 51, idempotent: false },
    ]);
  });

  it("keeps the contract's schemas on the entry, and finds it by name", () => {
    const table = new ServiceTable([Geo]);
    const entry = table.byName('geo.area');
    expect(entry).toBe(table.get(50));
    expect(entry).toMatchObject({ key: 50, name: 'geo.area', pluginName: 'geo', method: 'area' });
    expect(entry!.request).toBe(area.request);
    expect(entry!.response).toBe(area.response);
    expect(table.get(51)!.name).toBeUndefined();
    expect(table.get(51)!.request).toBeUndefined();
    expect(table.byName('geo.nothing')).toBeUndefined();
    expect(table.byName('51')).toBeUndefined();
  });

  it('refuses two services with one name, naming both and their keys', () => {
    const other = defineService({ key: 60, name: 'geo.area' });
    @Plugin({ name: 'geo-too' })
    class GeoToo {
      @Service(other)
      size(): number {
        return 1;
      }
    }
    let caught: unknown;
    try {
      new ServiceTable([Geo, GeoToo]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidPluginError);
    const msg = (caught as InvalidPluginError).message;
    expect(msg).toContain('service name geo.area');
    expect(msg).toContain('geo.area()');
    expect(msg).toContain('(key 50)');
    expect(msg).toContain('geo-too.size()');
    expect(msg).toContain('(key 60)');
  });

  it('refuses two methods of one plugin with one name under two keys', () => {
    @Plugin({ name: 'self-clash' })
    class SelfClash {
      @Service(defineService({ key: 70, name: 'same.name' }))
      one(): number {
        return 1;
      }

      @Service(defineService({ key: 71, name: 'same.name' }))
      two(): number {
        return 2;
      }
    }
    expect(() => new ServiceTable([SelfClash])).toThrow(/service name same\.name is claimed by both self-clash\.one\(\) \(key 70\) and self-clash\.two\(\) \(key 71\)/);
  });

  it('still refuses one key in two plugins, contract-bound or not', () => {
    @Plugin({ name: 'geo-key' })
    class GeoKey {
      @Service(defineService({ key: 50, name: 'geo.other' }))
      other(): number {
        return 1;
      }
    }
    @Plugin({ name: 'bare-key' })
    class BareKey {
      @Service(51)
      other(): number {
        return 1;
      }
    }
    expect(() => new ServiceTable([Geo, GeoKey])).toThrow(DuplicateServiceKeyError);
    expect(() => new ServiceTable([Geo, GeoKey])).toThrow(/service key 50 is claimed by both geo\.area\(\) and geo-key\.other\(\)/);
    expect(() => new ServiceTable([Geo, BareKey])).toThrow(/service key 51 is claimed by both geo\.raw\(\) and bare-key\.other\(\)/);
  });

  it('takes the same contract name again in a fresh table (a reload builds a new one)', () => {
    const a = new ServiceTable([Geo]);
    const b = new ServiceTable([Geo]);
    expect(a.byName('geo.area')).not.toBe(b.byName('geo.area'));
    expect(b.byName('geo.area')!.key).toBe(50);
  });
});

describe('ServiceTable lifecycle', () => {
  function lifecyclePlugins(log: string[], failing?: string) {
    const make = (name: string, key: number) => {
      @Plugin({ name })
      class P {
        async onStart(): Promise<void> {
          log.push(`start ${name}`);
          if (name === failing) throw Object.assign(new Error(`${name} cannot open its database`), { code: 'DB_DOWN' });
        }
        onStop(): void {
          log.push(`stop ${name}`);
        }
        @Service(key)
        run(): string {
          return name;
        }
      }
      return P;
    };
    return [make('first', 1), make('second', 2), make('third', 3)];
  }

  it('tells once of an onStart still running after slowMs, naming the plugin, and waits for it all the same', async () => {
    vi.useFakeTimers();
    try {
      let finish = (): void => undefined;
      @Plugin({ name: 'slow-db' })
      class SlowDb {
        onStart(): Promise<void> {
          return new Promise((r) => (finish = r));
        }
        @Service(5)
        run(): string {
          return 'ok';
        }
      }
      const slow: [string, number][] = [];
      let done = false;
      const started = new ServiceTable([SlowDb]).start((plugin, afterMs) => slow.push([plugin, afterMs]), 10_000).then(() => (done = true));
      await vi.advanceTimersByTimeAsync(9_999);
      expect(slow).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(slow).toEqual([['slow-db', 10_000]]);
      await vi.advanceTimersByTimeAsync(60_000);
      expect([slow.length, done]).toEqual([1, false]);
      finish();
      await started;
      expect(done).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('starts plugins in load order and stops them in reverse', async () => {
    const log: string[] = [];
    const table = new ServiceTable(lifecyclePlugins(log));
    expect(log).toEqual([]); // building is not starting
    await table.start();
    expect(log).toEqual(['start first', 'start second', 'start third']);
    expect(await table.stop(1000)).toEqual([]);
    expect(log.slice(3)).toEqual(['stop third', 'stop second', 'stop first']);
  });

  it('a failing onStart stops the plugins started before it (in reverse) and names the plugin and the code', async () => {
    const log: string[] = [];
    const table = new ServiceTable(lifecyclePlugins(log, 'second'));
    const err = await table.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'SB_ERR_PLUGIN_START', pluginName: 'second' });
    expect((err as Error).message).toMatch(/plugin second failed in its onStart \(DB_DOWN\): second cannot open its database/);
    expect(log).toEqual(['start first', 'start second', 'stop first']);
  });

  it('an onStop that hangs is cut at the timeout and reported; the others still stop', async () => {
    const log: string[] = [];
    @Plugin({ name: 'hangs' })
    class Hangs {
      onStop(): Promise<void> {
        log.push('stop hangs');
        return new Promise(() => undefined);
      }
      @Service(1)
      run(): void {}
    }
    @Plugin({ name: 'fine' })
    class Fine {
      onStop(): void {
        log.push('stop fine');
      }
      @Service(2)
      run(): void {}
    }
    const table = new ServiceTable([Fine, Hangs]);
    await table.start();
    const failures = await table.stop(30);
    expect(failures).toEqual([{ plugin: 'hangs', error: 'onStop did not finish within 30 ms' }]);
    expect(log).toEqual(['stop hangs', 'stop fine']);
  });

  it('overrides replace a dependency in every plugin, after the plugin’s own providers', () => {
    class Clock {
      now(): number {
        return 1;
      }
    }
    @Plugin({ name: 'timed', providers: [{ token: Clock, useValue: { now: () => 2 } }] })
    class Timed {
      constructor(readonly clock: Clock) {}
      @Service(1)
      run(): number {
        return this.clock.now();
      }
    }
    const ctx = {} as never;
    expect(new ServiceTable([Timed]).get(1)!.handler(undefined, ctx)).toBe(2);
    expect(new ServiceTable([Timed], undefined, { overrides: [{ token: Clock, useValue: { now: () => 3 } }] }).get(1)!.handler(undefined, ctx)).toBe(3);
  });
});
