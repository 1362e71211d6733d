import { setTimeout as sleep } from 'node:timers/promises';
import { Plugin, Service } from '../decorators.js';
import { PluginError } from '../errors.js';
import type { ServiceContext } from '../service-table.js';
import { echo, echoDelayed } from './contracts.js';

export const ECHO = 1;
export const ECHO_DELAYED = 2;

const MAX_DELAY_MS = 60_000;

/** Answers with what it was sent; the delayed form waits first (for drain, timeout and chaos runs). */
@Plugin({ name: 'echo' })
export class EchoPlugin {
  @Service(echo)
  echo(body: unknown): unknown {
    return body;
  }

  @Service(echoDelayed)
  async delayed(body: { ms?: unknown; value?: unknown } | undefined, ctx?: ServiceContext): Promise<unknown> {
    const ms = body?.ms;
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || ms > MAX_DELAY_MS) {
      throw new PluginError('BAD_DELAY', `body.ms must be a number of milliseconds from 0 to ${MAX_DELAY_MS}`);
    }
    // Honours its signal: once the answer is no longer wanted, the wait ends and nothing is held.
    await sleep(ms, undefined, ctx ? { signal: ctx.signal } : undefined);
    return body?.value;
  }
}
