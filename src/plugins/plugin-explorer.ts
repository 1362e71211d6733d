import 'reflect-metadata';
import type { PluginOptions, ServiceMetadata } from './decorators.js';
import { InvalidPluginError } from './errors.js';
import { PLUGIN_METADATA, SERVICES_METADATA } from './metadata-keys.js';

export type PluginClass = new (...args: never[]) => object;

export interface PluginDefinition {
  cls: PluginClass;
  options: PluginOptions;
  services: ServiceMetadata[];
}

export function isPluginClass(value: unknown): value is PluginClass {
  return typeof value === 'function' && Reflect.hasOwnMetadata(PLUGIN_METADATA, value);
}

/** Reads what @Plugin and @Service wrote on a class, and checks it. */
export function explorePlugin(cls: unknown): PluginDefinition {
  if (!isPluginClass(cls)) {
    const name = typeof cls === 'function' ? cls.name : typeof cls;
    throw new InvalidPluginError(`${name} is not a plugin: decorate the class with @Plugin({ name })`);
  }
  const options = Reflect.getOwnMetadata(PLUGIN_METADATA, cls) as PluginOptions;
  if (typeof options.name !== 'string' || options.name.length === 0) {
    throw new InvalidPluginError(`@Plugin on ${cls.name} needs a non-empty name`);
  }
  const services: ServiceMetadata[] = Reflect.getOwnMetadata(SERVICES_METADATA, cls) ?? [];
  if (services.length === 0) {
    throw new InvalidPluginError(`plugin ${options.name} has no @Service methods; give at least one method @Service(key)`);
  }
  const seen = new Map<number, string>();
  for (const s of services) {
    if (!Number.isInteger(s.key) || s.key < 0 || s.key > 0xffffffff) {
      throw new InvalidPluginError(`plugin ${options.name}: service key ${s.key} on ${s.method}() must be an integer from 0 to 4294967295`);
    }
    const other = seen.get(s.key);
    if (other !== undefined) {
      throw new InvalidPluginError(`plugin ${options.name}: ${other}() and ${s.method}() both claim service key ${s.key}`);
    }
    seen.set(s.key, s.method);
    const c = s.contract;
    // Callers re-send by the contract's idempotent: an FS that declared otherwise would have the AS
    // and direct clients disagree about the same call. (A shorter timeoutMs here is the FS's own limit.)
    if (c !== undefined && s.options.idempotent !== c.idempotent) {
      throw new InvalidPluginError(
        `plugin ${options.name}: @Service(${c.name}) on ${s.method}() sets idempotent ${String(s.options.idempotent)}, but the contract says ${String(c.idempotent)}; callers act on the contract, so change it there and drop the option`,
      );
    }
    const t = s.options.timeoutMs;
    if (t !== undefined && (!Number.isInteger(t) || t <= 0)) {
      throw new InvalidPluginError(`plugin ${options.name}: timeoutMs on ${s.method}() must be a positive integer`);
    }
    if (typeof (cls.prototype as Record<string, unknown>)[s.method] !== 'function') {
      throw new InvalidPluginError(`plugin ${options.name}: @Service(${s.key}) is on ${s.method}, which is not a method`);
    }
  }
  return { cls, options, services };
}
