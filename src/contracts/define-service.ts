import { z } from 'zod';
import { ConfigError, MAX_UINT32 } from '../protocol/index.js';

/**
 * A service's contract, shared by the plugin that serves it and the callers that call it: the key
 * on the wire, the name people use, and the shapes of its request and answer. A plugin binds a
 * handler to it with `@Service(contract)`; a caller passes it to `client.call(contract, body)`, and
 * TypeScript infers both types from the schemas.
 */
export interface ServiceContract<Req = unknown, Res = unknown, Body = Req> {
  readonly kind: 'switchboard.service';
  readonly key: number;
  /** For people (logs, dashboard, `switchboard call --service greeter.greet`); the wire uses the key. */
  readonly name: string;
  /** Safe to run twice: callers and the AS may send it again when a connection drops under it. */
  readonly idempotent: boolean;
  /** Longest the handler may take; the smaller of this and the caller's budget wins. */
  readonly timeoutMs: number | undefined;
  /** What a caller sends (the FS checks it before the handler runs). */
  readonly request: z.ZodType<Body, Req> | undefined;
  /** What the handler returns and the caller gets. */
  readonly response: z.ZodType<Res> | undefined;
}

/** What a caller sends for contract C. */
export type RequestOf<C> = C extends ServiceContract<infer Req, unknown, unknown> ? Req : never;
/**
 * The arguments after the contract in a call of contract C: the body may be left out when the
 * contract takes none (no request schema, or one that accepts undefined).
 */
export type ContractCallArgs<C, O> = undefined extends RequestOf<C> ? [body?: RequestOf<C>, opts?: O] : [body: RequestOf<C>, opts?: O];
/** What the handler of contract C gets (after the schema's defaults and transforms). */
export type BodyOf<C> = C extends ServiceContract<unknown, unknown, infer Body> ? Body : never;
/** What a call of contract C resolves with. */
export type ResponseOf<C> = C extends ServiceContract<unknown, infer Res, unknown> ? Res : never;

export interface ServiceDefinition<ReqS extends z.ZodType | undefined, ResS extends z.ZodType | undefined> {
  key: number;
  name: string;
  idempotent?: boolean;
  timeoutMs?: number;
  request?: ReqS;
  response?: ResS;
}

/** Letters, digits and `._-`, dot-separated words such as `greeter.greet`; at most 128 characters. */
const NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export function defineService<ReqS extends z.ZodType | undefined = undefined, ResS extends z.ZodType | undefined = undefined>(
  def: ServiceDefinition<ReqS, ResS>,
): ServiceContract<ReqS extends z.ZodType ? z.input<ReqS> : unknown, ResS extends z.ZodType ? z.output<ResS> : unknown, ReqS extends z.ZodType ? z.output<ReqS> : unknown> {
  if (!Number.isInteger(def.key) || def.key < 0 || def.key > MAX_UINT32) throw new ConfigError(`service ${def.name}: key ${def.key} must be an integer from 0 to 4294967295`);
  if (typeof def.name !== 'string' || def.name.length > 128 || !NAME.test(def.name)) {
    throw new ConfigError(`service name "${def.name}" must be dot-separated words of letters, digits, _ and - (such as greeter.greet), at most 128 characters`);
  }
  if (def.timeoutMs !== undefined && (!Number.isInteger(def.timeoutMs) || def.timeoutMs <= 0)) throw new ConfigError(`service ${def.name}: timeoutMs must be a positive integer`);
  return Object.freeze({
    kind: 'switchboard.service' as const,
    key: def.key,
    name: def.name,
    idempotent: def.idempotent === true,
    timeoutMs: def.timeoutMs,
    request: def.request as never,
    response: def.response as never,
  });
}

export function isServiceContract(v: unknown): v is ServiceContract {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'switchboard.service';
}

/** The failing fields of a body that does not match a schema, as "path: message" lines. */
export function describeIssues(error: z.ZodError, max = 10): { path: string; message: string }[] {
  return error.issues.slice(0, max).map((i) => ({ path: i.path.length ? i.path.map(String).join('.') : '(body)', message: i.message }));
}
