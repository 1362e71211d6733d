import { Status, statusName } from './status.js';

/**
 * Every error Switchboard raises carries a stable `code` (documented in docs/errors.md).
 * Errors that travel on the wire also carry the response `status` they map to.
 */
export class SwitchboardError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(code: string, message: string, status: number = Status.SERVER_ERROR, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

// ── Frame errors: the connection that sent the bytes is closed, nothing else. ──

export class BadMagicError extends SwitchboardError {
  constructor(got: number) {
    super(
      'SB_ERR_BAD_MAGIC',
      `frame does not start with the Switchboard magic 0x5342 (got 0x${got.toString(16).padStart(4, '0')}); ` +
        'the peer is not speaking the Switchboard protocol: check the host and port it dialled',
      Status.BAD_REQUEST,
    );
  }
}

export class BadVersionError extends SwitchboardError {
  /** `notARequest`: version 2 on an event or a response, which stay in version 1. */
  constructor(got: number, notARequest = false) {
    super(
      'SB_ERR_BAD_VERSION',
      notARequest
        ? `protocol version ${got} is for requests only; send events and responses in version 1`
        : `protocol version ${got} is not supported (this side speaks 1, and 2 for requests with an extension block); upgrade the older peer`,
      Status.BAD_REQUEST,
    );
  }
}

export class FrameTooLargeError extends SwitchboardError {
  constructor(length: number, max: number) {
    super(
      'SB_ERR_FRAME_TOO_LARGE',
      `frame body of ${length} bytes exceeds the ${max}-byte cap; send smaller bodies or raise maxBodyBytes on both sides`,
      Status.BAD_REQUEST,
    );
  }
}

export class BodyDecodeError extends SwitchboardError {
  constructor(cause: unknown, message = 'request body is not valid msgpack; encode it with a msgpack library') {
    super('SB_ERR_BAD_BODY', message, Status.BAD_REQUEST, { cause });
  }
}

// ── Status errors: one request fails, its connection carries on. ──

export class BadRequestError extends SwitchboardError {
  /** The failing fields, when a contract's schema refused the body (SB_ERR_VALIDATION). */
  readonly issues: { path: string; message: string }[] | undefined;
  /** `code` may name a narrower cause that travelled on the wire (e.g. SB_ERR_BAD_BODY under BAD_REQUEST). */
  constructor(message = 'the request is malformed', code = 'SB_ERR_BAD_REQUEST', issues?: { path: string; message: string }[]) {
    super(code, message, Status.BAD_REQUEST);
    this.issues = issues;
  }
}

export class ServiceNotFoundError extends SwitchboardError {
  constructor(message = 'no function server serves this service key', code = 'SB_ERR_SERVICE_NOT_FOUND') {
    super(code, message, Status.SERVICE_NOT_FOUND);
  }
}

export class UnavailableError extends SwitchboardError {
  constructor(message = 'every function server for this service key is unavailable; retry later', code = 'SB_ERR_UNAVAILABLE') {
    super(code, message, Status.UNAVAILABLE);
  }
}

export class DeadlineExceededError extends SwitchboardError {
  constructor(message = 'the request deadline passed before an answer came; raise timeoutMs or look for a slow plugin', code = 'SB_ERR_TIMEOUT') {
    super(code, message, Status.TIMEOUT);
  }
}

export class ServiceFailedError extends SwitchboardError {
  /** The code the plugin's own error carried, when it had one. */
  readonly serviceCode: string | undefined;
  constructor(message: string, serviceCode?: string) {
    super('SB_ERR_SERVICE', message, Status.SERVICE_ERROR);
    this.serviceCode = serviceCode;
  }
}

export class ServerError extends SwitchboardError {
  constructor(message = 'the server failed while handling the request; see its log', code = 'SB_ERR_SERVER') {
    super(code, message, Status.SERVER_ERROR);
  }
}

export class ChannelClosedError extends SwitchboardError {
  constructor(message = 'the connection closed before the answer came; the request may or may not have run', code = 'SB_ERR_CHANNEL_CLOSED') {
    super(code, message, Status.CHANNEL_CLOSED);
  }
}

export class OverloadedError extends SwitchboardError {
  constructor(message = 'too many requests in flight; back off and retry', code = 'SB_ERR_OVERLOADED') {
    super(code, message, Status.OVERLOADED);
  }
}

/**
 * A peer did not prove who it is: it sent something before its proof (SB_ERR_AUTH_REQUIRED), a
 * wrong proof (SB_ERR_AUTH_FAILED), none in time (SB_ERR_AUTH_TIMEOUT), or its address is not one
 * this port takes from peers without proof (SB_ERR_AUTH_REQUIRED).
 */
export class AuthError extends SwitchboardError {
  constructor(code: 'SB_ERR_AUTH_REQUIRED' | 'SB_ERR_AUTH_FAILED' | 'SB_ERR_AUTH_TIMEOUT' | string, message: string) {
    super(code, message, Status.UNAUTHORIZED);
  }
}

/**
 * The AS that got the request is the standby of a pair. The request did not run. `active` is the
 * active AS's client endpoint when the standby knows it: send the request there.
 */
export class NotActiveError extends SwitchboardError {
  readonly active: { host: string; port: number } | undefined;
  constructor(message = 'this application server is the standby of a pair; send requests to the active one', active?: { host: string; port: number }) {
    super('SB_ERR_NOT_ACTIVE', message, Status.NOT_ACTIVE);
    this.active = active;
  }
}

// ── Set-up errors: raised at start-up, never on the wire. ──

export class ConfigError extends SwitchboardError {
  constructor(message: string, options?: ErrorOptions) {
    super('SB_ERR_CONFIG', message, Status.SERVER_ERROR, options);
  }
}

export class ConnectError extends SwitchboardError {
  constructor(message: string, options?: ErrorOptions) {
    super('SB_ERR_CONNECT', message, Status.UNAVAILABLE, options);
  }
}

const BY_STATUS: Record<number, (message: string, code: string | undefined, body?: { active?: unknown; issues?: unknown }) => SwitchboardError> = {
  [Status.BAD_REQUEST]: (m, c, body) => new BadRequestError(m, c, issuesOf(body?.issues)),
  [Status.SERVICE_NOT_FOUND]: (m, c) => new ServiceNotFoundError(m, c),
  [Status.UNAVAILABLE]: (m, c) => new UnavailableError(m, c),
  [Status.TIMEOUT]: (m, c) => new DeadlineExceededError(m, c),
  [Status.SERVICE_ERROR]: (m, c) => new ServiceFailedError(m, c),
  [Status.SERVER_ERROR]: (m, c) => new ServerError(m, c),
  [Status.CHANNEL_CLOSED]: (m, c) => new ChannelClosedError(m, c),
  [Status.OVERLOADED]: (m, c) => new OverloadedError(m, c),
  [Status.UNAUTHORIZED]: (m, c) => new AuthError(c ?? 'SB_ERR_AUTH_FAILED', m),
  [Status.NOT_ACTIVE]: (m, _c, body) => new NotActiveError(m, endpointOf(body?.active)),
};

function issuesOf(v: unknown): { path: string; message: string }[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v
    .slice(0, 50)
    .filter((i): i is { path: string; message: string } => typeof i?.path === 'string' && typeof i?.message === 'string')
    .map((i) => ({ path: i.path, message: i.message }));
}

function endpointOf(v: unknown): { host: string; port: number } | undefined {
  const e = v as { host?: unknown; port?: unknown } | undefined;
  if (typeof e?.host !== 'string' || e.host.length === 0 || e.host.length > 253) return undefined;
  if (!Number.isInteger(e.port) || (e.port as number) < 1 || (e.port as number) > 65535) return undefined;
  return { host: e.host, port: e.port as number };
}

/** Turns a non-OK response (status plus its error body) back into the matching error class. */
export function errorFromStatus(status: number, body: { code?: unknown; message?: unknown; active?: unknown; issues?: unknown } | undefined): SwitchboardError {
  const message = typeof body?.message === 'string' ? body.message : statusName(status);
  const code = typeof body?.code === 'string' ? body.code : undefined;
  const make = BY_STATUS[status];
  if (!make) return new SwitchboardError('SB_ERR_UNKNOWN_STATUS', `${statusName(status)}: ${message}`, status);
  // Keep a Switchboard code from the wire (SB_ERR_BAD_BODY, SB_ERR_BAD_MAGIC...); a plugin's own
  // code travels only under SERVICE_ERROR, as serviceCode.
  if (status === Status.SERVICE_ERROR) return make(message, code);
  return make(message, code !== undefined && code.startsWith('SB_ERR_') ? code : undefined, body);
}

/** Every stable error code this module can raise; docs/errors.md must list each one. */
export const ERROR_CODES = [
  'SB_ERR_BAD_MAGIC',
  'SB_ERR_BAD_VERSION',
  'SB_ERR_FRAME_TOO_LARGE',
  'SB_ERR_BAD_BODY',
  'SB_ERR_BAD_EXTENSION',
  'SB_ERR_UNKNOWN_EXTENSION',
  'SB_ERR_BAD_REQUEST',
  'SB_ERR_SERVICE_NOT_FOUND',
  'SB_ERR_UNAVAILABLE',
  'SB_ERR_TIMEOUT',
  'SB_ERR_SERVICE',
  'SB_ERR_SERVER',
  'SB_ERR_CHANNEL_CLOSED',
  'SB_ERR_OVERLOADED',
  'SB_ERR_AUTH_REQUIRED',
  'SB_ERR_AUTH_FAILED',
  'SB_ERR_AUTH_TIMEOUT',
  'SB_ERR_TICKET_INVALID',
  'SB_ERR_TICKET_EXPIRED',
  'SB_ERR_TICKET_SCOPE',
  'SB_ERR_IDLE',
  'SB_ERR_NAME_TAKEN',
  'SB_ERR_ENDPOINT_TAKEN',
  'SB_ERR_ENDPOINT_MISMATCH',
  'SB_ERR_REGISTRY_FULL',
  'SB_ERR_LIMIT',
  'SB_ERR_HOST_NOT_ALLOWED',
  'SB_ERR_NOT_ACTIVE',
  'SB_ERR_VALIDATION',
  'SB_ERR_NAME_CLASH',
  'SB_ERR_METHOD',
  'SB_ERR_CONFLICT',
  'SB_ERR_NOT_FOUND',
  'SB_ERR_BAD_JSON',
  'SB_ERR_BAD_HEADER',
  'SB_ERR_MEDIA_TYPE',
  'SB_ERR_STOPPING',
  'SB_ERR_CONFIG',
  'SB_ERR_CONNECT',
  'SB_ERR_UNKNOWN_STATUS',
] as const;
