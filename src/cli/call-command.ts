import { Command } from 'commander';
import { Client } from '../client/index.js';
import { ConfigError, ServiceFailedError, SwitchboardError, statusName } from '../protocol/index.js';
import { loadTlsFiles, readSecretFile } from '../security/index.js';
import { parseEndpoints, parseIntIn, parseRegistry, parseRoutingKey, parseServiceSpec } from './parse.js';

interface CallOptions {
  service: number | string;
  as?: { host: string; port: number }[];
  registry?: string;
  registryPrefix?: string;
  idempotent: boolean;
  data: string;
  poolType: number;
  timeoutMs: number;
  secretFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  direct: boolean;
  spread: boolean;
  routingKey?: string;
}

export function callCommand(): Command {
  return new Command('call')
    .description('call one service through an application server and print the JSON answer')
    .requiredOption('--service <key|name>', 'service key (0 to 4294967295), or a contract name such as greeter.greet (resolved by the AS)', parseServiceSpec)
    .option('--as <host:port,...>', 'the client endpoints of the application servers (several: the client follows the active one; default 127.0.0.1:7100)', parseEndpoints)
    .option('--registry <etcd://host:port,...>', 'find the application servers in etcd (docs/registry.md) instead of --as', parseRegistry)
    .option('--registry-prefix <prefix>', 'key prefix in etcd (default /switchboard)')
    .option('--idempotent', 'the service is safe to run twice: re-send it if the connection is lost', false)
    .option('--data <json>', 'request body as JSON', '{}')
    .option('--pool-type <n>', 'pool type to route to (0 = any)', parseIntIn(0, 65535), 0)
    .option('--timeout-ms <ms>', 'deadline for the answer', parseIntIn(1, 3_600_000), 10_000)
    .option('--secret-file <file>', "the AS's client secret, when its client port asks for proof")
    .option('--tls-ca <file>', 'PEM CA to trust the AS over TLS')
    .option('--tls-cert <file>', 'PEM client certificate, when the AS asks for one')
    .option('--tls-key <file>', 'PEM key of --tls-cert')
    .option('--direct', 'director mode: ask the AS where the service is (LOOKUP) and call that FS straight', false)
    .option('--spread', 'spread mode: connect to every --as endpoint and send to the least busy (several active ASs)', false)
    .option('--routing-key <key>', 'routing key for consistent hashing (sent in the header extension; 1 to 255 bytes)', parseRoutingKey)
    .action(async (o: CallOptions, cmd: Command) => {
      let body: unknown;
      try {
        body = JSON.parse(o.data);
      } catch (err) {
        process.stderr.write(`BAD_REQUEST: --data is not valid JSON (${(err as Error).message})\n`);
        process.exitCode = 2;
        return;
      }
      // Local files first: one that cannot be read is a usage error, reported as commander reports
      // a bad flag, not as an answer from a server.
      let tls: ReturnType<typeof loadTlsFiles>;
      let secret: Buffer | undefined;
      try {
        tls = loadTlsFiles({ certFile: o.tlsCert, keyFile: o.tlsKey, caFile: o.tlsCa });
        secret = o.secretFile ? readSecretFile(o.secretFile, 'client secret').secret : undefined;
      } catch (err) {
        cmd.error(`error: ${(err as Error).message}`, { exitCode: 1, code: 'switchboard.localFile' });
      }
      let client: Client | undefined;
      try {
        const where = o.as || !o.registry ? { endpoints: o.as ?? [{ host: '127.0.0.1', port: 7100 }] } : { registry: o.registry, registryPrefix: o.registryPrefix };
        client = await Client.connect({ ...where, secret, tls, mode: o.direct ? 'direct' : o.spread ? 'spread' : 'via-as' });
        let key: number;
        let idempotent = o.idempotent;
        if (typeof o.service === 'number') key = o.service;
        else {
          const d = await client.resolve(o.service);
          key = d.key;
          idempotent ||= d.idempotent;
        }
        const answer = await client.call(key, body, { poolType: o.poolType, timeoutMs: o.timeoutMs, idempotent, routingKey: o.routingKey });
        // Nothing (a handler that returned nothing) prints as null, a big integer as its digits in a string: both are JSON.
        process.stdout.write(`${JSON.stringify(answer ?? null, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
        // Say when --direct could not go straight to an FS (its answer came through the AS).
        if (o.direct && client.direct?.viaAs) process.stderr.write('note: no function server could be reached directly; the call went through the AS\n');
      } catch (err) {
        const e = err as SwitchboardError;
        if (e instanceof ConfigError) {
          // Settings refused on this side before anything was asked of a server.
          process.stderr.write(`error: ${e.message}\n`);
        } else {
          const name = e instanceof SwitchboardError ? statusName(e.status) : 'ERROR';
          // A plugin's own code (UNKNOWN_CITY) says more than the status's generic one.
          const code = e instanceof ServiceFailedError && e.serviceCode ? e.serviceCode : (e.code ?? 'no code');
          process.stderr.write(`${name}: ${e.message} (${code})\n`);
        }
        process.exitCode = 1;
      } finally {
        await client?.close();
      }
    });
}
