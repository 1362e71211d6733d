import { Command } from 'commander';
import type { FunctionServerInfo, PairStatus } from '../application-server/index.js';
import { AdminError, EXIT, EXIT_CODES_HELP, adminAction, adminRequest, adminTarget, expectOk, withAdminOptions, type AdminFlags } from './admin-client.js';
import { formatEndpoint } from '../common/addresses.js';

const pad = (s: unknown, n: number, left = true): string => (left ? String(s).padEnd(n) : String(s).padStart(n));

/** The AS's own totals, as /metrics exposes them (the admin has no JSON endpoint for them). */
export interface AsTotals {
  relayed: number;
  relayedByStatus: Record<string, number>;
  answeredLocally: number;
  answeredLocallyByStatus: Record<string, number>;
  clientConnections: number;
  resent: number;
  hedged: number;
}

/** Reads the few series `status` shows from Prometheus text; absent ones count 0. */
export function totalsFromMetrics(text: string): AsTotals {
  const t: AsTotals = { relayed: 0, relayedByStatus: {}, answeredLocally: 0, answeredLocallyByStatus: {}, clientConnections: 0, resent: 0, hedged: 0 };
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const status = /status="([^"]*)"/.exec(m[2] ?? '')?.[1] ?? '';
    switch (m[1]) {
      case 'switchboard_answers_relayed_total':
        t.relayed += value;
        t.relayedByStatus[status] = value;
        break;
      case 'switchboard_answers_local_total':
        t.answeredLocally += value;
        t.answeredLocallyByStatus[status] = value;
        break;
      case 'switchboard_client_connections':
        t.clientConnections = value;
        break;
      case 'switchboard_requests_resent_total':
        t.resent = value;
        break;
      case 'switchboard_requests_hedged_total':
        t.hedged = value;
        break;
    }
  }
  return t;
}

const byStatus = (m: Record<string, number>): string => {
  const parts = Object.entries(m).map(([s, n]) => `${n} ${s}`);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
};

function pairLine(p: PairStatus | undefined): string {
  if (!p) return 'role active (no pair)';
  const s = p.sibling;
  const sibling = s ? ` (${s.role}, node ${s.nodeId}${s.clientEndpoint ? `, clients at ${formatEndpoint(s.clientEndpoint)}` : ''})` : '';
  return `role ${p.role} · epoch ${p.epoch} · priority ${p.priority} · node ${p.nodeId} · sibling ${p.siblingOnline ? 'online' : 'offline'}${sibling}`;
}

/** `switchboard status`: the AS's pair role, its FS table and its totals. */
export function statusCommand(): Command {
  return withAdminOptions(new Command('status'))
    .description("show an application server's pair role, its function servers, and its totals")
    .action(
      adminAction(async (o: AdminFlags) => {
        const t = adminTarget(o);
        const [fss, pair, ready, metrics] = await Promise.all([
          adminRequest(t, 'GET', '/functionservers'),
          adminRequest(t, 'GET', '/pair'),
          adminRequest(t, 'GET', '/readyz'),
          adminRequest(t, 'GET', '/metrics'),
        ]);
        const list = expectOk<FunctionServerInfo[]>(t, fss);
        if (pair.status !== 404) expectOk(t, pair); // 404: this AS runs alone
        const p = pair.status === 200 ? (pair.body as PairStatus) : undefined;
        const readiness = ready.body as { ready: boolean; reason?: string };
        if (typeof readiness?.ready !== 'boolean') throw new AdminError(`the AS answered /readyz with ${ready.status} ${JSON.stringify(ready.body)}`, EXIT.FAILED);
        const totals = metrics.status === 200 && typeof metrics.body === 'string' ? totalsFromMetrics(metrics.body) : undefined;
        if (o.json) {
          process.stdout.write(`${JSON.stringify({ ready: readiness, pair: p ?? null, functionServers: list, totals: totals ?? null }, null, 2)}\n`);
        } else {
          const lines: string[] = [pairLine(p), `ready: ${readiness.ready ? 'yes' : `no (${readiness.reason})`}`, ''];
          lines.push(
            `${pad('function server', 24)} ${pad('endpoint', 22)} ${pad('pool', 5, false)} ${pad('tier', 7)} ${pad('state', 11)} ${pad('conns', 5, false)} ${pad('in flight', 9, false)} ${pad('served', 9, false)} ${pad('load', 5, false)}`,
          );
          for (const f of list) {
            lines.push(
              `${pad(f.name, 24)} ${pad(formatEndpoint(f), 22)} ${pad(f.poolType, 5, false)} ${pad(f.standby ? 'standby' : 'active', 7)} ${pad(f.state, 11)} ${pad(`${f.connections.open}/${f.connections.expected}`, 5, false)} ${pad(f.inflight, 9, false)} ${pad(f.served, 9, false)} ${pad(f.load ? f.loadScore.toFixed(2) : '-', 5, false)}`,
            );
          }
          const available = list.filter((f) => f.state === 'available').length;
          lines.push('');
          lines.push(`${list.length} function server${list.length === 1 ? '' : 's'}, ${available} available, ${list.reduce((a, f) => a + f.inflight, 0)} requests in flight, ${list.reduce((a, f) => a + f.served, 0)} served`);
          if (totals) {
            lines.push(
              `this AS: ${totals.relayed} answers relayed${byStatus(totals.relayedByStatus)}, ${totals.answeredLocally} answered itself${byStatus(totals.answeredLocallyByStatus)}, ${totals.resent} re-sent, ${totals.hedged} hedged, ${totals.clientConnections} client connections`,
            );
          }
          process.stdout.write(`${lines.join('\n')}\n`);
        }
        if (!readiness.ready) process.exitCode = EXIT.NOT_READY;
      }),
    );
}

/** `switchboard pair designate`: fix the pair's roles. */
export function pairCommand(): Command {
  const pair = new Command('pair').description('operate an application server pair').addHelpText('after', EXIT_CODES_HELP);
  pair.addCommand(
    withAdminOptions(new Command('designate'))
      .description('make the AS at --admin take the given role; its sibling takes the other')
      .argument('<role>', 'active or standby')
      .action(
        adminAction(async (role: string, o: AdminFlags) => {
          if (role !== 'active' && role !== 'standby') throw new AdminError(`role must be active or standby, got "${role}"`, EXIT.FAILED);
          const t = adminTarget(o);
          const p = expectOk<PairStatus>(t, await adminRequest(t, 'POST', '/pair/designate', { role }));
          process.stdout.write(o.json ? `${JSON.stringify(p, null, 2)}\n` : `this AS is now ${p.role} (epoch ${p.epoch})\n`);
        }),
      ),
  );
  return pair;
}
