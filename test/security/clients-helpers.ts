import 'reflect-metadata';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { Plugin, Service, type ServiceContext } from '../../src/index.js';

/** Service keys of the plugins the security tests use. */
export const COUNTED = 960;
export const IGNORES_SIGNAL = 961;
export const THROWS_SECRET = 962;
export const GATED_ECHO = 963;

/** The service timeout IGNORES_SIGNAL declares: its deadline passes long before it ends. */
export const IGNORES_SIGNAL_TIMEOUT_MS = 100;

/** Text a handler throws that must never reach a caller. */
export const SECRET_TEXT = 'db password is hunter2 at /srv/secret/db.conf';

/** What the plugins below did, shared by every FS of one test file (reset with resetCounters()). */
export const counters = { counted: 0, ignoringStarted: 0, ignoringEnded: 0, thrown: 0 };

export function resetCounters(): void {
  gate.open();
  counters.counted = 0;
  counters.ignoringStarted = 0;
  counters.ignoringEnded = 0;
  counters.thrown = 0;
}

/** Counts every call that reaches a handler: "no handler ran" is `counters.counted` unchanged. */
@Plugin({ name: 'counted' })
export class CountedPlugin {
  @Service(COUNTED)
  count(): number {
    return ++counters.counted;
  }
}

/** Resolves after body.ms (default 1000) and never looks at its AbortSignal. */
@Plugin({ name: 'ignores-signal' })
export class IgnoresSignalPlugin {
  @Service(IGNORES_SIGNAL, { timeoutMs: IGNORES_SIGNAL_TIMEOUT_MS })
  slow(body: { ms?: number } | undefined): Promise<string> {
    counters.ignoringStarted++;
    const ms = body?.ms ?? 1000;
    return new Promise((resolve) =>
      setTimeout(() => {
        counters.ignoringEnded++;
        resolve('finished');
      }, ms),
    );
  }
}

const gateWaiters: (() => void)[] = [];

/** Holds GATED_ECHO calls until open(): a test can have many requests in flight, then let every answer go at once. */
export const gate = {
  waiting: (): number => gateWaiters.length,
  open: (): void => {
    for (const release of gateWaiters.splice(0)) release();
  },
};

/** Echoes body.value, but only once the test opens the gate. */
@Plugin({ name: 'gated-echo' })
export class GatedEchoPlugin {
  @Service(GATED_ECHO)
  held(body: { value?: unknown } | undefined): Promise<unknown> {
    return new Promise((resolve) => gateWaiters.push(() => resolve(body?.value)));
  }
}

/** Throws a plain Error whose text holds internals. */
@Plugin({ name: 'leaky' })
export class ThrowsSecretPlugin {
  @Service(THROWS_SECRET)
  explode(_body: unknown, _ctx: ServiceContext): never {
    counters.thrown++;
    throw new Error(SECRET_TEXT);
  }
}

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A pino logger whose JSON lines are collected in `lines` (parsed), for asserting what a server logged. */
export function captureLogger(level = 'debug'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  let partial = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      partial += chunk.toString('utf8');
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const text = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (text) lines.push(JSON.parse(text) as LogLine);
      }
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

/** Collects process 'warning' events (TimeoutOverflowWarning and the like) until stop(). */
export function collectWarnings(): { warnings: Error[]; stop: () => void } {
  const warnings: Error[] = [];
  const on = (w: Error): void => {
    warnings.push(w);
  };
  process.on('warning', on);
  return { warnings, stop: () => process.off('warning', on) };
}

/** 32 bytes of a fixed join secret, and a different one: both long enough (≥ 16 bytes). */
export const JOIN_SECRET = 'join-secret-0123456789abcdef-0123456789';
export const OTHER_SECRET = 'another-secret-fedcba9876543210-fedcba98';

/**
 * A well-behaved caller for tests that last seconds: one echo call at a time, a pause of `gapMs`
 * between calls, each answer checked. Bounded by `max` calls; stop() ends it.
 */
export function pacedEcho(client: { call: (key: number, body: unknown, o?: { timeoutMs?: number }) => Promise<unknown>; closed: boolean }, gapMs = 5, max = 5000): { ok: () => number; stop: () => Promise<{ ok: number; failures: string[] }> } {
  let stopped = false;
  let ok = 0;
  const failures: string[] = [];
  const running = (async () => {
    for (let i = 0; i < max && !stopped && !client.closed; i++) {
      try {
        const got = await client.call(1, { paced: i }, { timeoutMs: 2000 });
        if ((got as { paced?: number }).paced === i) ok++;
        else failures.push(`wrong answer to ${i}: ${JSON.stringify(got)}`);
      } catch (err) {
        failures.push(`call ${i} failed: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, gapMs));
    }
  })();
  return {
    ok: () => ok,
    stop: async () => {
      stopped = true;
      await running;
      return { ok, failures };
    },
  };
}
