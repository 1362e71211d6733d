import { isUtf8 } from 'node:buffer';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '../../common/logger.js';
import type { RateLimitedLog } from '../../common/rate-limited-log.js';
import { ConfigError, HEADER_SIZE, OFFSET, encodeRequest, type ServiceDescriptor } from '../../protocol/index.js';
import type { TlsOptions } from '../../security/index.js';
import type { Dispatcher } from '../routing/dispatcher.js';
import { answerRaw, badCharset, refuseUnparsable, repeatedHeader } from './http-refusals.js';
import { HttpSession, sendError, type SettleSink } from './http-session.js';
import { MAX_DEPTH } from '../../protocol/msgpack-check.js';

export interface HttpIngressOptions {
  host: string;
  port: number;
  /** HTTP connections at once; Node closes new ones beyond it. */
  maxConnections: number;
  /** Requests in flight on one HTTP connection (pipelined); beyond, 503 OVERLOADED. */
  maxInflightPerClient: number;
  maxInflightBytesPerClient: number;
  /** Largest JSON body, and largest msgpack body it may become. */
  maxBodyBytes: number;
  /** Callers must send `Authorization: Bearer <secret>`; none means the port is open. */
  clientSecret?: Buffer;
  tls?: TlsOptions;
  /** At stop, how long requests in flight may take to be answered before they get 503. */
  drainTimeoutMs: number;
  /** A connection with no request under way is closed after this long, whatever it sends (72000). */
  keepAliveTimeoutMs: number;
  /** Asked on a connection's first request: false when the process is short of file descriptors. */
  hasRoom: () => boolean;
  resolveName: (name: string) => ServiceDescriptor | undefined;
  logger: Logger;
  log: RateLimitedLog;
}

/** Budgets an HTTP caller may ask for in x-sb-timeout-ms: 1 ms to 1 hour. */
const MAX_TIMEOUT_MS = 3_600_000;
/** The call route, with an empty service too: `GET /v1/call/` is a wrong method, not a wrong path. */
const CALL_PATH = /^\/v1\/call\/[^/]*$/;

/** A body that did not parse: the handler answers 400, and the connection stays usable (the body was read). */
class BadJson {
  constructor(readonly message: string) {}
}

type CallRequest = FastifyRequest<{ Params: { service: string } }>;

/**
 * The HTTP ingress: `POST /v1/call/:service` with a JSON body becomes a request frame (msgpack
 * body, the key, pool type and budget in the header) on the same dispatcher as the binary client
 * port; the answer frame comes back as JSON with an HTTP status mapped from its status
 * (docs/http-ingress.md). One HttpSession per connection carries the in-flight limits.
 */
export class HttpIngress implements SettleSink {
  readonly #o: HttpIngressOptions;
  readonly #dispatcher: Dispatcher;
  readonly #app: FastifyInstance;
  readonly #secretDigest: Buffer | undefined;
  readonly #sessions = new Map<Socket, HttpSession>();
  #connections = 0;
  /** Each connection's requests under way, and since when it has had none. */
  readonly #idle = new Map<Socket, { open: number; since: number; closeWhenAnswered?: boolean }>();
  #idleSweep: NodeJS.Timeout | undefined;
  /** Answers owed over every session. */
  #waiting = 0;
  #onIdle: (() => void) | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(opts: HttpIngressOptions, dispatcher: Dispatcher) {
    this.#o = opts;
    this.#dispatcher = dispatcher;
    this.#secretDigest = opts.clientSecret ? digest(opts.clientSecret) : undefined;
    // Answers may take up to the budget (1 h at most), so no socket inactivity timeout; the
    // request itself must arrive in time, headers first.
    // requireHostHeader off: Node would refuse a missing Host with an empty 400; the onRequest hook
    // refuses it with the ingress's JSON error instead.
    const server = { requestTimeout: 60_000, headersTimeout: 10_000, connectionsCheckingInterval: 1000, keepAliveTimeout: opts.keepAliveTimeoutMs, requireHostHeader: false };
    const tls = opts.tls;
    const mutual = tls?.requireClientCert === true && tls.ca !== undefined;
    this.#app = Fastify({
      logger: false,
      bodyLimit: opts.maxBodyBytes,
      routerOptions: { maxParamLength: 300 },
      requestTimeout: server.requestTimeout,
      keepAliveTimeout: server.keepAliveTimeout,
      connectionTimeout: 0,
      forceCloseConnections: false,
      return503OnClosing: false,
      frameworkErrors: (err, _req, reply) => {
        if ((err as Error & { code?: string }).code === 'FST_ERR_MAX_PARAM_LENGTH') {
          sendError(reply, 404, { code: 'SB_ERR_SERVICE_NOT_FOUND', message: 'no service has so long a name; names are at most 128 characters', status: 'SERVICE_NOT_FOUND' });
          return;
        }
        sendError(reply, 400, { code: 'SB_ERR_BAD_REQUEST', message: 'the URL cannot be read; percent-encode the service name correctly', status: 'BAD_REQUEST' });
      },
      // What Node's HTTP parser refuses (bad framing, headers too large, timeouts) gets the same body as the rest.
      clientErrorHandler: (err: Error & { code?: string }, socket: Duplex) => refuseUnparsable(err, socket, (s) => this.#closeWhenAnswered(s as Socket)),
      ...(tls?.cert
        ? { https: { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: mutual, rejectUnauthorized: mutual, minVersion: 'TLSv1.2' as const, ...server } }
        : { http: server }),
    }) as unknown as FastifyInstance;
    this.#app.server.maxConnections = opts.maxConnections;
    // Header lines beyond the first 1000 are dropped, not refused: Node's default, set here so the documented limit is this code's.
    this.#app.server.maxHeadersCount = 1000;
    this.#app.server.on('connection', (socket: Socket) => {
      this.#connections++;
      this.#idle.set(socket, { open: 0, since: Date.now() });
      socket.once('close', () => {
        this.#connections--;
        this.#idle.delete(socket);
      });
    });
    this.#app.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const state = this.#idle.get(req.socket as Socket);
      if (state === undefined) return;
      state.open++;
      res.once('close', () => {
        state.open--;
        state.since = Date.now();
        if (state.open === 0 && state.closeWhenAnswered === true) (req.socket as Socket).destroy();
      });
    });
    this.#app.server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
    // Node answers an Expect it does not know with a bare 417, and a CONNECT with nothing at all.
    this.#app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      answerRaw(res, 417, { code: 'SB_ERR_BAD_HEADER', message: `Expect: ${req.headers.expect} is not supported; send no Expect, or Expect: 100-continue`, status: 'BAD_REQUEST' });
    });
    this.#app.server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      const body = JSON.stringify({ code: 'SB_ERR_METHOD', message: 'CONNECT is not supported: this port is not a proxy; send POST /v1/call/:service', status: 'BAD_REQUEST' });
      socket.end(`HTTP/1.1 405 Method Not Allowed\r\nallow: POST\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      setTimeout(() => socket.destroy(), 1000).unref();
    });
    // Node would send 100 Continue at once; the preParsing hook sends it once the request passed
    // every check made before the body is read, so a refused caller never sends its body.
    const expecting = new WeakSet<IncomingMessage>();
    this.#app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      expecting.add(req);
      this.#app.server.emit('request', req, res);
    });

    // Only JSON; the parser never fails, so a bad body does not cost the caller its connection.
    this.#app.removeAllContentTypeParsers();
    const parseJson = this.#app.getDefaultJsonParser('error', 'error');
    this.#app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
      const bytes = body as Buffer;
      if (bytes.length === 0) return done(null, undefined);
      // Read as a string, bad bytes would become U+FFFD and reach the handler as if sent.
      if (!isUtf8(bytes)) return done(null, new BadJson('it is not valid UTF-8; send JSON text encoded as UTF-8'));
      const text = bytes.toString('utf8');
      // Before JSON.parse, which recurses: a bracket bomb would hold the event loop for a second.
      if (nestedTooDeep(text)) return done(null, new BadJson(`it nests arrays and objects more than ${MAX_DEPTH} deep`));
      parseJson(req, text, (err, value) => done(null, err ? new BadJson(jsonError(text)) : value));
    });
    this.#app.addHook('onRequest', (req, reply, done) => {
      const raw = req.raw;
      // Node also takes HTTP/0.9-style lines (no version) and other major versions as if 1.1.
      if (raw.httpVersionMajor !== 1 || raw.httpVersionMinor > 1) {
        sendError(reply, 400, { code: 'SB_ERR_BAD_REQUEST', message: `this port speaks HTTP/1.1 (and 1.0), not HTTP/${raw.httpVersion}; send HTTP/1.1`, status: 'BAD_REQUEST' }, true);
        return;
      }
      const twice = repeatedHeader(raw.rawHeaders);
      if (twice !== undefined) {
        // Node keeps one of two Host or Content-Type headers; a proxy in front may have read the other.
        sendError(reply, 400, { code: 'SB_ERR_BAD_REQUEST', message: `the ${twice} header is sent more than once; send it once`, status: 'BAD_REQUEST' }, true);
        return;
      }
      const coding = req.headers['content-encoding'];
      if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') {
        sendError(reply, 415, { code: 'SB_ERR_MEDIA_TYPE', message: `this port takes bodies without a content coding (got Content-Encoding: ${coding}); send the JSON as is`, status: 'BAD_REQUEST' }, true);
        return;
      }
      if (raw.httpVersionMajor === 1 && raw.httpVersionMinor === 1 && req.headers.host === undefined) {
        sendError(reply, 400, { code: 'SB_ERR_BAD_REQUEST', message: 'an HTTP/1.1 request must carry a Host header (RFC 9112, section 3.2); add one', status: 'BAD_REQUEST' }, true);
        return;
      }
      if (this.#closing) {
        sendError(reply, 503, { code: 'SB_ERR_STOPPING', message: 'the application server is stopping; send the request to another one', status: 'UNAVAILABLE' }, true);
        return;
      }
      if (this.#secretDigest !== undefined) {
        const why = this.#unauthorized(req.headers.authorization);
        if (why !== undefined) {
          // Closed: the body was not read, and is not worth reading.
          sendError(reply, 401, { code: why, message: 'send the client secret as "Authorization: Bearer <secret>"', status: 'UNAUTHORIZED' }, true);
          return;
        }
      }
      done();
    });
    // Checks that need only the headers, made before the body is read.
    this.#app.addHook('preParsing', (req, reply, payload, done) => {
      const type = req.headers['content-type'];
      const charset = type === undefined || req.is404 ? undefined : badCharset(type);
      if (charset !== undefined) {
        sendError(reply, 415, { code: 'SB_ERR_MEDIA_TYPE', message: `the body must be UTF-8 JSON; send "Content-Type: application/json" with no charset or charset=utf-8 (got charset ${charset})`, status: 'BAD_REQUEST' });
        return;
      }
      if (expecting.has(req.raw)) {
        // The body would be refused for its type: say so before inviting it (the parser would 415 after it).
        if (!req.is404 && type?.split(';')[0].trim().toLowerCase() !== 'application/json') {
          sendError(reply, 415, { code: 'SB_ERR_MEDIA_TYPE', message: `send the body as JSON with "Content-Type: application/json" (got ${type ?? 'none'})`, status: 'BAD_REQUEST' }, true);
          return;
        }
        if (Number(req.headers['content-length']) > opts.maxBodyBytes) {
          this.#tooLarge(reply);
          return;
        }
        reply.raw.writeContinue();
      }
      done(null, payload);
    });
    this.#app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        this.#tooLarge(reply);
      } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
        sendError(reply, 415, { code: 'SB_ERR_MEDIA_TYPE', message: `send the body as JSON with "Content-Type: application/json" (got ${req.headers['content-type'] ?? 'none'})`, status: 'BAD_REQUEST' });
      } else if ((err.statusCode ?? 500) < 500) {
        sendError(reply, err.statusCode as number, { code: 'SB_ERR_BAD_REQUEST', message: err.message, status: 'BAD_REQUEST' });
      } else {
        this.#o.log.error('http-failed', { err: err.message }, 'HTTP ingress request failed');
        sendError(reply, 500, { code: 'SB_ERR_SERVER', message: 'the HTTP ingress failed on this request; see the AS log', status: 'SERVER_ERROR' });
      }
    });
    this.#app.setNotFoundHandler((req, reply) => {
      const path = req.url.split('?')[0];
      if (CALL_PATH.test(path)) {
        reply.header('allow', 'POST');
        sendError(reply, 405, { code: 'SB_ERR_METHOD', message: `${req.method} is not allowed on ${path}; use POST`, status: 'BAD_REQUEST' });
        return;
      }
      sendError(reply, 404, { code: 'SB_ERR_NOT_FOUND', message: `no such path ${path}; the HTTP ingress serves POST /v1/call/:service (a service key or name)`, status: 'BAD_REQUEST' });
    });
    this.#app.post('/v1/call/:service', (req, reply) => this.#call(req as CallRequest, reply));
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Open HTTP connections (TLS handshakes included). */
  get connectionCount(): number {
    return this.#connections;
  }

  /** Answers owed to HTTP callers now. */
  get waiting(): number {
    return this.#waiting;
  }

  settled(n: number): void {
    this.#waiting -= n;
    if (this.#waiting === 0 && this.#onIdle) this.#onIdle();
  }

  async listen(): Promise<number> {
    const { port, host } = this.#o;
    try {
      await this.#app.listen({ port, host });
    } catch (err) {
      const e = err as Error & { code?: string };
      const hint = e.code === 'EADDRINUSE' ? 'another process holds that port: stop it or pick another port (0 picks a free one)' : 'check the address';
      throw new ConfigError(`cannot listen on ${host}:${port} for the HTTP ingress: ${e.code ?? e.message}; ${hint}`, { cause: err });
    }
    // Node's keep-alive timer restarts on any byte, so a peer sending an empty line every few seconds
    // between requests would hold its connection for ever: this one counts only requests.
    this.#idleSweep = setInterval(() => this.#closeIdle(Date.now()), 1000);
    this.#idleSweep.unref();
    const addr = this.#app.server.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  /**
   * Stops taking requests (new ones get 503 SB_ERR_STOPPING), waits up to drainTimeoutMs for the
   * answers owed, answers the rest 503 SB_ERR_STOPPING, then closes every connection.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  /** Bytes after a whole request did not parse: read no more, write what is owed, then close. */
  #closeWhenAnswered(socket: Socket): void {
    const state = this.#idle.get(socket);
    if (state === undefined || state.open === 0) {
      socket.destroy();
      return;
    }
    state.closeWhenAnswered = true;
    socket.pause();
  }

  #closeIdle(now: number): void {
    const limit = this.#o.keepAliveTimeoutMs;
    for (const [socket, state] of this.#idle) if (state.open === 0 && now - state.since > limit) socket.destroy();
  }

  async #close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#idleSweep);
    const server = this.#app.server;
    // Stop accepting; Node also closes the keep-alive connections that are idle now.
    if (server.listening) server.close();
    if (this.#waiting > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#onIdle = resolve;
        timer = setTimeout(resolve, this.#o.drainTimeoutMs);
      });
      clearTimeout(timer);
      this.#onIdle = undefined;
    }
    const written: Promise<void>[] = [];
    const stopping = { code: 'SB_ERR_STOPPING', message: 'the application server stopped before the answer came; the request may or may not have run', status: 'UNAVAILABLE' };
    for (const s of this.#sessions.values()) written.push(...s.answerAll(503, stopping));
    if (written.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(written), new Promise((r) => (timer = setTimeout(r, 1000)))]);
      clearTimeout(timer);
    }
    server.closeAllConnections();
    await this.#app.close();
  }

  #call(req: CallRequest, reply: FastifyReply): void {
    if (this.#closing) {
      // Its body was still arriving when stop() began.
      sendError(reply, 503, { code: 'SB_ERR_STOPPING', message: 'the application server is stopping; send the request to another one', status: 'UNAVAILABLE' }, true);
      return;
    }
    const service = req.params.service;
    let key: number;
    if (/^\d+$/.test(service)) {
      // Leading zeros do not change a key's value (the length limit only keeps Number exact).
      const digits = service.replace(/^0+(?=\d)/, '');
      key = digits.length <= 10 ? Number(digits) : Number.NaN;
      if (!(key <= 0xffffffff)) {
        sendError(reply, 400, { code: 'SB_ERR_BAD_REQUEST', message: `service key ${service} is outside 0-4294967295; give a key in that range or a service name`, status: 'BAD_REQUEST' });
        return;
      }
    } else if (service === '') {
      sendError(reply, 404, { code: 'SB_ERR_SERVICE_NOT_FOUND', message: 'the URL names no service; give a service key or name after /v1/call/', status: 'SERVICE_NOT_FOUND' });
      return;
    } else {
      const d = this.#o.resolveName(service);
      if (d === undefined) {
        sendError(reply, 404, { code: 'SB_ERR_SERVICE_NOT_FOUND', message: `no registered function server serves a service named ${service}; check the name, or call it by its key`, status: 'SERVICE_NOT_FOUND' });
        return;
      }
      key = d.key;
    }
    const h = req.headers;
    const poolType = intHeader(h['x-sb-pool-type'], 0, 65535, 0);
    if (poolType < 0) return this.#badHeader(reply, 'x-sb-pool-type', 'a pool type from 0 to 65535 (0 means any)');
    const budgetMs = intHeader(h['x-sb-timeout-ms'], 1, MAX_TIMEOUT_MS, 0);
    if (budgetMs < 0) return this.#badHeader(reply, 'x-sb-timeout-ms', `milliseconds from 1 to ${MAX_TIMEOUT_MS}`);
    const ow = h['x-sb-one-way'];
    if (ow !== undefined && ow !== 'true' && ow !== 'false') return this.#badHeader(reply, 'x-sb-one-way', 'true or false');
    const oneWay = ow === 'true';
    const body = req.body;
    if (body instanceof BadJson) {
      sendError(reply, 400, { code: 'SB_ERR_BAD_JSON', message: `the body is not valid JSON: ${body.message}`, status: 'BAD_REQUEST' });
      return;
    }
    const session = this.#sessionOf(req.raw.socket);
    if (session.refused) {
      sendError(reply, 503, { code: 'SB_ERR_OVERLOADED', message: 'the application server is short of file descriptors; retry later or use another application server', status: 'OVERLOADED' }, true);
      return;
    }
    let frame: Buffer;
    try {
      frame = encodeRequest(0, key, body, { poolType, budgetMs, twoWay: !oneWay });
    } catch (err) {
      // Depth is checked before parsing; what is left is an object too wide for a msgpack map 16.
      const wide = /too large to serialize/i.test((err as Error).message);
      const why = wide ? 'an object has more than 65535 keys, more than a body may hold in one map' : (err as Error).message;
      sendError(reply, 400, { code: 'SB_ERR_BAD_JSON', message: `the body cannot be encoded as msgpack: ${why}`, status: 'BAD_REQUEST' });
      return;
    }
    if (frame.length - HEADER_SIZE > this.#o.maxBodyBytes) {
      sendError(reply, 413, { code: 'SB_ERR_FRAME_TOO_LARGE', message: `the body is ${frame.length - HEADER_SIZE} bytes as msgpack, over the AS's maxBodyBytes (${this.#o.maxBodyBytes}); send a smaller one`, status: 'BAD_REQUEST' });
      return;
    }
    if (oneWay) {
      // A standby drops one-way requests without a word; an HTTP caller is owed the truth.
      const notActive = this.#dispatcher.notActive;
      if (notActive !== null) {
        const active = notActive();
        sendError(reply, 421, { code: 'SB_ERR_NOT_ACTIVE', message: 'this application server is not the active of its pair; send the request to the active one', status: 'NOT_ACTIVE', ...(active ? { active } : {}) });
        return;
      }
      this.#dispatcher.dispatch(session, frame, 0, frame.length);
      reply.code(202).send();
      return;
    }
    frame.writeUInt32BE(session.track(reply), OFFSET.requestId);
    this.#waiting++;
    this.#dispatcher.dispatch(session, frame, 0, frame.length);
  }

  /** 413 and close: the body was not read (or not all of it), and is not worth reading. */
  #tooLarge(reply: FastifyReply): void {
    sendError(reply, 413, { code: 'SB_ERR_FRAME_TOO_LARGE', message: `the body is over ${this.#o.maxBodyBytes} bytes, the AS's maxBodyBytes; send a smaller one or raise maxBodyBytes`, status: 'BAD_REQUEST' }, true);
  }

  #badHeader(reply: FastifyReply, name: string, want: string): void {
    sendError(reply, 400, { code: 'SB_ERR_BAD_HEADER', message: `${name} must be ${want}, sent once`, status: 'BAD_REQUEST' });
  }

  #sessionOf(socket: Socket): HttpSession {
    let s = this.#sessions.get(socket);
    if (s === undefined) {
      const created = new HttpSession(socket, this.#o.maxInflightPerClient, this.#o.maxInflightBytesPerClient, this);
      // Checked once per connection, as the binary port does at accept.
      created.refused = !this.#o.hasRoom();
      this.#sessions.set(socket, created);
      socket.once('close', () => {
        this.#sessions.delete(socket);
        created.close();
      });
      s = created;
    }
    return s;
  }

  #unauthorized(header: string | undefined): 'SB_ERR_AUTH_REQUIRED' | 'SB_ERR_AUTH_FAILED' | undefined {
    // The scheme is case-insensitive (RFC 9110); the secret is every byte after one space.
    const m = /^bearer (.+)$/i.exec(header ?? '');
    if (m === null) return 'SB_ERR_AUTH_REQUIRED';
    // Digests compare in constant time whatever the length sent.
    return timingSafeEqual(digest(Buffer.from(m[1], 'utf8')), this.#secretDigest as Buffer) ? undefined : 'SB_ERR_AUTH_FAILED';
  }
}

/** An integer header within [min, max]; `dflt` when absent; -1 when malformed or repeated. */
function intHeader(v: string | string[] | undefined, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !/^\d{1,7}$/.test(v)) return -1;
  const n = Number(v);
  return n >= min && n <= max ? n : -1;
}

/**
 * Whether `text` opens more than MAX_DEPTH arrays and objects inside one another (brackets inside
 * strings do not count). It stops at the first level too deep, so a bomb costs MAX_DEPTH steps.
 */
export function nestedTooDeep(text: string): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_DEPTH) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** JSON.parse's own words for what is wrong (where), or the poisoning rule that refused it. */
function jsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (err) {
    return (err as Error).message;
  }
  return 'it has a "__proto__" or "constructor.prototype" key, which is refused';
}

function digest(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest();
}
