import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { statusName } from '../../protocol/index.js';
import type { ApplicationServer } from '../application-server.js';
import { FS_STATES, type FunctionServerInfo } from '../registry/function-server-entry.js';
import { REFUSAL_REASONS } from '../../discovery/fs-watcher.js';
import { LATENCY_BOUNDS_MS, OTHER_SERVICES, type LatencyRecorder } from '../routing/latency.js';

/**
 * Per-FS series are kept for this many FSs at most (by id order); the rest are summed under
 * fs="_other", so a registry full of FSs cannot make /metrics grow without bound.
 */
export const MAX_FS_SERIES = 200;

function labelled(list: FunctionServerInfo[]): { fs: string; infos: FunctionServerInfo[] }[] {
  const sorted = [...list].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  // Names are unique among registered FSs, but an FS added by endpoint takes its name from DESCRIBE:
  // two that share one are labelled by their ids, or one set of series would speak for both.
  const named = new Map<string, number>();
  for (const f of list) named.set(f.name, (named.get(f.name) ?? 0) + 1);
  const out = sorted.slice(0, MAX_FS_SERIES).map((f) => ({ fs: (named.get(f.name) ?? 0) > 1 ? f.id : f.name, infos: [f] }));
  if (sorted.length > MAX_FS_SERIES) out.push({ fs: '_other', infos: sorted.slice(MAX_FS_SERIES) });
  return out;
}

/**
 * Prometheus metrics for one AS. Every value is read when scraped from counters the AS keeps
 * anyway (the duration histogram's buckets included): the request path calls no metrics code.
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
      for (const { fs, infos } of labelled(as.listFunctionServers())) {
        const n = infos.reduce((a, f) => a + f.served, 0);
        if (n > 0) this.inc({ fs }, n);
      }
    },
  });
  new Gauge({
    name: 'switchboard_fs_inflight',
    help: 'Requests sent to each function server and not yet answered',
    labelNames: ['fs'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { fs, infos } of labelled(as.listFunctionServers())) this.set({ fs }, infos.reduce((a, f) => a + f.inflight, 0));
    },
  });
  new Gauge({
    name: 'switchboard_fs_load',
    help: 'Last load each function server reported (0 to 1: the largest of CPU, event-loop use, and memory once past 85%)',
    labelNames: ['fs'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { fs, infos } of labelled(as.listFunctionServers())) if (infos.length === 1 && infos[0].load) this.set({ fs }, infos[0].loadScore);
    },
  });
  new Gauge({
    name: 'switchboard_fs_direct_leases',
    help: 'Director mode: clients holding a lease on each function server now',
    labelNames: ['fs'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { fs, infos } of labelled(as.listFunctionServers())) this.set({ fs }, infos.reduce((a, f) => a + f.direct.leases, 0));
    },
  });
  new Counter({
    name: 'switchboard_fs_direct_requests_total',
    help: 'Director mode: requests each function server received straight from clients, as it last reported',
    labelNames: ['fs'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { fs, infos } of labelled(as.listFunctionServers())) {
        const n = infos.reduce((a, f) => a + f.direct.requests, 0);
        if (n > 0) this.inc({ fs }, n);
      }
    },
  });
  new Counter({
    name: 'switchboard_lookups_total',
    help: 'Director mode: LOOKUPs answered',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(as.director.lookups);
    },
  });
  new Gauge({
    name: 'switchboard_fs_state',
    help: 'One per function server and state: 1 for the state it is in',
    labelNames: ['fs', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { fs, infos } of labelled(as.listFunctionServers())) for (const st of FS_STATES) this.set({ fs, state: st }, infos.filter((f) => f.state === st).length);
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
  new Counter({
    name: 'switchboard_connections_closed_total',
    help: 'Connections closed, by port (client, control) and reason (heartbeat, read-timeout, write-stall, output-limit, protocol, auth, idle, ...)',
    labelNames: ['port', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      const closed = as.closedConnections();
      for (const [port, m] of Object.entries(closed)) for (const [reason, n] of m) if (n > 0) this.inc({ port, reason }, n);
    },
  });
  new Counter({
    name: 'switchboard_hello_refused_total',
    help: 'HELLOs refused by the registry, by code (SB_ERR_NAME_TAKEN, SB_ERR_ENDPOINT_TAKEN, SB_ERR_REGISTRY_FULL, ...)',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [code, n] of as.manager.counters.refusedHellos) this.inc({ code }, n);
    },
  });
  new Counter({
    name: 'switchboard_load_reports_dropped_total',
    help: 'LOAD reports not believed, by reason (not-registered, too-often, malformed)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of as.manager.counters.droppedLoads) this.inc({ reason }, n);
    },
  });
  new Counter({
    name: 'switchboard_fs_ejections_total',
    help: 'Times outlier detection ejected a function server',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(as.manager.counters.ejections);
    },
  });
  new Counter({
    name: 'switchboard_fs_forgotten_total',
    help: 'Function servers forgotten after being unavailable for forgetUnavailableAfterMs',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(as.manager.counters.forgotten);
    },
  });
  new Counter({
    name: 'switchboard_requests_resent_total',
    help: 'Idempotent requests re-sent to another function server after a connection dropped under them',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(as.dispatcher.resent);
    },
  });
  new Counter({
    name: 'switchboard_requests_hedged_total',
    help: 'Idempotent requests also sent to a second function server because the first was slow to answer',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(as.dispatcher.hedged);
    },
  });
  registry.registerMetric(durationHistogram(as.dispatcher.latency) as unknown as Parameters<Registry['registerMetric']>[0]);
  new Counter({
    name: 'switchboard_hedge_losers_total',
    help: 'Copies of hedged requests that answered or timed out after another copy had answered; dropped, not relayed',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(as.dispatcher.hedgeLosers);
    },
  });
  new Gauge({
    name: 'switchboard_pair_role',
    help: "This AS's role in its pair (1 for the current one): initial (negotiating), active, standby; alone when it has no pair",
    labelNames: ['role'],
    registers: [registry],
    collect() {
      const status = as.pairStatus();
      const now = status === undefined ? 'alone' : status.role;
      for (const role of ['initial', 'active', 'standby', 'alone']) this.set({ role }, role === now ? 1 : 0);
    },
  });
  new Counter({
    name: 'switchboard_pair_role_changes_total',
    help: "Times this AS's pair role changed, its first role included",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(as.pairRoleChanges);
    },
  });
  new Counter({
    name: 'switchboard_pair_datagrams_dropped_total',
    help: 'Pair datagrams dropped before the pair state machine saw them, by reason (docs/pair.md)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      const dropped = as.pairStatus()?.datagrams.dropped ?? {};
      for (const [reason, n] of Object.entries(dropped)) this.inc({ reason }, n);
    },
  });
  new Counter({
    name: 'switchboard_registry_refused_total',
    help: 'etcd registry values refused, by reason (malformed, name-mismatch, host-not-allowed, name-taken, registry-full; docs/registry.md)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      // Every reason from 0 once a registry is in use, as the pair's drops are: a rate() has a start.
      const refused = as.registry?.watcher.refused;
      if (refused) for (const reason of REFUSAL_REASONS) this.inc({ reason }, refused.get(reason) ?? 0);
    },
  });
  new Counter({
    name: 'switchboard_log_lines_suppressed_total',
    help: 'Log lines a peer caused that rate limits held back',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(as.suppressedLogLines);
    },
  });
  return registry;
}

/**
 * The request-duration histogram, read from the dispatcher's counts at scrape (prom-client's
 * Histogram would cost a labelled observe() per request on the answer path).
 */
function durationHistogram(latency: LatencyRecorder) {
  const name = 'switchboard_request_duration_seconds';
  const help = 'Time from the AS taking a request to its answer leaving for the client (the FS answer relayed, or the AS timing it out or losing its connection), by service key; whole milliseconds';
  const le = [...LATENCY_BOUNDS_MS.map((ms) => String(ms / 1000)), '+Inf'];
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get() {
      const values: { metricName: string; labels: Record<string, string>; value: number }[] = [];
      for (const [key, counts] of latency.entries()) {
        const service = key === OTHER_SERVICES ? '_other' : String(key);
        let cumulative = 0;
        for (let i = 0; i < le.length; i++) {
          cumulative += counts[i];
          values.push({ metricName: `${name}_bucket`, labels: { le: le[i], service }, value: cumulative });
        }
        values.push({ metricName: `${name}_sum`, labels: { service }, value: counts[le.length] / 1000 });
        values.push({ metricName: `${name}_count`, labels: { service }, value: cumulative });
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    },
  };
}
