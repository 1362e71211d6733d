import { Command, Option } from 'commander';
import { AdminServer, ApplicationServer, type ApplicationServerOptions } from '../application-server/index.js';
import { createLogger } from '../common/logger.js';
import { ConfigError } from '../protocol/index.js';
import { isLoopback, loadTlsFiles, readSecretFile } from '../security/index.js';
import { parseEndpoint, parseIntIn, parsePort } from './parse.js';

interface PairFlags {
  pairPort?: number;
  pairHost?: string;
  pairPeer?: { host: string; port: number };
  pairSecretFile?: string;
  pairInsecure: boolean;
  priority: number;
  advertMs: number;
  preempt: boolean;
  nodeId?: string;
  onActive?: string;
  onStandby?: string;
}

function pairOptions(o: PairFlags, secret: (file: string | undefined, what: string) => Buffer | undefined): ApplicationServerOptions['pair'] {
  if (o.pairPort === undefined && o.pairPeer === undefined) return undefined;
  if (o.pairPort === undefined || o.pairPeer === undefined) throw new ConfigError('an AS pair needs both --pair-port and --pair-peer');
  return {
    port: o.pairPort,
    host: o.pairHost,
    peer: o.pairPeer,
    secret: secret(o.pairSecretFile, 'pair secret'),
    insecure: o.pairInsecure,
    priority: o.priority,
    advertMs: o.advertMs,
    preempt: o.preempt,
    nodeId: o.nodeId,
    onActive: o.onActive,
    onStandby: o.onStandby,
  };
}

export function asCommand(): Command {
  return new Command('as')
    .description('start an application server: clients call it, function servers register with it')
    .option('--client-host <address>', 'address the client port binds')
    .option('--host <address>', 'older name for --client-host')
    .option('--control-host <address>', 'address the control port binds (keep it on loopback unless FSs prove the join secret)', '127.0.0.1')
    .option('--admin-host <address>', 'address the admin port binds (beyond loopback only with --admin-token-file)', '127.0.0.1')
    .option('--port <port>', 'client port (0 picks a free one)', parsePort, 7100)
    .option('--control-port <port>', 'port function servers register on', parsePort, 7101)
    .option('--admin-port <port>', 'HTTP admin port for /healthz, /readyz, /functionservers and /metrics (off when absent)', parsePort)
    .option('--join-secret-file <file>', 'shared secret FSs and this AS prove to each other (without it: FSs from loopback only)')
    .option('--client-secret-file <file>', 'secret clients must prove before their first request (without it the client port is open)')
    .option('--admin-token-file <file>', 'bearer token for the admin surface (all but /healthz and /readyz)')
    .option('--tls-cert <file>', 'PEM certificate for the client, control and admin (HTTPS) ports and pool connections')
    .option('--tls-key <file>', 'PEM key of --tls-cert')
    .option('--tls-ca <file>', 'PEM CA that signs the FSs (mutual TLS on the control port and pool connections)')
    .option('--tls-require-client-cert', 'clients must present a certificate signed by --tls-ca', false)
    .addOption(new Option('--strategy <name>', 'how to choose an FS').choices(['least-loaded', 'round-robin']).default('least-loaded'))
    .option('--heartbeat-ms <ms>', 'heartbeat period; a peer silent for 3 periods is dead', parseIntIn(0, 600_000), 2000)
    .option('--timeout-ms <ms>', 'deadline for requests that carry none', parseIntIn(1, 3_600_000), 30_000)
    .option('--auth-timeout-ms <ms>', 'a peer must prove itself within this', parseIntIn(10, 600_000), 5000)
    .option('--reconnect-cap-ms <ms>', 'longest wait between probes of an unavailable FS', parseIntIn(10, 3_600_000), 5000)
    .option('--pool-size <n>', 'connections kept to each FS', parseIntIn(1, 64), 1)
    .option('--max-connections <n>', 'client connections accepted at once (lowered to fit the open-file limit)', parseIntIn(1, 1_000_000), 10_000)
    .option('--max-inflight-per-client <n>', 'requests in flight per client connection', parseIntIn(1, 1_000_000), 1024)
    .option('--max-inflight-per-fs <n>', 'requests in flight per FS', parseIntIn(1, 1_000_000), 10_000)
    .option('--max-client-buffered-bytes <n>', 'answer bytes held for one client that does not read; beyond, it is closed', parseIntIn(65_536, 2 ** 40), 64 * 1024 * 1024)
    .option('--client-idle-timeout-ms <ms>', 'close a client connection with nothing in flight and no request for this long (0 keeps it)', parseIntIn(0, 86_400_000), 300_000)
    .option('--max-function-servers <n>', 'FSs the registry holds at once', parseIntIn(1, 100_000), 1000)
    .option('--max-services-per-fs <n>', 'service keys one FS may declare', parseIntIn(1, 65_536), 4096)
    .option('--forget-unavailable-ms <ms>', 'forget a registered FS unavailable this long (0 keeps it)', parseIntIn(0, 86_400_000 * 30), 600_000)
    .option('--allow-fs-host <host...>', 'IPs, CIDR blocks or names HELLOs may ask this AS to dial (default: any with a join secret, loopback without)')
    .option('--max-control-connections <n>', 'control connections held at once', parseIntIn(1, 100_000), 1024)
    .option('--client-advertise-host <address>', 'host clients should dial to reach this AS (named by a standby in NOT_ACTIVE)')
    .option('--pair-port <port>', 'UDP port of the active/standby pair (with --pair-peer)', parsePort)
    .option('--pair-host <address>', 'address the pair port binds (default: --control-host)')
    .option('--pair-peer <host:port>', "the sibling AS's pair endpoint", parseEndpoint)
    .option('--pair-secret-file <file>', 'shared secret that signs every pair datagram (HMAC-SHA256)')
    .option('--pair-insecure', 'run a pair without a secret (anyone who reaches the pair port can forge datagrams)', false)
    .option('--priority <n>', 'pair priority, 1-255: wins negotiations and takes over sooner', parseIntIn(1, 255), 100)
    .option('--advert-ms <ms>', "the active's advert interval; the standby takes over after 3 missed adverts plus a skew", parseIntIn(10, 60_000), 200)
    .option('--preempt', 'take the active role back from a sibling of lower priority (off: no flapping)', false)
    .option('--node-id <hex16>', 'this AS on the pair wire, 16 hex digits (default random)')
    .option('--on-active <command>', 'shell command run when this AS becomes active (e.g. to move a virtual IP)')
    .option('--on-standby <command>', 'shell command run when this AS becomes standby')
    .option('--load-refresh-ms <ms>', "the FSs' LOAD period; older than 3 periods is stale", parseIntIn(10, 600_000), 1000)
    .option('--log-level <level>', 'pino level: trace, debug, info, warn, error, silent')
    .action(async (o) => {
      const logger = createLogger('application-server', o.logLevel);
      const secret = (file: string | undefined, what: string): Buffer | undefined => {
        if (!file) return undefined;
        const r = readSecretFile(file, what);
        if (r.warning) logger.warn(r.warning);
        return r.secret;
      };
      const joinSecret = secret(o.joinSecretFile, 'join secret');
      const adminToken = secret(o.adminTokenFile, 'admin token');
      if (o.adminPort !== undefined && !adminToken && !isLoopback(o.adminHost)) {
        throw new ConfigError(`the admin port may bind ${o.adminHost} only with --admin-token-file; without a token it stays on loopback`);
      }
      const tls = loadTlsFiles({ certFile: o.tlsCert, keyFile: o.tlsKey, caFile: o.tlsCa, requireClientCert: o.tlsRequireClientCert });
      const as = new ApplicationServer({
        clientHost: o.clientHost ?? o.host ?? '127.0.0.1',
        controlHost: o.controlHost,
        port: o.port,
        controlPort: o.controlPort,
        joinSecret,
        clientSecret: secret(o.clientSecretFile, 'client secret'),
        tls,
        authTimeoutMs: o.authTimeoutMs,
        strategy: o.strategy,
        heartbeatMs: o.heartbeatMs,
        defaultTimeoutMs: o.timeoutMs,
        reconnectCapMs: o.reconnectCapMs,
        poolSize: o.poolSize,
        maxConnections: o.maxConnections,
        maxInflightPerClient: o.maxInflightPerClient,
        maxInflightPerFs: o.maxInflightPerFs,
        maxClientBufferedBytes: o.maxClientBufferedBytes,
        clientIdleTimeoutMs: o.clientIdleTimeoutMs,
        maxFunctionServers: o.maxFunctionServers,
        maxServicesPerFs: o.maxServicesPerFs,
        forgetUnavailableAfterMs: o.forgetUnavailableMs,
        allowedFsHosts: o.allowFsHost,
        maxControlConnections: o.maxControlConnections,
        loadRefreshMs: o.loadRefreshMs,
        clientAdvertiseHost: o.clientAdvertiseHost,
        pair: pairOptions(o, secret),
        logger,
      });
      if (!joinSecret && !o.tlsCa) logger.warn('no join secret: function servers are taken from loopback only (set --join-secret-file for FSs on other machines)');
      // Built before the AS starts: building it takes the event loop for a moment, which must not
      // fall inside the pair's negotiation.
      const admin = o.adminPort !== undefined ? new AdminServer(as, logger, { processMetrics: true, token: adminToken, tls }) : undefined;
      await admin?.prepare();
      await as.start();
      if (admin) {
        const adminPort = await admin.listen(o.adminPort, o.adminHost);
        logger.info({ adminPort, adminHost: o.adminHost, token: adminToken !== undefined }, adminToken ? 'admin surface listening (token required)' : 'admin surface listening on loopback only (no --admin-token-file)');
      }
      const stop = async (signal: string): Promise<void> => {
        logger.info({ signal }, 'stopping');
        await admin?.close();
        await as.stop();
        process.exit(0);
      };
      process.once('SIGTERM', () => void stop('SIGTERM'));
      process.once('SIGINT', () => void stop('SIGINT'));
    });
}
