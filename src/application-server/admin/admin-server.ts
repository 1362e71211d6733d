import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { ConfigError } from '../../protocol/index.js';
import { toSecret, type TlsOptions } from '../../security/index.js';
import type { ApplicationServer } from '../application-server.js';
import { EventStream } from './event-stream.js';
import { createMetrics } from './metrics.js';

export interface AdminServerOptions {
  /** Process metrics (CPU, heap, event loop) beside the AS's own. */
  processMetrics?: boolean;
  /**
   * Bearer token for everything but /healthz, /readyz and the dashboard's static files. Without
   * one, bind the admin port to loopback only (the CLI refuses anything else).
   */
  token?: string | Buffer;
  /** Serve HTTPS with this certificate (the CLI gives the AS's own). */
  tls?: TlsOptions;
  /** Server-Sent Event streams open at once (default 32). */
  maxEventStreams?: number;
  /** Bytes held for one event stream whose reader does not read (default 1 MiB); beyond, that stream is closed. */
  maxEventStreamBytes?: number;
}

/** Paths anyone may read: probes, and the dashboard page (which holds no data: it asks with the token). */
const OPEN_PATHS = new Set(['/healthz', '/readyz', '/', '/dashboard.js', '/dashboard.css']);

/** The routes, for telling a wrong method (405) from a wrong path (404). */
const ROUTES: [RegExp, string[]][] = [
  [/^\/$/, ['GET', 'HEAD']],
  [/^\/dashboard\.(js|css)$/, ['GET', 'HEAD']],
  [/^\/(healthz|readyz|metrics|events|pair)$/, ['GET', 'HEAD']],
  [/^\/functionservers$/, ['GET', 'HEAD', 'POST']],
  [/^\/functionservers\/[^/]+$/, ['GET', 'HEAD', 'DELETE']],
  [/^\/functionservers\/[^/]+\/(dispose|reconnect|drain|undrain)$/, ['POST']],
  [/^\/pair\/designate$/, ['POST']],
];

/** The longest FS id a path may carry: longer than any name (128) or host:port (253 + 6). */
const MAX_ID_LENGTH = 300;

const DASHBOARD_DIR = new URL('./dashboard/', import.meta.url);

const ERROR = { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } as const;
const ID_PARAMS = { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: MAX_ID_LENGTH } }, required: ['id'] } as const;

const ADMIN_HTTP_LIMITS = { headersTimeout: 5000, requestTimeout: 10_000, connectionsCheckingInterval: 1000 };
/** Headers read per request; Node drops the rest. */
const ADMIN_MAX_HEADERS = 50;

/**
 * The AS's admin surface on fastify, with a JSON schema for every route:
 * - read: GET/HEAD /healthz (the process answers), /readyz (it can serve now, else 503 and why),
 *   /functionservers, /functionservers/:id, /metrics (Prometheus), /events (Server-Sent Events),
 *   /pair, and the dashboard at /;
 * - write: POST /functionservers (add by endpoint), DELETE /functionservers/:id, POST
 *   /functionservers/:id/{dispose,reconnect,drain,undrain}, POST /pair/designate.
 * Errors are JSON `{ code, message }` with stable codes; never a 500 for a bad request.
 */
export class AdminServer {
  readonly #app: FastifyInstance;
  readonly #as: ApplicationServer;
  readonly #metrics: Registry;
  readonly #events: EventStream;
  readonly #tokenDigest: Buffer | undefined;
  readonly #logger: Logger;

  constructor(as: ApplicationServer, logger: Logger, opts: AdminServerOptions = {}) {
    this.#as = as;
    this.#logger = logger;
    this.#metrics = createMetrics(as, opts);
    const token = toSecret(opts.token, 'the admin token');
    this.#tokenDigest = token ? digest(token) : undefined;
    this.#events = new EventStream(as, { maxStreams: opts.maxEventStreams ?? 32, maxBufferedBytes: opts.maxEventStreamBytes ?? 1 << 20, totalsMs: 1000, keepAliveMs: 15_000 });
    this.#app = Fastify({
      logger: false,
      bodyLimit: 64 * 1024,
      routerOptions: { maxParamLength: MAX_ID_LENGTH },
      requestTimeout: 10_000,
      // Idle sockets: longer than the request timeout and its check, so a body that stalls gets
      // its 408 from the request timeout rather than a silent close.
      connectionTimeout: 12_000,
      // A misspelt field (`pooltype`) is refused, not silently dropped.
      ajv: { customOptions: { removeAdditional: false } },
      // Errors the router raises before any route runs get the same { code, message } as the rest.
      frameworkErrors: (err, _req, res) => {
        const reply = res as unknown as FastifyReply;
        if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
          return reply.code(404).send({ code: 'SB_ERR_NOT_FOUND', message: `no function server has an id longer than ${MAX_ID_LENGTH} characters; GET /functionservers lists them` });
        }
        return reply.code(400).send({ code: 'SB_ERR_BAD_REQUEST', message: err.message });
      },
      clientErrorHandler: badHttp,
      // Headers within 5 s, the whole request within 10 s, both checked every second (Node checks
      // every 30 s by default, which would let a slow sender hold a connection up to 40 s).
      ...(opts.tls?.cert ? { https: { cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' as const, ...ADMIN_HTTP_LIMITS } } : { http: ADMIN_HTTP_LIMITS }),
    }) as unknown as FastifyInstance;
    this.#app.server.maxHeadersCount = ADMIN_MAX_HEADERS;
    // An action (drain, dispose, ...) takes no body: an empty one sent as JSON is no body, not a bad one.
    const json = this.#app.getDefaultJsonParser('error', 'error');
    this.#app.removeContentTypeParser('application/json');
    this.#app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
      const text = typeof body === 'string' ? body : body.toString('utf8');
      if (text === '') return done(null, undefined);
      json(req, text, done);
    });
    this.#app.addHook('onRequest', async (req, reply) => {
      const path = req.url.split('?')[0];
      if (!OPEN_PATHS.has(path) && !this.#authorized(req)) {
        reply.header('www-authenticate', 'Bearer');
        // Refused before its body was read: close after the answer rather than wait for the body.
        reply.header('connection', 'close');
        return reply.code(401).send({ code: 'SB_ERR_AUTH_REQUIRED', message: 'send the admin token as "Authorization: Bearer <token>"' });
      }
      return undefined;
    });
    this.#app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number; code?: string }, _req, reply) => {
      if (err.validation || err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || (err.statusCode ?? 500) < 500) {
        const status = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 413 : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 415 : 400;
        return reply.code(status).send({ code: 'SB_ERR_BAD_REQUEST', message: namingField(err) });
      }
      this.#logger.error({ err }, 'admin route failed');
      return reply.code(500).send({ code: 'SB_ERR_SERVER', message: 'the admin route failed; see the AS log' });
    });
    this.#app.setNotFoundHandler((req, reply) => {
      const path = req.url.split('?')[0];
      const route = ROUTES.find(([re]) => re.test(path));
      if (route) {
        reply.header('allow', route[1].join(', '));
        return reply.code(405).send({ code: 'SB_ERR_METHOD', message: `${req.method} is not allowed on ${path}; use ${route[1].join(' or ')}` });
      }
      return reply.code(404).send({ code: 'SB_ERR_NOT_FOUND', message: `no such admin path ${path}; see docs/operating.md` });
    });
    this.#routes();
  }

  get requiresToken(): boolean {
    return this.#tokenDigest !== undefined;
  }

  /** Server-Sent Event streams open now. */
  get eventStreams(): number {
    return this.#events.size;
  }

  /** Compiles the routes' schemas now (it takes the event loop for a moment), so that listen() later is quick. */
  async prepare(): Promise<void> {
    await this.#app.ready();
  }

  async listen(port: number, host: string): Promise<number> {
    try {
      await this.#app.listen({ port, host });
    } catch (err) {
      const e = err as Error & { code?: string };
      throw new ConfigError(`cannot listen on ${host}:${port} for the admin surface: ${e.code ?? e.message}`, { cause: err });
    }
    const addr = this.#app.server.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  async close(): Promise<void> {
    this.#events.close();
    this.#app.server.closeAllConnections?.();
    await this.#app.close();
  }

  #routes(): void {
    const app = this.#app;
    const as = this.#as;
    const fsOr404 = (reply: FastifyReply, id: string, ok: boolean): unknown =>
      ok ? reply.send(as.listFunctionServers().find((f) => f.id === id) ?? { id }) : reply.code(404).send({ code: 'SB_ERR_NOT_FOUND', message: `no function server with id ${id}; GET /functionservers lists them` });

    app.get('/healthz', { schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' }, functionServers: { type: 'integer' }, clients: { type: 'integer' } } } } } }, async () => ({
      ok: true,
      functionServers: as.listFunctionServers().length,
      clients: as.clientConnections,
    }));
    app.get('/readyz', { schema: { response: { 200: { type: 'object', properties: { ready: { type: 'boolean' } } }, 503: { type: 'object', properties: { ready: { type: 'boolean' }, reason: { type: 'string' } } } } } }, async (_req, reply) => {
      const reason = as.notReadyReason();
      return reason === undefined ? { ready: true } : reply.code(503).send({ ready: false, reason });
    });
    app.get('/functionservers', async () => as.listFunctionServers());
    app.get<{ Params: { id: string } }>('/functionservers/:id', { schema: { params: ID_PARAMS, response: { 404: ERROR } } }, async (req, reply) => {
      const f = as.listFunctionServers().find((x) => x.id === req.params.id);
      return f ?? reply.code(404).send({ code: 'SB_ERR_NOT_FOUND', message: `no function server with id ${req.params.id}; GET /functionservers lists them` });
    });
    app.get('/metrics', async (_req, reply) => {
      const text = await this.#metrics.metrics();
      return reply.type(this.#metrics.contentType).send(text);
    });
    app.get('/events', (req, reply) => {
      // HEAD has no body, so it cannot be a stream: answer the headers and end (holding no slot).
      if (req.method === 'HEAD') return reply.type('text/event-stream').header('cache-control', 'no-cache').send();
      reply.hijack();
      if (!this.#events.open(reply.raw)) {
        reply.raw.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '5' });
        reply.raw.end(JSON.stringify({ code: 'SB_ERR_OVERLOADED', message: `${this.#events.size} event streams are open, the most this AS serves; close one or retry later` }));
      }
      return undefined;
    });
    app.get('/pair', { schema: { response: { 404: ERROR } } }, async (_req, reply) => {
      const p = as.pairStatus();
      return p ?? reply.code(404).send({ code: 'SB_ERR_NOT_FOUND', message: 'this application server runs alone: it has no pair' });
    });

    app.post<{ Body: { host: string; port: number; name?: string; poolType?: number; standby?: boolean } }>(
      '/functionservers',
      {
        schema: {
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['host', 'port'],
            properties: {
              host: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[\\x21-\\x7e]+$' },
              port: { type: 'integer', minimum: 1, maximum: 65535 },
              name: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' },
              poolType: { type: 'integer', minimum: 0, maximum: 65535 },
              standby: { type: 'boolean' },
            },
          },
          response: { 409: ERROR },
        },
      },
      async (req, reply) => {
        const { host, port } = req.body;
        const holder = as.listFunctionServers().find((f) => f.host === host && f.port === port);
        if (holder) return reply.code(409).send({ code: 'SB_ERR_CONFLICT', message: `${host}:${port} is the endpoint of function server ${holder.id} already; remove it first` });
        try {
          return reply.code(201).send(as.addFunctionServer(req.body));
        } catch (err) {
          if (err instanceof ConfigError) return reply.code(409).send({ code: 'SB_ERR_CONFLICT', message: err.message });
          throw err;
        }
      },
    );
    app.delete<{ Params: { id: string } }>('/functionservers/:id', { schema: { params: ID_PARAMS, response: { 404: ERROR } } }, async (req, reply) => {
      const f = as.listFunctionServers().find((x) => x.id === req.params.id);
      if (!as.removeFunctionServer(req.params.id)) return fsOr404(reply, req.params.id, false);
      // As it was when removed; `inflight` is what still finishes on its connections.
      return reply.send({ ...f, removed: true });
    });
    for (const action of ['dispose', 'reconnect', 'drain', 'undrain'] as const) {
      app.post<{ Params: { id: string } }>(`/functionservers/:id/${action}`, { schema: { params: ID_PARAMS, response: { 404: ERROR } } }, async (req, reply) =>
        fsOr404(reply, req.params.id, as[action](req.params.id)),
      );
    }
    app.post<{ Body: { role: 'active' | 'standby' } }>(
      '/pair/designate',
      {
        schema: {
          body: { type: 'object', additionalProperties: false, required: ['role'], properties: { role: { type: 'string', enum: ['active', 'standby'] } } },
          response: { 409: ERROR },
        },
      },
      async (req, reply) => {
        if (!as.pairStatus()) return reply.code(409).send({ code: 'SB_ERR_CONFLICT', message: 'this application server runs alone (no pair): it is always active' });
        as.designate(req.body.role);
        return as.pairStatus();
      },
    );

    const asset = (file: string, type: string) => {
      let text: string | undefined;
      return async (_req: FastifyRequest, reply: FastifyReply) => {
        text ??= readFileSync(fileURLToPath(new URL(file, DASHBOARD_DIR)), 'utf8');
        return reply.type(type).header('cache-control', 'no-cache').send(text);
      };
    };
    app.get('/', asset('index.html', 'text/html; charset=utf-8'));
    app.get('/dashboard.js', asset('dashboard.js', 'text/javascript; charset=utf-8'));
    app.get('/dashboard.css', asset('dashboard.css', 'text/css; charset=utf-8'));
  }

  #authorized(req: FastifyRequest): boolean {
    if (this.#tokenDigest === undefined) return true;
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
    const m = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? '');
    // Compare digests: equal length whatever was sent, and no early exit.
    return m !== null && timingSafeEqual(digest(Buffer.from(m[1], 'utf8')), this.#tokenDigest);
  }
}

/** A request node's HTTP parser refused (bad framing, headers too large): the same JSON errors, then close. */
function badHttp(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, text, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'the request headers are too large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request did not arrive in time']
        : [400, 'Bad Request', 'the request is not valid HTTP/1.1'];
  const body = JSON.stringify({ code: 'SB_ERR_BAD_REQUEST', message });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

function digest(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest();
}

/** A schema refusal's message, with the field named where the validator left it out (an extra property). */
function namingField(err: Error & { validation?: unknown }): string {
  const first = Array.isArray(err.validation) ? (err.validation[0] as { keyword?: string; params?: { additionalProperty?: string } } | undefined) : undefined;
  const extra = first?.keyword === 'additionalProperties' ? first.params?.additionalProperty : undefined;
  return extra === undefined ? err.message : `${err.message}: "${extra}" is not a field of this route`;
}
