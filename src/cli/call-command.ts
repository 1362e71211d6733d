import { Command } from 'commander';
import { Client } from '../client/index.js';
import { SwitchboardError, statusName } from '../protocol/index.js';
import { parseEndpoint, parseIntIn } from './parse.js';

export function callCommand(): Command {
  return new Command('call')
    .description('call one service through an application server and print the JSON answer')
    .requiredOption('--service <key>', 'service key', parseIntIn(0, 0xffffffff))
    .option('--as <host:port>', "the application server's client endpoint", parseEndpoint, { host: '127.0.0.1', port: 7100 })
    .option('--data <json>', 'request body as JSON', '{}')
    .option('--pool-type <n>', 'pool type to route to (0 = any)', parseIntIn(0, 65535), 0)
    .option('--timeout-ms <ms>', 'deadline for the answer', parseIntIn(1, 3_600_000), 10_000)
    .action(async (o) => {
      let body: unknown;
      try {
        body = JSON.parse(o.data);
      } catch (err) {
        process.stderr.write(`BAD_REQUEST: --data is not valid JSON (${(err as Error).message})\n`);
        process.exitCode = 2;
        return;
      }
      let client: Client | undefined;
      try {
        client = await Client.connect({ host: o.as.host, port: o.as.port });
        const answer = await client.call(o.service, body, { poolType: o.poolType, timeoutMs: o.timeoutMs });
        process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
      } catch (err) {
        const e = err as SwitchboardError;
        const name = e instanceof SwitchboardError ? statusName(e.status) : 'ERROR';
        process.stderr.write(`${name}: ${e.message} (${e.code ?? 'no code'})\n`);
        process.exitCode = 1;
      } finally {
        await client?.close();
      }
    });
}
