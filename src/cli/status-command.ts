import { Command } from 'commander';
import type { FunctionServerInfo, PairStatus } from '../application-server/index.js';
import { adminRequest, type AdminTarget } from './admin-client.js';
import { parseEndpoint } from './parse.js';

function target(o: { admin: { host: string; port: number }; tokenFile?: string; https?: boolean }): AdminTarget {
  return { ...o.admin, tokenFile: o.tokenFile, https: o.https };
}

function fail(message: string, code: number): void {
  process.stderr.write(`${message}\n`);
  process.exitCode = code;
}

const pad = (s: unknown, n: number, left = true): string => (left ? String(s).padEnd(n) : String(s).padStart(n));

/** `switchboard status`: the AS's role in its pair and its FS table. Exit 0 ok, 1 unreachable or refused, 2 not ready. */
export function statusCommand(): Command {
  return new Command('status')
    .description("show an application server's pair role, epoch and sibling, and its function servers")
    .requiredOption('--admin <host:port>', "the AS's admin endpoint", parseEndpoint)
    .option('--token-file <file>', 'the admin token, when the AS has one')
    .option('--https', 'the admin port speaks HTTPS', false)
    .option('--json', 'print JSON for scripts', false)
    .action(async (o) => {
      const t = target(o);
      const [fss, pair, ready] = await Promise.all([adminRequest(t, 'GET', '/functionservers'), adminRequest(t, 'GET', '/pair'), adminRequest(t, 'GET', '/readyz')]);
      if (fss.status !== 200) return fail(`the admin port answered ${fss.status}: ${JSON.stringify(fss.body)}`, 1);
      const list = fss.body as FunctionServerInfo[];
      const p = pair.status === 200 ? (pair.body as PairStatus) : undefined;
      const readiness = ready.body as { ready: boolean; reason?: string };
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ ready: readiness, pair: p ?? null, functionServers: list }, null, 2)}\n`);
      } else {
        const lines: string[] = [];
        lines.push(
          p
            ? `role ${p.role} · epoch ${p.epoch} · priority ${p.priority} · node ${p.nodeId} · sibling ${p.siblingOnline ? 'online' : 'offline'}${p.sibling ? ` (${p.sibling.role}, node ${p.sibling.nodeId}${p.sibling.clientEndpoint ? `, clients at ${p.sibling.clientEndpoint.host}:${p.sibling.clientEndpoint.port}` : ''})` : ''}`
            : 'role active (no pair)',
        );
        lines.push(`ready: ${readiness.ready ? 'yes' : `no (${readiness.reason})`}`);
        lines.push('');
        lines.push(`${pad('function server', 24)} ${pad('endpoint', 22)} ${pad('pool', 5, false)} ${pad('tier', 7)} ${pad('state', 11)} ${pad('in flight', 9, false)} ${pad('served', 9, false)} ${pad('load', 5, false)}`);
        for (const f of list) {
          lines.push(
            `${pad(f.name, 24)} ${pad(`${f.host}:${f.port}`, 22)} ${pad(f.poolType, 5, false)} ${pad(f.standby ? 'standby' : 'active', 7)} ${pad(f.state, 11)} ${pad(f.inflight, 9, false)} ${pad(f.served, 9, false)} ${pad(f.load ? f.loadScore.toFixed(2) : '-', 5, false)}`,
          );
        }
        const available = list.filter((f) => f.state === 'available').length;
        lines.push('');
        lines.push(`${list.length} function servers, ${available} available, ${list.reduce((a, f) => a + f.inflight, 0)} requests in flight, ${list.reduce((a, f) => a + f.served, 0)} served`);
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      if (!readiness.ready) process.exitCode = 2;
    });
}

/** `switchboard pair designate`: fix the pair's roles. Exit 0 done, 1 refused or unreachable. */
export function pairCommand(): Command {
  const pair = new Command('pair').description('operate an application server pair');
  pair
    .command('designate')
    .description('make the AS at --admin take the given role; its sibling takes the other')
    .argument('<role>', 'active or standby')
    .requiredOption('--admin <host:port>', "the AS's admin endpoint", parseEndpoint)
    .option('--token-file <file>', 'the admin token, when the AS has one')
    .option('--https', 'the admin port speaks HTTPS', false)
    .option('--json', 'print JSON for scripts', false)
    .action(async (role: string, o) => {
      if (role !== 'active' && role !== 'standby') return fail(`role must be active or standby, got "${role}"`, 1);
      const r = await adminRequest(target(o), 'POST', '/pair/designate', { role });
      if (r.status !== 200) return fail(`the AS refused: ${r.status} ${JSON.stringify(r.body)}`, 1);
      const p = r.body as PairStatus;
      process.stdout.write(o.json ? `${JSON.stringify(p, null, 2)}\n` : `this AS is now ${p.role} (epoch ${p.epoch})\n`);
    });
  return pair;
}
