import { Command } from 'commander';
import type { FunctionServerInfo } from '../application-server/index.js';
import { EXIT_CODES_HELP, adminAction, adminRequest, adminTarget, expectOk, withAdminOptions, type AdminFlags } from './admin-client.js';
import { parseEndpoint, parseIntIn } from './parse.js';
import { formatEndpoint } from '../common/addresses.js';

type Action = 'remove' | 'dispose' | 'reconnect' | 'drain' | 'undrain';

const conns = (f: FunctionServerInfo): string => `${f.connections.open}/${f.connections.expected} connections open`;
const requests = (n: number): string => `${n} request${n === 1 ? '' : 's'}`;

/** One line saying what happened, in the words of docs/cli.md. */
const SAID: Record<Action, (f: FunctionServerInfo) => string> = {
  remove: (f) => `${f.name} removed: it gets no new requests and the AS no longer dials ${formatEndpoint(f)}; its pool connections close once what it has in flight (${requests(f.inflight)}) is answered`,
  dispose: (f) => `${f.name}: pool connections disposed; the AS dials them again on its own schedule (state ${f.state})`,
  reconnect: (f) => `${f.name}: dialing now, without waiting out the backoff (state ${f.state}, ${conns(f)})`,
  drain: (f) => `${f.name} drained: ${requests(f.inflight)} in flight will finish; no new ones`,
  undrain: (f) =>
    f.state === 'available'
      ? `${f.name} undrained: available, it gets new requests again`
      : `${f.name} undrained: ${f.state}; it gets new requests once a pool connection is ready`,
};

const HELP: Record<Action, string> = {
  remove: 'forget a function server: no new requests, no more dials; its pool connections close once what it has in flight is answered',
  dispose: "close a function server's pool connections; the AS redials them as it would after a failure",
  reconnect: 'dial a function server now, skipping the backoff wait',
  drain: 'stop sending new requests to a function server; those in flight finish',
  undrain: 'take a drained function server back into scheduling',
};

function print(o: AdminFlags, action: string, f: FunctionServerInfo, line: string): void {
  process.stdout.write(o.json ? `${JSON.stringify({ action, functionServer: f }, null, 2)}\n` : `${line}\n`);
}

/** `switchboard fs-admin <add|remove|dispose|reconnect|drain|undrain>`: change the AS's registry. */
export function fsAdminCommand(): Command {
  const cmd = new Command('fs-admin').description("change an application server's function servers through its admin port").addHelpText('after', EXIT_CODES_HELP);
  cmd.addCommand(
    withAdminOptions(new Command('add'))
      .description('add a function server by its endpoint; the AS dials it and asks what it serves')
      .argument('<host:port>', 'where the FS listens for pool connections (its --port)', parseEndpoint)
      .option('--name <name>', 'its id and name in the registry (default host:port)')
      .option('--pool-type <n>', 'its pool type', parseIntIn(0, 65535))
      .option('--standby', 'a standby FS: traffic only when the active ones for a key are unavailable', false)
      .action(
        adminAction(async (ep: { host: string; port: number }, o: AdminFlags & { name?: string; poolType?: number; standby: boolean }) => {
          const t = adminTarget(o);
          const body = { host: ep.host, port: ep.port, ...(o.name ? { name: o.name } : {}), ...(o.poolType !== undefined ? { poolType: o.poolType } : {}), standby: o.standby };
          const f = expectOk<FunctionServerInfo>(t, await adminRequest(t, 'POST', '/functionservers', body));
          const tier = f.standby ? 'standby' : 'active';
          print(o, 'add', f, `${f.id} added: the AS dials ${formatEndpoint(f)} (pool type ${f.poolType}, ${tier} tier, ${f.state}); \`switchboard status\` shows when it is available`);
        }),
      ),
  );
  for (const action of ['remove', 'dispose', 'reconnect', 'drain', 'undrain'] as const) {
    cmd.addCommand(
      withAdminOptions(new Command(action))
        .description(HELP[action])
        .argument('<id>', "the function server's id: its name, as `switchboard status` lists it")
        .action(
          adminAction(async (id: string, o: AdminFlags) => {
            const t = adminTarget(o);
            const path = `/functionservers/${encodeURIComponent(id)}`;
            const r = action === 'remove' ? await adminRequest(t, 'DELETE', path) : await adminRequest(t, 'POST', `${path}/${action}`);
            const f = expectOk<FunctionServerInfo>(t, r);
            // The AS answers with the FS as it is now; only the id if it went meanwhile.
            print(o, action, f, f.connections ? SAID[action](f) : `${id}: ${action} done`);
          }),
        ),
    );
  }
  return cmd;
}
