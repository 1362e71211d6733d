import 'reflect-metadata';
import { injectable } from 'tsyringe';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { defineService, z, type BodyOf } from '../../src/contracts/index.js';
import { createTestBed, type TestBed } from '../../src/function-server/test-bed.js';
import { Plugin, Service } from '../../src/plugins/decorators.js';
import { PluginError } from '../../src/plugins/errors.js';
import type { ServiceContext } from '../../src/plugins/service-table.js';
import {
  BadRequestError,
  DeadlineExceededError,
  ServerError,
  ServiceFailedError,
  ServiceNotFoundError,
  Status,
  SwitchboardError,
} from '../../src/protocol/index.js';

/** A promise and its resolver: gates a handler until the test lets it go. */
function gate<T = void>(): { promise: Promise<T>; open: (v: T) => void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}

const beds: TestBed[] = [];
async function bed(o: Parameters<typeof createTestBed>[0]): Promise<TestBed> {
  const b = await createTestBed(o);
  beds.push(b);
  return b;
}

async function rejectionOf(p: Promise<unknown>): Promise<SwitchboardError> {
  const r = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (r.ok) throw new Error(`expected a rejection, got ${JSON.stringify(r.v)}`);
  expect(r.e).toBeInstanceOf(SwitchboardError);
  return r.e as SwitchboardError;
}

// ── The plugin under test ──

const register = defineService({
  key: 10,
  name: 'people.register',
  request: z.object({
    name: z.string().min(1).transform((s) => s.trim()),
    age: z.number().int().nonnegative(),
    lang: z.enum(['en', 'fr']).default('en'),
    address: z.object({ zip: z.string().regex(/^\d{5}$/) }).optional(),
  }),
  response: z.object({ id: z.number(), greeting: z.string() }),
});

const raw = defineService({ key: 11, name: 'people.raw' });
const lie = defineService({ key: 12, name: 'people.lie', response: z.object({ id: z.number() }) });
const slow = defineService({ key: 13, name: 'people.slow', timeoutMs: 60 });

@injectable()
class Greetings {
  phrase(lang: 'en' | 'fr'): string {
    return lang === 'fr' ? 'Bonjour' : 'Hello';
  }
}

/** What the handlers saw, shared with the test (reset per test). */
const seen = {
  bodies: [] as unknown[],
  calls: 0,
  contexts: [] as ServiceContext[],
  gates: [] as { promise: Promise<unknown>; open: (v: unknown) => void }[],
  events: [] as string[],
};

@Plugin({ name: 'people' })
class PeoplePlugin {
  constructor(private readonly greetings: Greetings) {}

  onStart(): void {
    seen.events.push('onStart');
  }

  async onStop(): Promise<void> {
    seen.events.push('onStop');
  }

  @Service(register)
  register(body: BodyOf<typeof register>, ctx: ServiceContext): { id: number; greeting: string } {
    expectTypeOf(body).toEqualTypeOf<{ name: string; age: number; lang: 'en' | 'fr'; address?: { zip: string } | undefined }>();
    seen.calls++;
    seen.bodies.push(body);
    seen.contexts.push(ctx);
    if (body.name === 'Nobody') throw new PluginError('NO_ONE', 'nobody is there to register');
    if (body.name === 'Crash') throw new Error('connection to postgres://admin:hunter2@db failed');
    return { id: body.age, greeting: `${this.greetings.phrase(body.lang)}, ${body.name}` };
  }

  @Service(raw)
  raw(body: unknown): unknown {
    seen.calls++;
    seen.bodies.push(body);
    return body;
  }

  @Service(lie)
  lie(body: { shape?: string }): unknown {
    return body?.shape === 'wrong' ? { id: 'not a number' } : { id: 1 };
  }

  @Service(slow)
  async slow(body: { wait?: boolean } | undefined, ctx: ServiceContext): Promise<string> {
    seen.contexts.push(ctx);
    seen.events.push('slow started');
    if (body?.wait) {
      // Ends only when its signal is aborted (the deadline) or its gate opens.
      const g = gate<unknown>();
      seen.gates.push(g);
      ctx.signal.addEventListener('abort', () => g.open('aborted'));
      const how = await g.promise;
      seen.events.push(`slow ended (${String(how)})`);
      return String(how);
    }
    return 'quick';
  }
}

afterEach(async () => {
  for (const g of seen.gates) g.open('released');
  await Promise.all(beds.splice(0).map((b) => b.close(500)));
  seen.bodies = [];
  seen.calls = 0;
  seen.contexts = [];
  seen.gates = [];
  seen.events = [];
});

describe('the test bed calls through encode, validate, invoke and decode', () => {
  it('answers a valid body with the handler’s answer, typed from the contract', async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    const r = await b.call(register, { name: 'Ada', age: 36 });
    expectTypeOf(r).toEqualTypeOf<{ id: number; greeting: string }>();
    expect(r).toEqual({ id: 36, greeting: 'Hello, Ada' });
    expect(await b.call<unknown>(11, { by: 'key' })).toEqual({ by: 'key' });
  });

  it("applies the schema's defaults and transforms before the handler (BodyOf)", async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    await b.call(register, { name: '  Ada  ', age: 36 });
    expect(seen.bodies).toEqual([{ name: 'Ada', age: 36, lang: 'en' }]);
    expect(await b.call(register, { name: ' Zoé ', age: 1, lang: 'fr', address: { zip: '75001' } })).toEqual({ id: 1, greeting: 'Bonjour, Zoé' });
    expect(seen.bodies[1]).toEqual({ name: 'Zoé', age: 1, lang: 'fr', address: { zip: '75001' } });
  });

  it('sends the body through msgpack: what arrives is what the wire carries', async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    const date = new Date('2026-11-23T10:00:00Z');
    const got = await b.call<Record<string, unknown>>(raw.key, { date, bytes: Buffer.from([1, 2]), missing: undefined, n: 2n ** 60n });
    // A Date travels as a timestamp, undefined in a map as nil, bytes as bin, a 64-bit integer as a BigInt.
    expect(got.date).toEqual(date);
    expect(got.missing).toBeNull();
    expect(Buffer.from(got.bytes as Uint8Array)).toEqual(Buffer.from([1, 2]));
    expect(got.n).toBe(2n ** 60n);
    const inHandler = seen.bodies[0] as Record<string, unknown>;
    expect(inHandler.missing).toBeNull();
    expect(inHandler).not.toBe(got);
  });

  it.each([
    ['a BigInt over 2^64', { n: 2n ** 64n }],
    ['a negative BigInt under -2^63', { n: -(2n ** 63n) - 1n }],
    ['a symbol', { s: Symbol('x') }],
  ])('fails a body msgpack cannot carry (%s) with BadRequestError, like the client, before any handler runs', async (_label, body) => {
    const b = await bed({ plugins: [PeoplePlugin] });
    const e = await rejectionOf(b.call(raw.key, body));
    expect(e).toBeInstanceOf(BadRequestError);
    expect(e.code).toBe('SB_ERR_BAD_REQUEST');
    expect(e.status).toBe(Status.BAD_REQUEST);
    expect(e.message).toMatch(/cannot be encoded as msgpack/);
    expect(seen.calls).toBe(0);
  });

  it('fails a body holding a function with BadRequestError: a function does not survive the wire', async () => {
    // Bug (see the report): msgpackr writes a function as nil, so the handler gets null where the
    // caller passed a function, and neither the bed nor the client says so.
    const b = await bed({ plugins: [PeoplePlugin] });
    const e = await rejectionOf(b.call(raw.key, { onDone: () => 'called' }));
    expect(e).toBeInstanceOf(BadRequestError);
    expect(seen.calls).toBe(0);
  });

  it('refuses a body that fails the schema with SB_ERR_VALIDATION naming the failing fields; the handler does not run', async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    const e = await rejectionOf(b.call(register, { name: '', age: -1.5, lang: 'de' as 'en', address: { zip: 'abc' } }));
    expect(e).toBeInstanceOf(BadRequestError);
    expect(e.code).toBe('SB_ERR_VALIDATION');
    expect(e.status).toBe(Status.BAD_REQUEST);
    expect(e.message).toMatch(/^the body does not match people\.register: /);
    for (const path of ['name: ', 'age: ', 'lang: ', 'address.zip: ']) expect(e.message).toContain(path);
    // Not a body at all (nothing, or a string) fails as the whole body.
    const none = await rejectionOf(b.call(register, undefined as never));
    expect(none.code).toBe('SB_ERR_VALIDATION');
    expect(none.message).toContain('(body): ');
    const text = await rejectionOf(b.call(register.key, 'Ada'));
    expect(text.code).toBe('SB_ERR_VALIDATION');
    expect(seen.calls).toBe(0);
    // A valid one still runs.
    await b.call(register, { name: 'Ada', age: 1 });
    expect(seen.calls).toBe(1);
  });

  it('a PluginError reaches the caller as ServiceFailedError with its serviceCode and message', async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    const e = await rejectionOf(b.call(register, { name: 'Nobody', age: 1 }));
    expect(e).toBeInstanceOf(ServiceFailedError);
    expect(e.status).toBe(Status.SERVICE_ERROR);
    expect((e as ServiceFailedError).serviceCode).toBe('NO_ONE');
    expect(e.message).toBe('nobody is there to register');
  });

  it('an unexpected throw gives the generic message with an error id, never the thrown text', async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    const e = await rejectionOf(b.call(register, { name: 'Crash', age: 1 }));
    expect(e).toBeInstanceOf(ServiceFailedError);
    expect((e as ServiceFailedError).serviceCode).toBe('SB_ERR_SERVICE');
    expect(e.message).toMatch(/^people\.register\(\) failed unexpectedly; error id [0-9a-f]{12} \(the function server's log has the detail\)$/);
    expect(e.message).not.toMatch(/hunter2|postgres/);
    const again = await rejectionOf(b.call(register, { name: 'Crash', age: 1 }));
    expect(again.message).not.toBe(e.message); // a new id per failure
  });

  it('an unknown key is SERVICE_NOT_FOUND', async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    const e = await rejectionOf(b.call(4242, {}));
    expect(e).toBeInstanceOf(ServiceNotFoundError);
    expect(e.message).toContain('4242');
  });

  it('checks answers against the response schema by default: a lying handler gives SERVER_ERROR SB_ERR_VALIDATION', async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    expect(await b.call(lie, { shape: 'right' })).toEqual({ id: 1 });
    const e = await rejectionOf(b.call(lie, { shape: 'wrong' }));
    expect(e).toBeInstanceOf(ServerError);
    expect(e.status).toBe(Status.SERVER_ERROR);
    expect(e.code).toBe('SB_ERR_VALIDATION');
    expect(e.message).toMatch(/people\.lie answered something its contract does not allow/);
  });

  it('validateResponses: false lets the answer through unchecked', async () => {
    const b = await bed({ plugins: [PeoplePlugin], validateResponses: false });
    expect(await b.call(lie, { shape: 'wrong' })).toEqual({ id: 'not a number' });
  });

  it('providers replace a dependency in the plugin’s container (a mock)', async () => {
    let asked: string | undefined;
    const fake = {
      phrase: (lang: string) => {
        asked = lang;
        return 'Hi';
      },
    };
    const b = await bed({ plugins: [PeoplePlugin], providers: [{ token: Greetings, useValue: fake }] });
    expect(await b.call(register, { name: 'Ada', age: 3, lang: 'fr' })).toEqual({ id: 3, greeting: 'Hi, Ada' });
    expect(asked).toBe('fr');
    // Without providers the real one is built.
    const real = await bed({ plugins: [PeoplePlugin] });
    expect(await real.call(register, { name: 'Ada', age: 3, lang: 'fr' })).toEqual({ id: 3, greeting: 'Bonjour, Ada' });
  });

  it('gives the handler its context: key, pool type, request id, plugin name and deadline', async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    const before = Date.now();
    await b.call(register, { name: 'Ada', age: 1 }, { poolType: 7, timeoutMs: 5000 });
    await b.call(register, { name: 'Ada', age: 1 });
    const [first, second] = seen.contexts;
    expect(first).toMatchObject({ serviceKey: 10, poolType: 7, pluginName: 'people' });
    expect(first.deadlineAt).toBeGreaterThanOrEqual(before + 5000);
    expect(first.deadlineAt).toBeLessThanOrEqual(Date.now() + 5000);
    expect(second.requestId).toBeGreaterThan(first.requestId);
    expect(second.deadlineAt - first.deadlineAt).toBeGreaterThan(20_000); // the default 30 s
  });
});

describe('deadlines', () => {
  it("the contract's timeoutMs ends a call with TIMEOUT and aborts the handler's signal", async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    const t0 = performance.now();
    const e = await rejectionOf(b.call(slow, { wait: true }));
    const took = performance.now() - t0;
    expect(e).toBeInstanceOf(DeadlineExceededError);
    expect(e.code).toBe('SB_ERR_TIMEOUT');
    expect(e.message).toMatch(/did not answer within 60 ms/);
    expect(took).toBeGreaterThanOrEqual(55);
    const ctx = seen.contexts[0];
    expect(ctx.signal.aborted).toBe(true);
    expect(ctx.signal.reason).toBeInstanceOf(DeadlineExceededError);
    // The handler saw the abort and ended; close() has nothing left to wait for.
    await b.close();
    expect(seen.events).toEqual(['onStart', 'slow started', 'slow ended (aborted)', 'onStop']);
  });

  it("the caller's timeoutMs wins when it is smaller than the contract's", async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    const e = await rejectionOf(b.call(slow, { wait: true }, { timeoutMs: 15 }));
    expect(e).toBeInstanceOf(DeadlineExceededError);
    expect(e.message).toMatch(/did not answer within 15 ms/);
  });

  it('defaultTimeoutMs applies to a service without its own limit', async () => {
    @Plugin({ name: 'hangs' })
    class Hangs {
      @Service(1)
      hang(_b: unknown, ctx: ServiceContext): Promise<void> {
        return new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
      }
    }
    const b = await bed({ plugins: [Hangs], defaultTimeoutMs: 20 });
    const e = await rejectionOf(b.call(1));
    expect(e).toBeInstanceOf(DeadlineExceededError);
    expect(e.message).toMatch(/within 20 ms/);
  });

  it('an answer within the deadline is not touched by it', async () => {
    const b = await bed({ plugins: [PeoplePlugin] });
    expect(await b.call(slow, {})).toBe('quick');
    expect(seen.contexts[0].signal.aborted).toBe(false);
  });
});

describe('lifecycle', () => {
  it('runs onStart on create and onStop on close, once', async () => {
    const b = await createTestBed({ plugins: [PeoplePlugin] });
    expect(seen.events).toEqual(['onStart']);
    await b.call(register, { name: 'Ada', age: 1 });
    await b.close();
    await b.close();
    expect(seen.events).toEqual(['onStart', 'onStop']);
    const e = await rejectionOf(b.call(register, { name: 'Ada', age: 1 }));
    expect(e).toBeInstanceOf(BadRequestError);
    expect(e.message).toMatch(/closed/);
  });

  it('create fails with PluginStartError when an onStart throws', async () => {
    @Plugin({ name: 'broken-start' })
    class BrokenStart {
      async onStart(): Promise<void> {
        throw Object.assign(new Error('no database'), { code: 'ECONNREFUSED' });
      }
      @Service(1)
      run(): void {}
    }
    await expect(createTestBed({ plugins: [BrokenStart] })).rejects.toMatchObject({
      code: 'SB_ERR_PLUGIN_START',
      pluginName: 'broken-start',
      message: expect.stringMatching(/plugin broken-start failed in its onStart \(ECONNREFUSED\): no database/),
    });
  });

  it('close waits for running handlers, then runs onStop', async () => {
    const b = await createTestBed({ plugins: [PeoplePlugin] });
    const call = b.call(slow, { wait: true }, { timeoutMs: 10_000 });
    expect(seen.gates).toHaveLength(1); // the handler runs (and waits on its gate)
    let closed = false;
    const closing = b.close().then(() => (closed = true));
    // Let everything that does not wait on the handler settle: microtasks, then a few loop turns.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(closed).toBe(false);
    expect(seen.events).toEqual(['onStart', 'slow started']);
    seen.gates[0].open('released');
    expect(await call).toBe('released');
    await closing;
    expect(seen.events).toEqual(['onStart', 'slow started', 'slow ended (released)', 'onStop']);
  });
});
