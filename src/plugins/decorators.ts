import 'reflect-metadata';
import { injectable, type InjectionToken } from 'tsyringe';
import { PLUGIN_METADATA, SERVICES_METADATA } from './metadata-keys.js';

export type Provider =
  | { token: InjectionToken; useValue: unknown }
  | { token: InjectionToken; useClass: new (...args: never[]) => unknown }
  | { token: InjectionToken; useFactory: (c: import('tsyringe').DependencyContainer) => unknown };

export interface PluginOptions {
  /** Unique among the plugins of one function server; appears in logs and errors. */
  name: string;
  /** Registered in this plugin's own child container before the plugin is built. */
  providers?: Provider[];
}

export interface ServiceOptions {
  /** Safe to run twice: the AS may re-send it to another FS when a connection drops. */
  idempotent?: boolean;
  /** Longest the handler may take; the smaller of this and the caller's budget wins. */
  timeoutMs?: number;
}

export interface ServiceMetadata {
  key: number;
  method: string;
  options: ServiceOptions;
}

/** Marks a class as a plugin. Only writes metadata (and makes the class injectable). */
export function Plugin(options: PluginOptions): ClassDecorator {
  return (target) => {
    Reflect.defineMetadata(PLUGIN_METADATA, { ...options }, target);
    injectable()(target as never);
  };
}

/** Marks a method as the handler of one service key. Only writes metadata. */
export function Service(key: number, options: ServiceOptions = {}): MethodDecorator {
  return (target, propertyKey) => {
    const ctor = (target as { constructor: object }).constructor;
    const existing: ServiceMetadata[] = Reflect.getOwnMetadata(SERVICES_METADATA, ctor) ?? [];
    Reflect.defineMetadata(SERVICES_METADATA, [...existing, { key, method: String(propertyKey), options: { ...options } }], ctor);
  };
}
