import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Registry } from 'prom-client';
import { listenOn } from '../../common/listen.js';
import type { Logger } from '../../common/logger.js';
import { toSecret, type TlsOptions } from '../../security/index.js';
import type { ApplicationServer } from '../application-server.js';
import { createMetrics } from './metrics.js';

export interface AdminServerOptions {
  /** Process metrics (CPU, heap, event loop) beside the AS's own. */
  processMetrics?: boolean;
  /**
   * Bearer token for everything but /healthz and /readyz. Without one, bind the admin port to
   * loopback only (the CLI refuses anything else).
   */
  token?: string | Buffer;
  /** Serve HTTPS with this certificate (the CLI gives the AS's own). */
  tls?: TlsOptions;
}

/** Paths a load balancer or an orchestrator probes without credentials. */
const OPEN_PATHS = new Set(['/healthz', '/readyz']);

/**
 * The AS's HTTP admin surface: GET (and HEAD) /healthz (the process answers), /readyz (it can
 * serve now), /functionservers (the FS manager's view as JSON), /metrics (Prometheus).
 */
export class AdminServer {
  readonly #server: Server;
  readonly #as: ApplicationServer;
  readonly #metrics: Registry;
  readonly #tokenDigest: Buffer | undefined;

  constructor(as: ApplicationServer, logger: Logger, opts: AdminServerOptions = {}) {
    this.#as = as;
    this.#metrics = createMetrics(as, opts);
    const token = toSecret(opts.token, 'the admin token');
    this.#tokenDigest = token ? digest(token) : undefined;
    const route = (req: IncomingMessage, res: ServerResponse): void => this.#route(req, res);
    this.#server = opts.tls?.cert ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, route) : createServer(route);
    this.#server.headersTimeout = 5000;
    this.#server.requestTimeout = 10_000;
    this.#server.maxHeadersCount = 50;
    this.#server.on('error', (err) => logger.error({ err }, 'admin server error'));
  }

  get requiresToken(): boolean {
    return this.#tokenDigest !== undefined;
  }

  listen(port: number, host: string): Promise<number> {
    return listenOn(this.#server, port, host);
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((r) => this.#server.close(() => r()));
  }

  #route(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const head = req.method === 'HEAD';
    const send = (code: number, body: unknown, headers: Record<string, string> = {}): void => {
      const text = JSON.stringify(body);
      res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
      res.end(head ? undefined : text);
    };
    const write = req.method === 'POST' && path === '/pair/designate';
    if (req.method !== 'GET' && !head && !write) {
      return send(405, { code: 'SB_ERR_METHOD', message: 'use GET or HEAD (POST only on /pair/designate)' }, { allow: path === '/pair/designate' ? 'POST' : 'GET, HEAD' });
    }
    if (!OPEN_PATHS.has(path) && !this.#authorized(req)) {
      return send(401, { code: 'SB_ERR_AUTH_REQUIRED', message: 'send the admin token as "Authorization: Bearer <token>"' }, { 'www-authenticate': 'Bearer' });
    }
    if (write) {
      this.#designate(req, send);
      return;
    }
    switch (path) {
      case '/healthz':
        return send(200, { ok: true, functionServers: this.#as.listFunctionServers().length, clients: this.#as.clientConnections });
      case '/readyz': {
        const reason = this.#as.notReadyReason();
        return reason === undefined ? send(200, { ready: true }) : send(503, { ready: false, reason });
      }
      case '/functionservers':
        return send(200, this.#as.listFunctionServers());
      case '/pair': {
        const p = this.#as.pairStatus();
        return p ? send(200, p) : send(404, { code: 'SB_ERR_NOT_FOUND', message: 'this application server runs alone: it has no pair' });
      }
      case '/metrics':
        this.#metrics.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': this.#metrics.contentType });
            res.end(head ? undefined : text);
          },
          (err: Error) => send(500, { code: 'SB_ERR_SERVER', message: `metrics failed: ${err.message}` }),
        );
        return;
      default:
        return send(404, { code: 'SB_ERR_NOT_FOUND', message: `no such admin path ${path}; try /healthz, /readyz, /functionservers or /metrics` });
    }
  }

  /** POST /pair/designate { "role": "active" | "standby" }: this AS takes the role, its sibling the other. */
  #designate(req: IncomingMessage, send: (code: number, body: unknown) => void): void {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      text += d;
      if (text.length > 1024) req.destroy();
    });
    req.on('end', () => {
      let role: unknown;
      try {
        role = (JSON.parse(text) as { role?: unknown }).role;
      } catch {
        role = undefined;
      }
      if (role !== 'active' && role !== 'standby') return send(400, { code: 'SB_ERR_BAD_REQUEST', message: 'send a JSON body {"role": "active"} or {"role": "standby"}' });
      if (!this.#as.pairStatus()) return send(409, { code: 'SB_ERR_CONFIG', message: 'this application server runs alone (no pair): it is always active' });
      this.#as.designate(role);
      return send(200, this.#as.pairStatus());
    });
  }

  #authorized(req: IncomingMessage): boolean {
    if (this.#tokenDigest === undefined) return true;
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    // Compare digests: equal length whatever was sent, and no early exit.
    return m !== null && timingSafeEqual(digest(Buffer.from(m[1], 'utf8')), this.#tokenDigest);
  }
}

function digest(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest();
}
