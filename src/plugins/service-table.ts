import 'reflect-metadata';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import type { ServiceDescriptor } from '../protocol/index.js';
import type { Provider } from './decorators.js';
import { DuplicateServiceKeyError, InvalidPluginError } from './errors.js';
import { explorePlugin } from './plugin-explorer.js';

/** What a handler gets besides its decoded body. */
export interface ServiceContext {
  readonly serviceKey: number;
  readonly poolType: number;
  readonly requestId: number;
  /** Epoch ms after which nobody waits for the answer any more. */
  readonly deadlineAt: number;
  readonly pluginName: string;
  /**
   * Aborted when the answer is no longer wanted (the deadline passed and TIMEOUT was sent, or the
   * FS stopped before the handler finished). Pass it on to fetch, timers or your own loops.
   */
  readonly signal: AbortSignal;
}

/** The FS's ServiceContext: the AbortController is made only if a handler reads `signal`. */
export class RequestContext implements ServiceContext {
  #controller: AbortController | undefined;
  constructor(
    readonly serviceKey: number,
    readonly poolType: number,
    readonly requestId: number,
    readonly deadlineAt: number,
    readonly pluginName: string,
    /** Told when a handler first asks for the signal, so only those requests need tracking. */
    private readonly onWatch?: (ctx: RequestContext) => void,
  ) {}

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      this.onWatch?.(this);
    }
    return this.#controller.signal;
  }

  /** Aborts the signal, if anyone asked for it. */
  abort(reason: Error): void {
    this.#controller?.abort(reason);
  }
}

export type ServiceHandler = (body: unknown, ctx: ServiceContext) => unknown;

export interface ServiceEntry {
  key: number;
  pluginName: string;
  method: string;
  idempotent: boolean;
  timeoutMs: number | undefined;
  handler: ServiceHandler;
}

/** Token under which each plugin's child container offers the plugin's own name. */
export const PLUGIN_NAME = Symbol.for('switchboard.plugin-name');

function register(c: DependencyContainer, p: Provider): void {
  if ('useValue' in p) c.register(p.token, { useValue: p.useValue });
  else if ('useClass' in p) c.register(p.token, { useClass: p.useClass as never });
  else c.register(p.token, { useFactory: p.useFactory });
}

/**
 * The function server's routing table: service key → bound handler. Each plugin is built in
 * its own child container, so plugins never share singletons by accident.
 */
export class ServiceTable {
  readonly #entries = new Map<number, ServiceEntry>();
  readonly #plugins = new Map<string, object>();

  /** `parent` is where FS-wide providers live (logger, config); defaults to a child of the root container. */
  constructor(pluginClasses: readonly unknown[], parent: DependencyContainer = rootContainer.createChildContainer()) {
    for (const cls of pluginClasses) {
      const def = explorePlugin(cls);
      const name = def.options.name;
      if (this.#plugins.has(name)) {
        throw new InvalidPluginError(`two plugins are named ${name}; plugin names must be unique on one function server`);
      }
      const child = parent.createChildContainer();
      child.register(PLUGIN_NAME, { useValue: name });
      for (const p of def.options.providers ?? []) register(child, p);
      const instance = child.resolve(def.cls as never) as Record<string, (...a: unknown[]) => unknown>;
      this.#plugins.set(name, instance);
      for (const s of def.services) {
        const prior = this.#entries.get(s.key);
        if (prior) throw new DuplicateServiceKeyError(s.key, `${prior.pluginName}.${prior.method}()`, `${name}.${s.method}()`);
        this.#entries.set(s.key, {
          key: s.key,
          pluginName: name,
          method: s.method,
          idempotent: s.options.idempotent === true,
          timeoutMs: s.options.timeoutMs,
          handler: instance[s.method].bind(instance) as ServiceHandler,
        });
      }
    }
  }

  get(key: number): ServiceEntry | undefined {
    return this.#entries.get(key);
  }

  get size(): number {
    return this.#entries.size;
  }

  keys(): number[] {
    return [...this.#entries.keys()];
  }

  pluginNames(): string[] {
    return [...this.#plugins.keys()];
  }

  /** The table as HELLO and DESCRIBE carry it. */
  descriptors(): ServiceDescriptor[] {
    return [...this.#entries.values()].map((e) =>
      e.timeoutMs === undefined ? { key: e.key, idempotent: e.idempotent } : { key: e.key, idempotent: e.idempotent, timeoutMs: e.timeoutMs },
    );
  }
}
