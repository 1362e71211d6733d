import { Status, SwitchboardError } from '../protocol/index.js';

/** Thrown by plugin code to fail one request with its own stable code (status SERVICE_ERROR). */
export class PluginError extends SwitchboardError {
  constructor(code: string, message: string) {
    // The code is what callers match on: an empty or outsized one is a plugin bug, caught where it is made.
    if (typeof code !== 'string' || code.length === 0 || code.length > 128) {
      throw new TypeError(`a PluginError code must be 1 to 128 characters, got ${typeof code === 'string' ? `${code.length}` : typeof code}; give a short stable code such as 'UNKNOWN_CITY'`);
    }
    super(code, message, Status.SERVICE_ERROR);
  }
}

export class InvalidPluginError extends SwitchboardError {
  constructor(message: string) {
    super('SB_ERR_INVALID_PLUGIN', message, Status.SERVER_ERROR);
  }
}

export class DuplicateServiceKeyError extends SwitchboardError {
  readonly serviceKey: number;
  constructor(serviceKey: number, first: string, second: string) {
    super(
      'SB_ERR_DUPLICATE_SERVICE_KEY',
      `service key ${serviceKey} is claimed by both ${first} and ${second}; ` +
        'give one of them another key or load them on different function servers',
      Status.SERVER_ERROR,
    );
    this.serviceKey = serviceKey;
  }
}

export class PluginLoadError extends SwitchboardError {
  constructor(message: string, options?: ErrorOptions) {
    super('SB_ERR_PLUGIN_LOAD', message, Status.SERVER_ERROR, options);
  }
}

/** A plugin's constructor or onStart threw: the FS does not register; the message names the plugin and the error's code. */
export class PluginStartError extends SwitchboardError {
  readonly pluginName: string;
  constructor(pluginName: string, stage: 'constructor' | 'onStart', cause: unknown) {
    const e = cause as { code?: unknown; message?: unknown } | undefined;
    const code = typeof e?.code === 'string' ? e.code : 'no code';
    const message = typeof e?.message === 'string' ? e.message : String(cause);
    super('SB_ERR_PLUGIN_START', `plugin ${pluginName} failed in its ${stage} (${code}): ${message}; fix the plugin or what it depends on, then start the FS again (or, on a reload under --watch, save the module again: the code loaded before keeps serving)`, Status.SERVER_ERROR, { cause });
    this.pluginName = pluginName;
  }
}

export const PLUGIN_ERROR_CODES = ['SB_ERR_INVALID_PLUGIN', 'SB_ERR_DUPLICATE_SERVICE_KEY', 'SB_ERR_PLUGIN_LOAD', 'SB_ERR_PLUGIN_START'] as const;
