import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { FunctionServer, Plugin, PluginStartError, Service, UnavailableError, type ServiceContext } from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { useHarness, waitForAvailable, withTimeout } from '../fixtures/cluster.js';

const HOST = '127.0.0.1';
const DIST_CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const FAILING_START = fileURLToPath(new URL('../fixtures/plugin-failing-start.mjs', import.meta.url));

const h = useHarness();

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** A pino logger whose lines are kept (parsed) for asserting what a server logged. */
function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

describe('plugin onStart: the FS registers only once every plugin has started', () => {
  it('an async onStart holds the FS back (not listening, no HELLO, start() pending) until it resolves', async () => {
    const as = await h.startAs({ heartbeatMs: 500 });
    const entered = gate();
    const release = gate();
    h.defer(() => release.open());

    @Plugin({ name: 'slow-start' })
    class SlowStart {
      async onStart(): Promise<void> {
        entered.open();
        await release.promise;
      }
      @Service(7001)
      ping(): string {
        return 'pong';
      }
    }
    const fs = new FunctionServer({ name: 'gated', plugins: [SlowStart], applicationServer: { host: HOST, port: h.controlPort }, heartbeatMs: 500, drainTimeoutMs: 1000 });
    h.defer(() => fs.stop());
    let started = false;
    const starting = fs.start().then(() => (started = true));
    await entered.promise;

    // Meanwhile another FS registers with the same AS and becomes available: a HELLO from the gated
    // one, sent before its onStart resolved, would have arrived by now.
    await h.startFs({ name: 'control', heartbeatMs: 500 });
    await waitForAvailable(as, 1);
    expect(started).toBe(false);
    expect(as.listFunctionServers().map((f) => f.id)).toEqual(['control']);
    expect(() => fs.address()).toThrow(/not listening/);
    expect(fs.registeredWith).toBe(0);

    release.open();
    await withTimeout(starting, 3000, 'fs.start() after onStart resolved');
    await withTimeout(fs.whenRegistered(), 3000, 'the gated FS to register');
    await waitForAvailable(as, 2);
    const client = await h.client();
    expect(await client.call(7001)).toBe('pong');
  });

  it('an onStart that throws rejects start() with PluginStartError (plugin name, error code), stops the plugins started before it, and the FS never registers', async () => {
    const as = await h.startAs({ heartbeatMs: 500 });
    const log: string[] = [];

    @Plugin({ name: 'cache' })
    class Cache {
      async onStart(): Promise<void> {
        log.push('start cache');
      }
      async onStop(): Promise<void> {
        log.push('stop cache');
      }
      @Service(7011)
      get(): string {
        return 'cached';
      }
    }
    @Plugin({ name: 'billing' })
    class Billing {
      async onStart(): Promise<void> {
        log.push('start billing');
        throw Object.assign(new Error('the billing API refused our key'), { code: 'BILLING_AUTH' });
      }
      async onStop(): Promise<void> {
        log.push('stop billing');
      }
      @Service(7012)
      charge(): string {
        return 'charged';
      }
    }
    @Plugin({ name: 'after' })
    class After {
      async onStart(): Promise<void> {
        log.push('start after');
      }
      @Service(7013)
      run(): string {
        return 'after';
      }
    }

    const fs = new FunctionServer({ name: 'doomed', plugins: [Cache, Billing, After], applicationServer: { host: HOST, port: h.controlPort }, heartbeatMs: 500, drainTimeoutMs: 1000 });
    const err = await fs.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PluginStartError);
    expect(err).toMatchObject({ code: 'SB_ERR_PLUGIN_START', pluginName: 'billing' });
    expect((err as Error).message).toMatch(/^plugin billing failed in its onStart \(BILLING_AUTH\): the billing API refused our key/);
    expect((err as Error).cause).toMatchObject({ code: 'BILLING_AUTH' });
    // The plugin started before it was stopped again; the one after it never started.
    expect(log).toEqual(['start cache', 'start billing', 'stop cache']);
    expect(() => fs.address()).toThrow(/not listening/);

    // Another FS registers meanwhile; the failed one never shows up.
    await h.startFs({ name: 'control', heartbeatMs: 500 });
    await waitForAvailable(as, 1);
    expect(as.listFunctionServers().map((f) => f.id)).toEqual(['control']);
    expect(fs.registeredWith).toBe(0);

    // Stopping the FS that never started stops no plugin a second time.
    await withTimeout(fs.stop(), 3000, 'stop() of an FS that never started');
    expect(log).toEqual(['start cache', 'start billing', 'stop cache']);
  });

  it("a constructor that throws fails new FunctionServer with the plugin's name and the error's code", () => {
    @Plugin({ name: 'fragile' })
    class Fragile {
      constructor() {
        throw Object.assign(new Error('FRAGILE_API_KEY is not set'), { code: 'NO_API_KEY' });
      }
      @Service(7021)
      run(): void {}
    }
    let caught: unknown;
    try {
      new FunctionServer({ name: 'never', plugins: [EchoPlugin, Fragile] });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(PluginStartError);
    expect(caught).toMatchObject({ code: 'SB_ERR_PLUGIN_START', pluginName: 'fragile' });
    expect((caught as Error).message).toMatch(/^plugin fragile failed in its constructor \(NO_API_KEY\): FRAGILE_API_KEY is not set/);
  });
});

describe('plugin onStop: after the drain, within pluginStopTimeoutMs', () => {
  it('runs after the requests in flight have finished (they answer OK)', async () => {
    const order: string[] = [];
    const entered = gate();
    const release = gate();
    h.defer(() => release.open());

    @Plugin({ name: 'ledger' })
    class Ledger {
      @Service(7031)
      async post(body: { amount: number }): Promise<string> {
        order.push('post started');
        entered.open();
        await release.promise;
        order.push('post ended');
        return `posted ${body.amount}`;
      }
      async onStop(): Promise<void> {
        order.push('onStop');
      }
    }
    const [fs] = await h.cluster({ heartbeatMs: 500 }, [{ name: 'ledger-fs', plugins: [Ledger], heartbeatMs: 500, drainTimeoutMs: 5000 }]);
    const client = await h.client();
    const posting = client.call(7031, { amount: 12 }, { timeoutMs: 10_000 });
    posting.catch(() => undefined); // awaited below; not unhandled if the test fails first
    await entered.promise;

    const draining = new Promise<void>((r) => h.as.on('fs-state', (info) => info.id === 'ledger-fs' && info.state === 'draining' && r()));
    const stopping = fs.stop();
    await withTimeout(draining, 3000, 'the AS to see the FS draining');
    // The FS is now waiting for its request to end: a few round trips later, onStop has still not run.
    for (let i = 0; i < 5; i++) await expect(client.call(7031, { amount: 0 }, { timeoutMs: 2000 })).rejects.toBeInstanceOf(UnavailableError);
    expect(order).toEqual(['post started']);
    expect(fs.inflight).toBe(1);

    release.open();
    expect(await posting).toBe('posted 12');
    await withTimeout(stopping, 5000, 'fs.stop()');
    expect(order).toEqual(['post started', 'post ended', 'onStop']);
  });

  it('when the drain times out, the handlers still running are aborted and onStop waits for those that honour their signal', async () => {
    const order: string[] = [];
    const entered = gate();

    @Plugin({ name: 'mailer' })
    class Mailer {
      @Service(7032)
      async send(_body: unknown, ctx: ServiceContext): Promise<string> {
        entered.open();
        try {
          await sleep(10_000, undefined, { signal: ctx.signal });
        } catch {
          // Ends a few ticks after the abort, as real clean-up does.
          await sleep(20);
          order.push('send ended: aborted');
        }
        return 'sent';
      }
      async onStop(): Promise<void> {
        order.push('onStop');
      }
    }
    const [fs] = await h.cluster({ heartbeatMs: 500 }, [{ name: 'mailer-fs', plugins: [Mailer], heartbeatMs: 500, drainTimeoutMs: 200 }]);
    const client = await h.client();
    const sending = client.call(7032, {}, { timeoutMs: 10_000 });
    sending.catch(() => undefined);
    await entered.promise;
    await withTimeout(fs.stop(), 5000, 'fs.stop()');
    expect(order).toEqual(['send ended: aborted', 'onStop']);
  });

  it('an onStop that hangs is cut at pluginStopTimeoutMs: stop() still resolves, the others stop, the log says which', async () => {
    const order: string[] = [];
    @Plugin({ name: 'polite' })
    class Polite {
      async onStop(): Promise<void> {
        order.push('stop polite');
      }
      @Service(7041)
      run(): string {
        return 'polite';
      }
    }
    @Plugin({ name: 'stubborn' })
    class Stubborn {
      onStop(): Promise<void> {
        order.push('stop stubborn');
        return new Promise(() => undefined);
      }
      @Service(7042)
      run(): string {
        return 'stubborn';
      }
    }
    const { logger, lines } = captureLogger();
    const fs = new FunctionServer({ name: 'hangs-fs', plugins: [Polite, Stubborn], pluginStopTimeoutMs: 150, drainTimeoutMs: 1000, logger });
    await fs.start();
    let closed = false;
    fs.once('closed', () => (closed = true));
    const t0 = performance.now();
    await withTimeout(fs.stop(), 3000, 'fs.stop() with a hanging onStop');
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(140);
    expect(closed).toBe(true);
    // Reverse load order: the stubborn one first; it is cut off and the polite one still stops.
    expect(order).toEqual(['stop stubborn', 'stop polite']);
    const failed = lines.filter((l) => l.msg === 'plugin onStop failed');
    expect(failed).toEqual([expect.objectContaining({ plugin: 'stubborn', error: 'onStop did not finish within 150 ms' })]);
  });
});

describe('switchboard fs (child process)', () => {
  it('exits 1 naming the plugin and the code when a plugin’s onStart throws, and never registers', async () => {
    expect(existsSync(DIST_CLI), 'run `npm run build` first (npm test does)').toBe(true);
    const as = await h.startAs({ heartbeatMs: 500 });
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [DIST_CLI, 'fs', '--name', 'cli-ledger', '--host', HOST, '--port', '0', '--as', `${HOST}:${h.controlPort}`, '--plugins', FAILING_START, '--log-level', 'warn'],
        { timeout: 15_000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
      );
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/plugin ledger failed in its onStart \(LEDGER_DB_DOWN\): cannot reach the ledger database/);
    expect(r.stderr).toMatch(/\(SB_ERR_PLUGIN_START\)\s*$/);
    expect(as.listFunctionServers()).toEqual([]);
  });
});
