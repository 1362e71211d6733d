import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import { silentLogger, type Logger } from '../common/logger.js';
import { isServiceContract, type ContractCallArgs, type ResponseOf, type ServiceContract } from '../contracts/index.js';
import { ServiceTable, type Provider } from '../plugins/index.js';
import {
  BadRequestError,
  DEFAULT_MAX_BODY_BYTES,
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  MAX_UINT32,
  Serialization,
  Status,
  decodeBody,
  encodeBody,
  encodeFrameRaw,
  errorFromStatus,
  statusOf,
  type SwitchboardError,
} from '../protocol/index.js';
import { RequestHandler, type AnswerSink } from './request-handler.js';

export interface TestBedOptions {
  /** The plugin classes under test. */
  plugins: readonly unknown[];
  /** Registered in every plugin's container after its own providers: mocks and fakes. */
  providers?: readonly Provider[];
  /** Parent of the plugins' containers (FS-wide providers). */
  container?: DependencyContainer;
  /** Deadline for calls that name none (default 30000). */
  defaultTimeoutMs?: number;
  maxBodyBytes?: number;
  /** Check answers against their contract's response schema (default true here: catch it in tests). */
  validateResponses?: boolean;
  /** Silent by default; give one (createLogger) to see what the FS would log, a handler's thrown error with its stack included. */
  logger?: Logger;
}

export interface TestBedCallOptions {
  timeoutMs?: number;
  poolType?: number;
}

/**
 * Calls a plugin's services in this process through the same path as a real FS: the body is
 * encoded to msgpack, decoded and checked (standard msgpack, the contract's schema), the handler
 * runs with its context and deadline, and the answer is encoded and decoded again. So a body that
 * would not survive the wire fails here too, and errors arrive as the same error classes a client
 * gets. No socket, no AS.
 */
export class TestBed {
  readonly #handler: RequestHandler;
  readonly #defaultTimeoutMs: number;
  readonly #maxBodyBytes: number;
  #nextId = 1;
  #closed = false;

  private constructor(handler: RequestHandler, defaultTimeoutMs: number, maxBodyBytes: number) {
    this.#handler = handler;
    this.#defaultTimeoutMs = defaultTimeoutMs;
    this.#maxBodyBytes = maxBodyBytes;
  }

  /** Builds the plugins (with the providers), runs their onStart, and is ready for calls. */
  static async create(o: TestBedOptions): Promise<TestBed> {
    const parent = (o.container ?? rootContainer).createChildContainer();
    const table = new ServiceTable(o.plugins, parent, { overrides: o.providers });
    await table.start();
    const maxBodyBytes = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const handler = new RequestHandler({
      table,
      logger: o.logger ?? silentLogger,
      maxInflight: 10_000,
      defaultTimeoutMs: o.defaultTimeoutMs ?? 30_000,
      maxBodyBytes,
      validateResponses: o.validateResponses ?? true,
    });
    return new TestBed(handler, o.defaultTimeoutMs ?? 30_000, maxBodyBytes);
  }

  get table(): ServiceTable {
    return this.#handler.table;
  }

  /** Calls a contract's service: typed from its schemas. */
  call<C extends ServiceContract<unknown, unknown, unknown>>(contract: C, ...args: ContractCallArgs<C, TestBedCallOptions>): Promise<ResponseOf<C>>;
  /** Calls a service by key. */
  call<T = unknown>(serviceKey: number, body?: unknown, opts?: TestBedCallOptions): Promise<T>;
  call(keyOrContract: number | ServiceContract, body?: unknown, opts: TestBedCallOptions = {}): Promise<unknown> {
    if (this.#closed) return Promise.reject(new BadRequestError('the test bed is closed'));
    const key = isServiceContract(keyOrContract) ? keyOrContract.key : keyOrContract;
    let encoded: Buffer;
    try {
      encoded = encodeBody(body);
    } catch (err) {
      return Promise.reject(new BadRequestError(`the call's body cannot be encoded as msgpack: ${(err as Error).message}`));
    }
    const id = this.#nextId++;
    const budget = Math.min(opts.timeoutMs ?? this.#defaultTimeoutMs, MAX_UINT32);
    const frame = encodeFrameRaw({ flags: FLAG_REQUEST | FLAG_TWO_WAY | Serialization.MSGPACK, requestId: id, serviceKey: key, poolType: opts.poolType ?? 0, budgetMs: budget }, encoded);
    return new Promise((resolve, reject) => {
      const answer = (f: Buffer): void => {
        let value: unknown;
        try {
          value = decodeBody(f);
        } catch (err) {
          reject(err as SwitchboardError);
          return;
        }
        if (statusOf(f) === Status.OK) resolve(value);
        else reject(errorFromStatus(statusOf(f), value as { code?: string; message?: string }));
      };
      const sink: AnswerSink = {
        peerMaxBodyBytes: this.#maxBodyBytes,
        send: answer,
        sendFrame: (flags, status, requestId, serviceKey, poolType, budgetMs, b) => answer(encodeFrameRaw({ flags, status, requestId, serviceKey, poolType, budgetMs }, b)),
        refuse: (err) => reject(err),
      };
      this.#handler.handle(frame, 0, frame.length, sink);
    });
  }

  /** Waits for running handlers, then runs the plugins' onStop. */
  async close(stopTimeoutMs = 5000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#handler.idle();
    await this.#handler.table.stop(stopTimeoutMs);
  }
}

/** `createTestBed({ plugins: [GreeterPlugin], providers: [{ token: Greetings, useValue: fake }] })`. */
export function createTestBed(o: TestBedOptions): Promise<TestBed> {
  return TestBed.create(o);
}

