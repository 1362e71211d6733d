import 'reflect-metadata';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import type { RequestMetadata, ServiceDescriptor } from '../protocol/index.js';
import type { Provider } from './decorators.js';
import type { ZodType } from 'zod';
import { DuplicateServiceKeyError, InvalidPluginError, PluginStartError } from './errors.js';
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
  /**
   * The caller's routing key decoded as UTF-8, when the request carried one in its header
   * extension. Bytes that are not UTF-8 read as U+FFFD, so two such keys may look alike here;
   * routingKeyBytes has the key exactly as the AS hashed it.
   */
  readonly routingKey?: string;
  /** The routing key's bytes as sent (a copy the handler may keep). */
  readonly routingKeyBytes?: Buffer;
  /** The W3C trace context the request carried, when it carried a valid one. */
  readonly traceparent?: string;
  readonly tracestate?: string;
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
    /** What the request's header extension carried (version-2 requests only). */
    private readonly meta?: RequestMetadata,
  ) {}

  get routingKey(): string | undefined {
    return this.meta?.routingKey?.toString('utf8');
  }

  get routingKeyBytes(): Buffer | undefined {
    // A copy: the view lies in a read chunk that other requests share.
    const k = this.meta?.routingKey;
    return k === undefined ? undefined : Buffer.from(k);
  }

  get traceparent(): string | undefined {
    return this.meta?.traceparent;
  }

  get tracestate(): string | undefined {
    return this.meta?.tracestate;
  }

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
  /** The contract's name, when the handler is bound to one. */
  name: string | undefined;
  pluginName: string;
  method: string;
  idempotent: boolean;
  timeoutMs: number | undefined;
  /** The contract's request schema: bodies are checked against it before the handler runs. */
  request: ZodType | undefined;
  /** The contract's answer schema (checked only when the FS is asked to). */
  response: ZodType | undefined;
  handler: ServiceHandler;
}

/** A plugin's optional lifecycle: onStart before the FS registers, onStop after it drained. */
export interface PluginLifecycle {
  onStart?(): unknown;
  onStop?(): unknown;
}

export interface ServiceTableOptions {
  /** Registered in every plugin's child container after the plugin's own providers: mocks in tests. */
  overrides?: readonly Provider[];
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
  readonly #names = new Map<string, ServiceEntry>();
  readonly #plugins = new Map<string, object>();
  /** Handlers of this table still running (asynchronous ones): a replaced table stops when this is 0. */
  running = 0;

  /** `parent` is where FS-wide providers live (logger, config); defaults to a child of the root container. */
  constructor(pluginClasses: readonly unknown[], parent: DependencyContainer = rootContainer.createChildContainer(), opts: ServiceTableOptions = {}) {
    for (const cls of pluginClasses) {
      const def = explorePlugin(cls);
      const name = def.options.name;
      if (this.#plugins.has(name)) {
        throw new InvalidPluginError(`two plugins are named ${name}; plugin names must be unique on one function server`);
      }
      const child = parent.createChildContainer();
      child.register(PLUGIN_NAME, { useValue: name });
      for (const p of def.options.providers ?? []) register(child, p);
      for (const p of opts.overrides ?? []) register(child, p);
      let instance: Record<string, (...a: unknown[]) => unknown>;
      try {
        instance = child.resolve(def.cls as never) as Record<string, (...a: unknown[]) => unknown>;
      } catch (err) {
        throw new PluginStartError(name, 'constructor', err);
      }
      this.#plugins.set(name, instance);
      for (const s of def.services) {
        const prior = this.#entries.get(s.key);
        if (prior) throw new DuplicateServiceKeyError(s.key, `${prior.pluginName}.${prior.method}()`, `${name}.${s.method}()`);
        const entry: ServiceEntry = {
          key: s.key,
          name: s.contract?.name,
          pluginName: name,
          method: s.method,
          idempotent: s.options.idempotent === true,
          timeoutMs: s.options.timeoutMs,
          request: s.contract?.request,
          response: s.contract?.response,
          handler: instance[s.method].bind(instance) as ServiceHandler,
        };
        if (entry.name !== undefined) {
          const other = this.#names.get(entry.name);
          if (other) {
            throw new InvalidPluginError(
              `service name ${entry.name} is claimed by both ${other.pluginName}.${other.method}() (key ${other.key}) and ${name}.${s.method}() (key ${s.key}); a name belongs to one service`,
            );
          }
          this.#names.set(entry.name, entry);
        }
        this.#entries.set(s.key, entry);
      }
    }
  }

  get(key: number): ServiceEntry | undefined {
    return this.#entries.get(key);
  }

  /** The service with this contract name. */
  byName(name: string): ServiceEntry | undefined {
    return this.#names.get(name);
  }

  /** Every service, in key order. */
  entries(): ServiceEntry[] {
    return [...this.#entries.values()].sort((a, b) => a.key - b.key);
  }

  /**
   * Runs each plugin's onStart, in load order. A throw stops there with a PluginStartError naming
   * the plugin; the plugins already started are stopped again (onStop), so nothing is left open.
   * `onSlow` hears of an onStart still running after `slowMs`, once: it is waited for all the same.
   */
  async start(onSlow?: (plugin: string, afterMs: number) => void, slowMs = 10_000): Promise<void> {
    const started: [string, PluginLifecycle][] = [];
    for (const [name, instance] of this.#plugins) {
      const p = instance as PluginLifecycle;
      if (typeof p.onStart !== 'function') continue;
      const slow = onSlow === undefined ? undefined : setTimeout(() => onSlow(name, slowMs), slowMs);
      try {
        await p.onStart();
        started.push([name, p]);
      } catch (err) {
        for (const [, s] of started.reverse()) await Promise.resolve(s.onStop?.()).catch(() => undefined);
        throw new PluginStartError(name, 'onStart', err);
      } finally {
        clearTimeout(slow);
      }
    }
  }

  /** Runs each plugin's onStop, in reverse load order, each within `timeoutMs`; returns the failures. */
  async stop(timeoutMs: number): Promise<{ plugin: string; error: string }[]> {
    const failures: { plugin: string; error: string }[] = [];
    for (const [name, instance] of [...this.#plugins].reverse()) {
      const p = instance as PluginLifecycle;
      if (typeof p.onStop !== 'function') continue;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(() => p.onStop?.()),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`onStop did not finish within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
      } catch (err) {
        failures.push({ plugin: name, error: (err as Error).message });
      } finally {
        clearTimeout(timer);
      }
    }
    return failures;
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
    return [...this.#entries.values()].map((e) => {
      const d: ServiceDescriptor = { key: e.key, idempotent: e.idempotent };
      if (e.timeoutMs !== undefined) d.timeoutMs = e.timeoutMs;
      if (e.name !== undefined) d.name = e.name;
      return d;
    });
  }
}
