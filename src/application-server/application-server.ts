import { EventEmitter } from 'node:events';
import { silentLogger, type Logger } from '../common/logger.js';
import { ConfigError, DEFAULT_HEARTBEAT_MS, DEFAULT_MAX_BODY_BYTES } from '../protocol/index.js';
import { ClientIngress } from './ingress/client-ingress.js';
import { ControlListener } from './registry/control-listener.js';
import { Dispatcher } from './routing/dispatcher.js';
import type { FsState, FunctionServerInfo } from './registry/function-server-entry.js';
import { FsManager, type AddFunctionServerOptions } from './registry/fs-manager.js';
import { createStrategy, type SchedulingStrategy, type StrategyName } from './routing/scheduler.js';

export interface ApplicationServerOptions {
  /** Address both listeners bind. */
  host?: string;
  /** Client port; 0 picks a free one. */
  port?: number;
  /** FS registration port; 0 picks a free one. */
  controlPort?: number;
  /** `least-loaded` (power of two choices on load and in-flight) or `round-robin`, or your own strategy. */
  strategy?: StrategyName | SchedulingStrategy;
  heartbeatMs?: number;
  /** Deadline for requests that carry no budget. */
  defaultTimeoutMs?: number;
  /** Connections kept to each FS. */
  poolSize?: number;
  connectTimeoutMs?: number;
  reconnectBaseMs?: number;
  /** Longest wait between probes of an unavailable FS. */
  reconnectCapMs?: number;
  ejectAfterFailures?: number;
  maxConnections?: number;
  maxInflightPerClient?: number;
  maxInflightPerFs?: number;
  /** Times an idempotent request may be sent in all when connections drop under it. */
  maxAttempts?: number;
  /** The FSs' LOAD period; reports older than three periods are ignored. */
  loadRefreshMs?: number;
  /** Weight of reported load against in-flight count in the least-loaded cost. */
  loadWeight?: number;
  maxBodyBytes?: number;
  logger?: Logger;
  random?: () => number;
}

export interface ApplicationServerEvents {
  'fs-joined': [FunctionServerInfo];
  'fs-left': [FunctionServerInfo, string];
  'fs-state': [FunctionServerInfo, FsState];
}

/** The application server: client ingress, FS registry, pools, scheduler and dispatcher in one process. */
export class ApplicationServer extends EventEmitter<ApplicationServerEvents> {
  readonly manager: FsManager;
  readonly dispatcher: Dispatcher;
  readonly #ingress: ClientIngress;
  readonly #control: ControlListener;
  readonly #logger: Logger;
  #ports: { port: number; controlPort: number } | undefined;

  constructor(opts: ApplicationServerOptions = {}) {
    super();
    const logger = opts.logger ?? silentLogger;
    const host = opts.host ?? '127.0.0.1';
    const heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const refresh = opts.loadRefreshMs ?? 1000;
    if (heartbeatMs < 0) throw new ConfigError('heartbeatMs must be 0 (off) or a positive number of ms');
    const strategy =
      typeof opts.strategy === 'object'
        ? opts.strategy
        : createStrategy(opts.strategy ?? 'least-loaded', { staleAfterMs: refresh * 3, loadWeight: opts.loadWeight });
    this.#logger = logger;
    this.dispatcher = new Dispatcher({
      strategy,
      defaultTimeoutMs: opts.defaultTimeoutMs ?? 30_000,
      maxInflightPerFs: opts.maxInflightPerFs ?? 10_000,
      maxAttempts: opts.maxAttempts ?? 3,
      sweepMs: 20,
      logger,
      random: opts.random,
    });
    this.manager = new FsManager(
      {
        poolSize: opts.poolSize ?? 1,
        heartbeatMs,
        connectTimeoutMs: opts.connectTimeoutMs ?? 3000,
        reconnectBaseMs: opts.reconnectBaseMs ?? 100,
        reconnectCapMs: opts.reconnectCapMs ?? 5000,
        ejectAfterFailures: opts.ejectAfterFailures ?? 3,
        maxBodyBytes,
        logger,
      },
      this.dispatcher,
    );
    this.dispatcher.attach(this.manager);
    this.manager.on('joined', (i) => this.emit('fs-joined', i));
    this.manager.on('left', (i, why) => this.emit('fs-left', i, why));
    this.manager.on('state', (i, from) => this.emit('fs-state', i, from));
    this.#ingress = new ClientIngress(
      {
        host,
        port: opts.port ?? 0,
        heartbeatMs,
        readTimeoutMs: Math.max(1000, heartbeatMs * 3),
        maxConnections: opts.maxConnections ?? 10_000,
        maxInflightPerClient: opts.maxInflightPerClient ?? 1024,
        maxBodyBytes,
        logger,
      },
      this.dispatcher,
    );
    this.#control = new ControlListener({ host, port: opts.controlPort ?? 0, heartbeatMs, maxBodyBytes, logger }, this.manager);
  }

  get ports(): { port: number; controlPort: number } {
    if (!this.#ports) throw new ConfigError('the application server is not listening; call start() first');
    return this.#ports;
  }

  get clientConnections(): number {
    return this.#ingress.connectionCount;
  }

  /** Client connections refused at maxConnections since start. */
  get refusedConnections(): number {
    return this.#ingress.refused;
  }

  async start(): Promise<{ port: number; controlPort: number }> {
    const port = await this.#ingress.listen();
    const controlPort = await this.#control.listen();
    this.#ports = { port, controlPort };
    this.#logger.info({ port, controlPort }, 'application server listening');
    return this.#ports;
  }

  addFunctionServer(o: AddFunctionServerOptions): FunctionServerInfo {
    return this.manager.addFunctionServer(o);
  }

  removeFunctionServer(id: string): boolean {
    return this.manager.removeFunctionServer(id);
  }

  listFunctionServers(): FunctionServerInfo[] {
    return this.manager.list();
  }

  async stop(): Promise<void> {
    this.#control.close();
    this.#ingress.close();
    this.manager.close();
    this.dispatcher.close();
    this.#logger.info('application server stopped');
  }
}
