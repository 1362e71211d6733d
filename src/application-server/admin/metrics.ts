import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { statusName } from '../../protocol/index.js';
import type { ApplicationServer } from '../application-server.js';
import type { FsState } from '../registry/function-server-entry.js';

const STATES: FsState[] = ['connecting', 'available', 'unavailable', 'draining'];

/**
 * Prometheus metrics for one AS. Every value is read from counters the AS keeps anyway, when
 * scraped: the request path pays nothing for metrics.
 */
export function createMetrics(as: ApplicationServer, opts: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (opts.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'switchboard_as_' });

  new Counter({
    name: 'switchboard_answers_relayed_total',
    help: 'Answers relayed from function servers to clients, by status',
    labelNames: ['status'],
    registers: [registry],
    collect() {
      this.reset();
      as.dispatcher.relayedAnswers.forEach((n, code) => {
        if (n > 0) this.inc({ status: statusName(code) }, n);
      });
    },
  });
  new Counter({
    name: 'switchboard_answers_local_total',
    help: 'Requests the AS answered itself (no FS, overload, deadline, lost connection), by status',
    labelNames: ['status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [code, n] of as.dispatcher.localAnswers) this.inc({ status: statusName(code) }, n);
    },
  });
  new Counter({
    name: 'switchboard_fs_served_total',
    help: 'Requests each function server answered OK through this AS',
    labelNames: ['fs'],
    registers: [registry],
    collect() {
      this.reset();
      for (const f of as.listFunctionServers()) if (f.served > 0) this.inc({ fs: f.name }, f.served);
    },
  });
  new Gauge({
    name: 'switchboard_fs_inflight',
    help: 'Requests sent to each function server and not yet answered',
    labelNames: ['fs'],
    registers: [registry],
    collect() {
      this.reset();
      for (const f of as.listFunctionServers()) this.set({ fs: f.name }, f.inflight);
    },
  });
  new Gauge({
    name: 'switchboard_fs_load',
    help: 'Last load each function server reported (0 to 1: the larger of CPU and event-loop use)',
    labelNames: ['fs'],
    registers: [registry],
    collect() {
      this.reset();
      for (const f of as.listFunctionServers()) if (f.load) this.set({ fs: f.name }, f.loadScore);
    },
  });
  new Gauge({
    name: 'switchboard_fs_state',
    help: 'One per function server and state: 1 for the state it is in',
    labelNames: ['fs', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const f of as.listFunctionServers()) for (const s of STATES) this.set({ fs: f.name, state: s }, f.state === s ? 1 : 0);
    },
  });
  new Gauge({
    name: 'switchboard_client_connections',
    help: 'Client connections open now',
    registers: [registry],
    collect() {
      this.set(as.clientConnections);
    },
  });
  new Counter({
    name: 'switchboard_client_connections_refused_total',
    help: 'Client connections refused at maxConnections',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(as.refusedConnections);
    },
  });
  return registry;
}
