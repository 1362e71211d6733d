import type { ServerResponse } from 'node:http';
import type { ApplicationServer } from '../application-server.js';
import type { FunctionServerInfo } from '../registry/function-server-entry.js';

export interface EventStreamOptions {
  /** Streams open at once; beyond, a new one is refused (503). */
  maxStreams: number;
  /** Bytes a stream may hold for a reader that does not read; beyond, it is closed. */
  maxBufferedBytes: number;
  /** How often the totals (requests per second, connections) are sent. */
  totalsMs: number;
  /** A comment line this often keeps proxies from closing an idle stream. */
  keepAliveMs: number;
}

/**
 * GET /events: the AS's changes as Server-Sent Events, for the dashboard and `switchboard top`.
 * Events: `hello` (the whole picture at once), `joined`, `left`, `state`, `changed`, `load`,
 * `connections` (an FS's pool connections), `role` and `sibling` (the pair), `totals` (every
 * second: requests per second, client connections). Each `data:` line is one JSON object.
 */
export class EventStream {
  readonly #as: ApplicationServer;
  readonly #o: EventStreamOptions;
  readonly #streams = new Set<ServerResponse>();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #unsubscribe: (() => void)[] = [];
  #lastRelayed = 0;
  #lastAt = Date.now();

  constructor(as: ApplicationServer, opts: EventStreamOptions) {
    this.#as = as;
    this.#o = opts;
    const on = <A extends unknown[]>(event: string, map: (...a: A) => [string, unknown]): void => {
      const fn = (...a: A): void => {
        if (this.#streams.size > 0) this.#broadcast(...map(...a));
      };
      (as as unknown as NodeJS.EventEmitter).on(event, fn);
      this.#unsubscribe.push(() => (as as unknown as NodeJS.EventEmitter).off(event, fn));
    };
    on('fs-joined', (i: FunctionServerInfo) => ['joined', i]);
    on('fs-left', (i: FunctionServerInfo, why: string) => ['left', { ...i, why }]);
    on('fs-state', (i: FunctionServerInfo, from: string) => ['state', { ...i, from }]);
    on('fs-changed', (i: FunctionServerInfo) => ['changed', i]);
    on('fs-load', (i: FunctionServerInfo) => ['load', { id: i.id, load: i.load, loadScore: i.loadScore, inflight: i.inflight, served: i.served, direct: i.direct }]);
    on('fs-connections', (i: FunctionServerInfo) => ['connections', { id: i.id, connections: i.connections, state: i.state }]);
    on('role', (r: unknown) => ['role', r]);
    on('sibling', (r: unknown) => ['sibling', r]);
    const totals = setInterval(() => {
      if (this.#streams.size > 0) this.#broadcast('totals', this.totals());
    }, opts.totalsMs);
    totals.unref();
    const keepAlive = setInterval(() => {
      for (const res of this.#streams) this.#write(res, ': keep-alive\n\n');
    }, opts.keepAliveMs);
    keepAlive.unref();
    this.#timers.push(totals, keepAlive);
  }

  get size(): number {
    return this.#streams.size;
  }

  /** Requests per second since the last call, and the connection counts. */
  totals(): Record<string, unknown> {
    const t = this.#as.totals();
    const now = Date.now();
    const relayed = t.relayed + t.answeredLocally;
    const rps = now > this.#lastAt ? ((relayed - this.#lastRelayed) * 1000) / (now - this.#lastAt) : 0;
    this.#lastRelayed = relayed;
    this.#lastAt = now;
    return { at: now, requestsPerSecond: Math.max(0, Math.round(rps)), ...t };
  }

  /** Takes a response and keeps it open as a stream; false when the stream limit is reached. */
  open(res: ServerResponse): boolean {
    if (this.#streams.size >= this.#o.maxStreams) return false;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    this.#streams.add(res);
    res.on('close', () => this.#streams.delete(res));
    this.#write(res, `retry: 2000\n\n`);
    this.#send(res, 'hello', { pair: this.#as.pairStatus() ?? null, role: this.#as.role, functionServers: this.#as.listFunctionServers(), totals: this.#as.totals() });
    return true;
  }

  close(): void {
    for (const t of this.#timers) clearInterval(t);
    for (const u of this.#unsubscribe) u();
    for (const res of this.#streams) res.end();
    this.#streams.clear();
  }

  #broadcast(event: string, data: unknown): void {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.#streams) this.#write(res, text);
  }

  #send(res: ServerResponse, event: string, data: unknown): void {
    this.#write(res, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** A reader that lets too much pile up is closed rather than held for. */
  #write(res: ServerResponse, text: string): void {
    if (res.writableLength > this.#o.maxBufferedBytes) {
      this.#streams.delete(res);
      res.destroy();
      return;
    }
    res.write(text);
  }
}
