import 'reflect-metadata';
import { injectable, type InjectionToken } from 'tsyringe';
import { isServiceContract, type ServiceContract } from '../contracts/index.js';
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
  /** Set when the handler is bound to a contract (`@Service(contract)`). */
  contract?: ServiceContract;
}

/** Marks a class as a plugin. Only writes metadata (and makes the class injectable). */
export function Plugin(options: PluginOptions): ClassDecorator {
  return (target) => {
    Reflect.defineMetadata(PLUGIN_METADATA, { ...options }, target);
    injectable()(target as never);
  };
}

/**
 * Marks a method as the handler of one service: a contract made with defineService (its key, name,
 * options and schemas), or a bare service key with options. Only writes metadata.
 */
export function Service(keyOrContract: number | ServiceContract, options: ServiceOptions = {}): MethodDecorator {
  return (target, propertyKey) => {
    const ctor = (target as { constructor: object }).constructor;
    const existing: ServiceMetadata[] = Reflect.getOwnMetadata(SERVICES_METADATA, ctor) ?? [];
    const meta: ServiceMetadata = isServiceContract(keyOrContract)
      ? {
          key: keyOrContract.key,
          method: String(propertyKey),
          options: { idempotent: keyOrContract.idempotent, timeoutMs: keyOrContract.timeoutMs, ...options },
          contract: keyOrContract,
        }
      : { key: keyOrContract, method: String(propertyKey), options: { ...options } };
    Reflect.defineMetadata(SERVICES_METADATA, [...existing, meta], ctor);
  };
}
