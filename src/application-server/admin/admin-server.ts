import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { listenOn } from '../../common/listen.js';
import type { Logger } from '../../common/logger.js';
import type { ApplicationServer } from '../application-server.js';
import { createMetrics } from './metrics.js';

/**
 * A small HTTP admin surface on loopback: GET /healthz, GET /functionservers (the FS manager's
 * view as JSON), GET /metrics (Prometheus). Read-only on purpose; registering FSs goes through
 * HELLO or the API.
 */
export class AdminServer {
  readonly #server: Server;
  readonly #as: ApplicationServer;
  readonly #metrics: Registry;

  constructor(as: ApplicationServer, logger: Logger, opts: { processMetrics?: boolean } = {}) {
    this.#as = as;
    this.#metrics = createMetrics(as, opts);
    this.#server = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/metrics') {
        this.#metrics.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': this.#metrics.contentType });
            res.end(text);
          },
          (err: Error) => {
            res.writeHead(500, { 'content-type': 'text/plain' });
            res.end(`metrics failed: ${err.message}`);
          },
        );
        return;
      }
      const send = (code: number, body: unknown): void => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method !== 'GET') return send(405, { error: 'the admin surface is read-only; use GET' });
      switch (req.url) {
        case '/healthz':
          return send(200, { ok: true, functionServers: this.#as.listFunctionServers().length, clients: this.#as.clientConnections });
        case '/functionservers':
          return send(200, this.#as.listFunctionServers());
        default:
          return send(404, { error: `no such admin path ${req.url}; try /healthz, /functionservers or /metrics` });
      }
    });
    this.#server.on('error', (err) => logger.error({ err }, 'admin server error'));
  }

  listen(port: number, host: string): Promise<number> {
    return listenOn(this.#server, port, host);
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((r) => this.#server.close(() => r()));
  }
}
