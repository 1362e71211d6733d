import type { Socket } from 'node:net';
import type { FastifyReply } from 'fastify';
import { HEADER_SIZE, OFFSET, Status, decodeBodyAt, isKnownStatus, statusName, type StatusName, type SwitchboardError } from '../../protocol/index.js';
import type { IngressSession } from '../routing/dispatcher.js';
import { BudgetedSession } from './budgeted-session.js';

/**
 * The HTTP status for each Switchboard status. Typed by StatusName so that a status added to the
 * protocol does not compile until it has an HTTP status here (and in docs/http-ingress.md).
 */
export const HTTP_STATUSES: Readonly<Record<StatusName, number>> = {
  OK: 200,
  BAD_REQUEST: 400,
  SERVICE_NOT_FOUND: 404,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
  SERVICE_ERROR: 422,
  SERVER_ERROR: 500,
  CHANNEL_CLOSED: 502,
  OVERLOADED: 503,
  UNAUTHORIZED: 401,
  NOT_ACTIVE: 421,
};

/** The code an error answer gets when its frame carried none. */
const DEFAULT_CODES: Readonly<Record<StatusName, string>> = {
  OK: 'SB_ERR_SERVER',
  BAD_REQUEST: 'SB_ERR_BAD_REQUEST',
  SERVICE_NOT_FOUND: 'SB_ERR_SERVICE_NOT_FOUND',
  UNAVAILABLE: 'SB_ERR_UNAVAILABLE',
  TIMEOUT: 'SB_ERR_TIMEOUT',
  SERVICE_ERROR: 'SB_ERR_SERVICE',
  SERVER_ERROR: 'SB_ERR_SERVER',
  CHANNEL_CLOSED: 'SB_ERR_CHANNEL_CLOSED',
  OVERLOADED: 'SB_ERR_OVERLOADED',
  UNAUTHORIZED: 'SB_ERR_AUTH_FAILED',
  NOT_ACTIVE: 'SB_ERR_NOT_ACTIVE',
};

const BY_CODE = new Uint16Array(256);
for (const [name, http] of Object.entries(HTTP_STATUSES)) BY_CODE[Status[name as StatusName]] = http;

/** The HTTP status for a Switchboard status code; 502 for one this version does not know. */
export function httpStatusFor(status: number): number {
  return BY_CODE[status] || 502;
}

export const JSON_TYPE = 'application/json; charset=utf-8';

/** An error answer: `{ code, message, status }` plus what the frame carried (issues, active, errorId). */
export function sendError(reply: FastifyReply, http: number, body: Record<string, unknown>, close = false): void {
  // Back off and come again: what a 503 asks of a well-behaved caller.
  if (http === 503) reply.header('retry-after', '1');
  if (http === 401) reply.header('www-authenticate', 'Bearer');
  if (close) reply.header('connection', 'close');
  reply.code(http).header('content-type', JSON_TYPE).send(JSON.stringify(body));
}

/** How the ingress learns that answers were settled (for draining at stop). */
export interface SettleSink {
  readonly closing: boolean;
  settled(n: number): void;
}

/**
 * One HTTP connection as the dispatcher sees it: in-flight limits as on the binary client port, and
 * the HTTP replies waiting for their frames, by the request id the session gave each one.
 */
export class HttpSession extends BudgetedSession implements IngressSession {
  lastRequestAt = 0;
  /** Set on the first request when the AS had no room for this connection: every request gets 503. */
  refused = false;
  readonly #socket: Socket;
  readonly #sink: SettleSink;
  readonly #waiting = new Map<number, FastifyReply>();
  #nextId = 0;
  #closed = false;

  constructor(socket: Socket, maxInflight: number, maxInflightBytes: number, sink: SettleSink) {
    super(maxInflight, maxInflightBytes);
    this.#socket = socket;
    this.#sink = sink;
  }

  /** Node's HTTP server stops parsing a connection whose answers back up by itself. */
  get blocked(): boolean {
    return false;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Answers this session still owes. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** A request id (never 0) whose answer goes to `reply`. */
  track(reply: FastifyReply): number {
    const id = this.#nextId === 0xffffffff ? 1 : this.#nextId + 1;
    this.#nextId = id;
    this.#waiting.set(id, reply);
    return id;
  }

  reply(frame: Buffer): void {
    this.#answer(frame, 0, frame.length);
  }

  replyFrom(buf: Buffer, off: number, len: number): void {
    this.#answer(buf, off, len);
  }

  protected stopReading(): void {
    this.#socket.pause();
  }

  protected startReading(): void {
    // Leave a connection whose answers back up to Node's own pause: it resumes it on drain.
    if (!this.#socket.writableNeedDrain) this.#socket.resume();
  }

  /** Never needed for HTTP (ids start at 1, every frame is a request): end the connection. */
  refuse(_err: SwitchboardError): void {
    this.#socket.destroy();
  }

  /** Answers every waiting request with the same error (at stop); resolves once those answers are written. */
  answerAll(http: number, body: Record<string, unknown>): Promise<void>[] {
    const written: Promise<void>[] = [];
    for (const reply of this.#waiting.values()) {
      sendError(reply, http, body, true);
      const raw = reply.raw;
      if (!raw.writableFinished) written.push(new Promise<void>((r) => raw.once('finish', r).once('close', r)));
    }
    this.#sink.settled(this.#waiting.size);
    this.#waiting.clear();
    return written;
  }

  /** The socket closed: nobody is left to answer. */
  close(): void {
    this.#closed = true;
    this.#sink.settled(this.#waiting.size);
    this.#waiting.clear();
  }

  #answer(buf: Buffer, off: number, len: number): void {
    const id = buf.readUInt32BE(off + OFFSET.requestId);
    const reply = this.#waiting.get(id);
    if (reply === undefined) return; // answered already (at stop), or its connection is gone
    this.#waiting.delete(id);
    this.#sink.settled(1);
    if (this.#sink.closing) reply.header('connection', 'close');
    const status = buf[off + OFFSET.status];
    let body: unknown;
    try {
      body = decodeBodyAt(buf, off, len);
    } catch {
      if (!isKnownStatus(status)) return sendError(reply, 502, unknownStatusBody(status, undefined));
      sendError(reply, 502, {
        code: 'SB_ERR_BAD_BODY',
        message: 'the function server answered with a body that is not standard msgpack; see its log',
        status: statusName(Status.SERVER_ERROR),
      });
      return;
    }
    if (status === Status.OK) {
      reply.code(200).header('content-type', JSON_TYPE).send(toJson(body, buf, off + HEADER_SIZE, off + len));
      return;
    }
    sendError(reply, httpStatusFor(status), errorBody(status, body));
  }
}

/** The frame's error body for HTTP: its code and message, the status's name, and the details it carried. */
export function errorBody(status: number, body: unknown): Record<string, unknown> {
  if (!isKnownStatus(status)) return unknownStatusBody(status, body);
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const name = statusName(status);
  const out: Record<string, unknown> = {
    code: typeof b.code === 'string' ? b.code : DEFAULT_CODES[name as StatusName],
    message: typeof b.message === 'string' ? b.message : name,
    status: name,
  };
  if (Array.isArray(b.issues)) out.issues = b.issues;
  if (typeof b.active === 'object' && b.active !== null) out.active = b.active;
  if (typeof b.errorId === 'string') out.errorId = b.errorId;
  else if (status === Status.SERVICE_ERROR && typeof b.message === 'string') {
    // A plain throw's answer names its error id only in the message; lift it out for log searches.
    const m = /error id ([0-9a-f]{6,32})/.exec(b.message);
    if (m) out.errorId = m[1];
  }
  return out;
}

/**
 * A status this version does not know: SB_ERR_UNKNOWN_STATUS whatever the FS's code, as the SDK
 * raises; `status` stays a documented name (SERVER_ERROR, as for a bad answer body), and the
 * number and the FS's own words go in the message.
 */
function unknownStatusBody(status: number, body: unknown): Record<string, unknown> {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const said = [b.code, b.message].filter((x) => typeof x === 'string').join(': ');
  return {
    code: 'SB_ERR_UNKNOWN_STATUS',
    message: `the function server answered with status ${status}, which this application server does not know; upgrade the AS${said ? ` (the answer said "${said}")` : ''}`,
    status: statusName(Status.SERVER_ERROR),
  };
}

// msgpack bin 8/16/32, uint 64 and int 64: the types JSON.stringify cannot write as they should.
const SPECIAL = [0xc4, 0xc5, 0xc6, 0xcf, 0xd3];

/**
 * JSON for a decoded answer. Byte buffers become base64 strings and integers beyond 2^53 decimal
 * strings. The replacer costs, so it runs only when the msgpack bytes may hold such a value (a
 * byte scan: a false alarm only costs the slower path).
 */
function toJson(value: unknown, buf: Buffer, start: number, end: number): string {
  if (value === undefined) return 'null';
  const bytes = buf.subarray(start, end);
  for (const b of SPECIAL) if (bytes.indexOf(b) >= 0) return JSON.stringify(value, jsonSafe) ?? 'null';
  return JSON.stringify(value) ?? 'null';
}

function jsonSafe(this: unknown, key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'object' && v !== null) {
    const raw = (this as Record<string, unknown>)[key];
    if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
  }
  return v;
}
