import { createServer, type Server, type Socket } from 'node:net';
import { listenOn } from '../../common/listen.js';
import type { Logger } from '../../common/logger.js';
import { FrameConnection, Status, encodeErrorResponse } from '../../protocol/index.js';
import { ClientSession } from './client-session.js';
import type { Dispatcher } from '../routing/dispatcher.js';

export interface ClientIngressOptions {
  host: string;
  port: number;
  heartbeatMs: number;
  /** A frame begun and not finished within this closes the connection. */
  readTimeoutMs: number;
  maxConnections: number;
  maxInflightPerClient: number;
  maxBodyBytes: number;
  logger: Logger;
}

/** The client port: one ClientSession per connection, every request handed to the dispatcher. */
export class ClientIngress {
  readonly #o: ClientIngressOptions;
  readonly #dispatcher: Dispatcher;
  readonly #server: Server;
  readonly #sessions = new Set<ClientSession>();
  refused = 0;

  constructor(opts: ClientIngressOptions, dispatcher: Dispatcher) {
    this.#o = opts;
    this.#dispatcher = dispatcher;
    this.#server = createServer((s) => this.#accept(s));
  }

  get connectionCount(): number {
    return this.#sessions.size;
  }

  listen(): Promise<number> {
    return listenOn(this.#server, this.#o.port, this.#o.host);
  }

  close(): void {
    this.#server.close();
    for (const s of this.#sessions) s.conn.close('local');
    this.#sessions.clear();
  }

  #accept(socket: Socket): void {
    if (this.#sessions.size >= this.#o.maxConnections) {
      this.refused++;
      this.#o.logger.warn({ remote: socket.remoteAddress, max: this.#o.maxConnections }, 'client connection refused: at maxConnections');
      socket.on('error', () => undefined);
      socket.end(encodeErrorResponse(0, Status.OVERLOADED, 'SB_ERR_OVERLOADED', `the application server holds ${this.#o.maxConnections} client connections, the most allowed; retry later`));
      return;
    }
    const dispatcher = this.#dispatcher;
    let session: ClientSession | undefined = undefined;
    const conn = new FrameConnection(socket, {
      heartbeatMs: this.#o.heartbeatMs,
      readTimeoutMs: this.#o.readTimeoutMs,
      maxBodyBytes: this.#o.maxBodyBytes,
      onFrameAt: (buf, off, len) => dispatcher.dispatch(session as ClientSession, buf, off, len),
      onDrain: () => session?.resume(session),
      onClose: (reason, err, c) => {
        if (session) this.#sessions.delete(session);
        const level = reason === 'protocol' || reason === 'read-timeout' ? 'warn' : 'debug';
        this.#o.logger[level]({ remote: c.remote, reason, err: err?.message }, 'client connection closed');
      },
    });
    session = new ClientSession(conn, this.#o.maxInflightPerClient);
    this.#sessions.add(session);
  }
}
