// A plugin module for the attack replay's black-hole FS (`fs --plugins <this file>`): it serves the
// same key as the good FSs (1, echo, idempotent) and never answers. Plain JS on top of the build;
// the decorators are applied as functions.
import { Plugin, Service } from '../../dist/index.js';

export class BlackHolePlugin {
  /** Holds every request for ever, like a process whose work queue is wedged. */
  swallow() {
    return new Promise(() => undefined);
  }
}

Service(1, { idempotent: true })(BlackHolePlugin.prototype, 'swallow');
Plugin({ name: 'black-hole' })(BlackHolePlugin);
