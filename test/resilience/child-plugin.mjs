// A plugin module for FS child processes in the resilience tests (`fs --plugins echo <this file>`).
// Plain JS on top of the build, because the CLI imports plugin modules as built .js files; the
// decorators are applied as functions. Keys match test/resilience/helpers.ts.
import { Plugin, Service } from '../../dist/index.js';

import { existsSync } from 'node:fs';

const SLOW_IDEMPOTENT = 3001;
const WHO = 3003;
const HELD_UNTIL_FILE = 3005;

const nameArg = process.argv.indexOf('--name');
const FS_NAME = nameArg >= 0 ? process.argv[nameArg + 1] : 'unknown';

export class ResiliencePlugin {
  /** Waits `ms`, then answers `value`: a slow call that may safely be sent twice. */
  async slow(body) {
    await new Promise((r) => setTimeout(r, Math.min(Number(body?.ms) || 0, 10_000)));
    return body?.value ?? null;
  }

  /** The --name of the FS process that served the call. */
  who() {
    return FS_NAME;
  }

  /** Answers `value` once the file `path` exists: a call held in flight for as long as the test needs, however slow the machine. */
  async held(body, ctx) {
    while (!existsSync(String(body?.path))) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      await new Promise((r) => setTimeout(r, 20));
    }
    return body?.value ?? null;
  }
}

Service(SLOW_IDEMPOTENT, { idempotent: true })(ResiliencePlugin.prototype, 'slow');
Service(WHO, { idempotent: true })(ResiliencePlugin.prototype, 'who');
Service(HELD_UNTIL_FILE)(ResiliencePlugin.prototype, 'held');
Plugin({ name: 'resilience' })(ResiliencePlugin);
