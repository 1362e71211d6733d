// A plugin module for FS child processes in the resilience tests (`fs --plugins echo <this file>`).
// Plain JS on top of the build, because the CLI imports plugin modules as built .js files; the
// decorators are applied as functions. Keys match test/resilience/helpers.ts.
import { Plugin, Service } from '../../dist/index.js';

const SLOW_IDEMPOTENT = 3001;
const WHO = 3003;

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
}

Service(SLOW_IDEMPOTENT, { idempotent: true })(ResiliencePlugin.prototype, 'slow');
Service(WHO, { idempotent: true })(ResiliencePlugin.prototype, 'who');
Plugin({ name: 'resilience' })(ResiliencePlugin);
