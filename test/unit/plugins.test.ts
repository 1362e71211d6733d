import 'reflect-metadata';
import { fileURLToPath } from 'node:url';
import { container, inject, injectable } from 'tsyringe';
import { describe, expect, it } from 'vitest';
import { Plugin, Service } from '../../src/plugins/decorators.js';
import { DuplicateServiceKeyError, InvalidPluginError, PluginLoadError } from '../../src/plugins/errors.js';
import { PLUGIN_METADATA, SERVICES_METADATA } from '../../src/plugins/metadata-keys.js';
import { explorePlugin, isPluginClass } from '../../src/plugins/plugin-explorer.js';
import { bundledPluginNames, loadPluginModules } from '../../src/plugins/plugin-loader.js';
import { PLUGIN_NAME, RequestContext, ServiceTable, type ServiceContext } from '../../src/plugins/service-table.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { WeatherPlugin } from '../../src/plugins/samples/weather-plugin.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

function expectInvalid(fn: () => unknown, messagePart: string | RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InvalidPluginError);
  expect((caught as InvalidPluginError).code).toBe('SB_ERR_INVALID_PLUGIN');
  expect((caught as InvalidPluginError).message).toMatch(messagePart);
}

describe('@Plugin / @Service metadata and explorePlugin', () => {
  @Plugin({ name: 'calc' })
  class CalcPlugin {
    @Service(10, { idempotent: true, timeoutMs: 500 })
    add(body: { a: number; b: number }): number {
      return body.a + body.b;
    }

    @Service(0xffffffff)
    neg(body: number): number {
      return -body;
    }
  }

  it('the decorators only write metadata under the registry symbols', () => {
    expect(Reflect.getOwnMetadata(PLUGIN_METADATA, CalcPlugin)).toEqual({ name: 'calc' });
    expect(Reflect.getOwnMetadata(SERVICES_METADATA, CalcPlugin)).toEqual([
      { key: 10, method: 'add', options: { idempotent: true, timeoutMs: 500 } },
      { key: 0xffffffff, method: 'neg', options: {} },
    ]);
    expect(isPluginClass(CalcPlugin)).toBe(true);
    expect(isPluginClass(class {})).toBe(false);
    expect(isPluginClass({})).toBe(false);
  });

  it('explorePlugin reads them back as a definition', () => {
    const def = explorePlugin(CalcPlugin);
    expect(def.cls).toBe(CalcPlugin);
    expect(def.options.name).toBe('calc');
    expect(def.services.map((s) => [s.key, s.method])).toEqual([
      [10, 'add'],
      [0xffffffff, 'neg'],
    ]);
  });

  it('rejects a class without @Plugin', () => {
    class Plain {
      @Service(1)
      run(): void {}
    }
    expectInvalid(() => explorePlugin(Plain), /Plain is not a plugin.*@Plugin/);
    expectInvalid(() => explorePlugin({}), /not a plugin/);
    expectInvalid(() => explorePlugin(undefined), /not a plugin/);
  });

  it('rejects an empty name', () => {
    @Plugin({ name: '' })
    class Nameless {
      @Service(1)
      run(): void {}
    }
    expectInvalid(() => explorePlugin(Nameless), /non-empty name/);
  });

  it('rejects a plugin with no @Service methods', () => {
    @Plugin({ name: 'idle' })
    class Idle {
      run(): void {}
    }
    expectInvalid(() => explorePlugin(Idle), /no @Service methods/);
  });

  it('rejects two methods claiming the same key in one plugin', () => {
    @Plugin({ name: 'twice' })
    class Twice {
      @Service(5)
      one(): void {}

      @Service(5)
      two(): void {}
    }
    expectInvalid(() => explorePlugin(Twice), /one\(\) and two\(\) both claim service key 5/);
  });

  it.each([
    ['a fraction', 1.5],
    ['negative', -1],
    ['above 0xffffffff', 0x100000000],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
  ])('rejects a service key that is %s', (_label, key) => {
    @Plugin({ name: 'badkey' })
    class BadKey {
      @Service(key)
      run(): void {}
    }
    expectInvalid(() => explorePlugin(BadKey), /must be an integer from 0 to 4294967295/);
  });

  it.each([
    ['zero', 0],
    ['negative', -5],
    ['a fraction', 2.5],
    ['NaN', Number.NaN],
  ])('rejects timeoutMs that is %s', (_label, timeoutMs) => {
    @Plugin({ name: 'badtimeout' })
    class BadTimeout {
      @Service(1, { timeoutMs })
      run(): void {}
    }
    expectInvalid(() => explorePlugin(BadTimeout), /timeoutMs on run\(\) must be a positive integer/);
  });

  it('accepts service key 0', () => {
    @Plugin({ name: 'zero' })
    class Zero {
      @Service(0)
      run(): void {}
    }
    expect(explorePlugin(Zero).services[0].key).toBe(0);
  });
});

describe('ServiceTable', () => {
  @injectable()
  class Greeting {
    text = 'hello';
  }

  class Clock {
    now(): number {
      return 1234;
    }
  }

  it('builds plugins through tsyringe, resolving constructor parameter types without @inject', async () => {
    @Plugin({ name: 'greeter' })
    class Greeter {
      constructor(
        private readonly greeting: Greeting,
        private readonly clock: Clock,
      ) {}

      @Service(1)
      greet(body: { who: string }): string {
        return `${this.greeting.text} ${body.who} at ${this.clock.now()}`;
      }
    }
    const table = new ServiceTable([Greeter]);
    const entry = table.get(1);
    expect(entry).toBeDefined();
    expect(entry!.pluginName).toBe('greeter');
    expect(entry!.method).toBe('greet');
    const ctx: ServiceContext = new RequestContext(1, 0, 1, 0, 'greeter');
    expect(await entry!.handler({ who: 'Ada' }, ctx)).toBe('hello Ada at 1234');
  });

  it("a handler's context: routingKey is the key decoded as UTF-8, routingKeyBytes the exact bytes, as a copy", () => {
    const chunk = Buffer.from([0x00, 0xff, 0x6b, 0x00]);
    const ctx: ServiceContext = new RequestContext(1, 0, 1, 0, 'p', undefined, { routingKey: chunk.subarray(1, 3) });
    expect(ctx.routingKey).toBe('\ufffdk');
    expect(ctx.routingKeyBytes).toEqual(Buffer.from([0xff, 0x6b]));
    // Kept past the handler, it does not change when the read chunk is reused.
    const kept = ctx.routingKeyBytes as Buffer;
    chunk.fill(0);
    expect(kept).toEqual(Buffer.from([0xff, 0x6b]));
    const none: ServiceContext = new RequestContext(1, 0, 1, 0, 'p');
    expect([none.routingKey, none.routingKeyBytes]).toEqual([undefined, undefined]);
  });

  it('gives each plugin its own child container: same token, different useValue', () => {
    const seen: Record<string, Greeting> = {};

    @Plugin({ name: 'left', providers: [{ token: Greeting, useValue: { text: 'left value' } }] })
    class Left {
      constructor(g: Greeting) {
        seen.left = g;
      }
      @Service(1)
      run(): void {}
    }

    @Plugin({ name: 'right', providers: [{ token: Greeting, useValue: { text: 'right value' } }] })
    class Right {
      constructor(g: Greeting) {
        seen.right = g;
      }
      @Service(2)
      run(): void {}
    }

    new ServiceTable([Left, Right]);
    expect(seen.left.text).toBe('left value');
    expect(seen.right.text).toBe('right value');
  });

  it("a value registered in one plugin's providers is not visible to another plugin", () => {
    const shared = new Greeting();
    shared.text = 'only for owner';
    const seen: Greeting[] = [];

    @Plugin({ name: 'owner', providers: [{ token: Greeting, useValue: shared }] })
    class Owner {
      constructor(a: Greeting) {
        seen.push(a);
      }
      @Service(1)
      run(): void {}
    }

    @Plugin({ name: 'stranger' })
    class Stranger {
      constructor(b: Greeting) {
        seen.push(b);
      }
      @Service(2)
      run(): void {}
    }

    new ServiceTable([Owner, Stranger]);
    expect(seen[0]).toBe(shared);
    expect(seen[1]).not.toBe(shared);
    expect(seen[1].text).toBe('hello');
  });

  it('a string token provided by one plugin cannot be resolved by another', () => {
    @Plugin({ name: 'has-secret', providers: [{ token: 'unit.secret', useValue: 's3cret' }] })
    class HasSecret {
      constructor(@inject('unit.secret') readonly secret: string) {}
      @Service(1)
      run(): void {}
    }

    @Plugin({ name: 'wants-secret' })
    class WantsSecret {
      constructor(@inject('unit.secret') readonly secret: string) {}
      @Service(2)
      run(): void {}
    }

    expect(() => new ServiceTable([HasSecret])).not.toThrow();
    expect(() => new ServiceTable([HasSecret, WantsSecret])).toThrow(/unit\.secret/);
  });

  it('never registers anything in the global container', () => {
    @Plugin({ name: 'clean', providers: [{ token: 'unit.clean', useValue: 1 }] })
    class Clean {
      @Service(1)
      run(): void {}
    }
    new ServiceTable([Clean]);
    expect(container.isRegistered(PLUGIN_NAME, true)).toBe(false);
    expect(container.isRegistered('unit.clean', true)).toBe(false);
  });

  it('supports useFactory and useClass providers', () => {
    class Base {
      kind = 'base';
    }
    class Special extends Base {
      override kind = 'special';
    }
    const got: string[] = [];

    @Plugin({
      name: 'providers',
      providers: [
        { token: 'unit.factory', useFactory: (c) => `made for ${c.resolve<string>(PLUGIN_NAME)}` },
        { token: Base, useClass: Special },
      ],
    })
    class Providers {
      constructor(@inject('unit.factory') f: string, b: Base) {
        got.push(f, b.kind);
      }
      @Service(1)
      run(): void {}
    }
    new ServiceTable([Providers]);
    expect(got).toEqual(['made for providers', 'special']);
  });

  it("offers the plugin's own name under PLUGIN_NAME", () => {
    const names: string[] = [];
    @Plugin({ name: 'alpha' })
    class Alpha {
      constructor(@inject(PLUGIN_NAME) name: string) {
        names.push(name);
      }
      @Service(1)
      run(): void {}
    }
    @Plugin({ name: 'beta' })
    class Beta {
      constructor(@inject(PLUGIN_NAME) name: string) {
        names.push(name);
      }
      @Service(2)
      run(): void {}
    }
    new ServiceTable([Alpha, Beta]);
    expect(names).toEqual(['alpha', 'beta']);
  });

  it('refuses two plugins claiming one key, naming both', () => {
    @Plugin({ name: 'first' })
    class First {
      @Service(77)
      mine(): void {}
    }
    @Plugin({ name: 'second' })
    class Second {
      @Service(77)
      alsoMine(): void {}
    }
    let caught: unknown;
    try {
      new ServiceTable([First, Second]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DuplicateServiceKeyError);
    const err = caught as DuplicateServiceKeyError;
    expect(err.code).toBe('SB_ERR_DUPLICATE_SERVICE_KEY');
    expect(err.serviceKey).toBe(77);
    expect(err.message).toContain('first.mine()');
    expect(err.message).toContain('second.alsoMine()');
  });

  it('refuses two plugins with the same name', () => {
    @Plugin({ name: 'same' })
    class One {
      @Service(1)
      run(): void {}
    }
    @Plugin({ name: 'same' })
    class Two {
      @Service(2)
      run(): void {}
    }
    expectInvalid(() => new ServiceTable([One, Two]), /two plugins are named same/);
  });

  it('refuses a class that is not a plugin', () => {
    expectInvalid(() => new ServiceTable([class Nope {}]), /not a plugin/);
  });

  it('lists descriptors with idempotent, timeoutMs and the contract name, and its keys and plugin names', () => {
    const table = new ServiceTable([EchoPlugin, WeatherPlugin]);
    expect(table.size).toBe(4);
    expect(table.keys().sort((a, b) => a - b)).toEqual([1, 2, 101, 102]);
    expect(table.pluginNames()).toEqual(['echo', 'weather']);
    const byKey = new Map(table.descriptors().map((d) => [d.key, d]));
    expect(byKey.get(1)).toEqual({ key: 1, idempotent: true, name: 'echo.echo' });
    expect(byKey.get(2)).toEqual({ key: 2, idempotent: false, name: 'echo.delayed' });
    expect(byKey.get(101)).toEqual({ key: 101, idempotent: true, timeoutMs: 2000, name: 'weather.forecast' });
    expect(byKey.get(102)).toEqual({ key: 102, idempotent: true, name: 'weather.cities' });
    expect(table.get(101)).toMatchObject({ pluginName: 'weather', method: 'forecast', idempotent: true, timeoutMs: 2000 });
    expect(table.get(999)).toBeUndefined();
  });
});

describe('loadPluginModules', () => {
  it('knows the bundled names', () => {
    expect(bundledPluginNames()).toEqual(['echo', 'weather']);
  });

  it('loads the bundled echo and weather plugins by name', async () => {
    const classes = await loadPluginModules(['echo', 'weather']);
    expect(classes.map((c) => explorePlugin(c).options.name)).toEqual(['echo', 'weather']);
    const table = new ServiceTable(classes);
    expect(table.keys().sort((a, b) => a - b)).toEqual([1, 2, 101, 102]);
  });

  it('loads a module by relative path, once per class even when exported twice', async () => {
    const classes = await loadPluginModules(['./test/fixtures/unit-plugin-module.ts'], REPO_ROOT);
    expect(classes).toHaveLength(1);
    expect(explorePlugin(classes[0]).options.name).toBe('unit-fixture');
    const table = new ServiceTable(classes);
    expect(await table.get(9001)!.handler(undefined, {} as ServiceContext)).toBe('hello from the fixture');
  });

  it('refuses a module that exports no plugin', async () => {
    const p = loadPluginModules(['./test/fixtures/unit-no-plugin-module.ts'], REPO_ROOT);
    await expect(p).rejects.toBeInstanceOf(PluginLoadError);
    await expect(p).rejects.toMatchObject({ code: 'SB_ERR_PLUGIN_LOAD', message: expect.stringMatching(/exports no class decorated with @Plugin/) });
  });

  it('refuses a path that does not exist, saying what to pass instead', async () => {
    const p = loadPluginModules(['./test/fixtures/unit-does-not-exist.js'], REPO_ROOT);
    await expect(p).rejects.toBeInstanceOf(PluginLoadError);
    const err = (await p.then(
      () => undefined,
      (e: unknown) => e,
    )) as PluginLoadError;
    expect(err.code).toBe('SB_ERR_PLUGIN_LOAD');
    expect(err.message).toContain('unit-does-not-exist.js');
    expect(err.message).toMatch(/give a path to a built \.js module, a package name, or one of: echo, weather/);
    expect(err.cause).toBeDefined();
  });
});
