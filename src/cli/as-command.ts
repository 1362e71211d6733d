import { Command, Option } from 'commander';
import { AdminServer, ApplicationServer } from '../application-server/index.js';
import { createLogger } from '../common/logger.js';
import { parseIntIn, parsePort } from './parse.js';

export function asCommand(): Command {
  return new Command('as')
    .description('start an application server: clients call it, function servers register with it')
    .option('--host <address>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'client port (0 picks a free one)', parsePort, 7100)
    .option('--control-port <port>', 'port function servers register on', parsePort, 7101)
    .option('--admin-port <port>', 'HTTP admin port for /healthz, /functionservers and /metrics (off when absent)', parsePort)
    .addOption(new Option('--strategy <name>', 'how to choose an FS').choices(['least-loaded', 'round-robin']).default('least-loaded'))
    .option('--heartbeat-ms <ms>', 'heartbeat period; a peer silent for 3 periods is dead', parseIntIn(0, 600_000), 2000)
    .option('--timeout-ms <ms>', 'deadline for requests that carry none', parseIntIn(1, 3_600_000), 30_000)
    .option('--reconnect-cap-ms <ms>', 'longest wait between probes of an unavailable FS', parseIntIn(10, 3_600_000), 5000)
    .option('--pool-size <n>', 'connections kept to each FS', parseIntIn(1, 64), 1)
    .option('--max-connections <n>', 'client connections accepted at once', parseIntIn(1, 1_000_000), 10_000)
    .option('--max-inflight-per-client <n>', 'requests in flight per client connection', parseIntIn(1, 1_000_000), 1024)
    .option('--max-inflight-per-fs <n>', 'requests in flight per FS', parseIntIn(1, 1_000_000), 10_000)
    .option('--load-refresh-ms <ms>', "the FSs' LOAD period; older than 3 periods is stale", parseIntIn(10, 600_000), 1000)
    .option('--log-level <level>', 'pino level: trace, debug, info, warn, error, silent')
    .action(async (o) => {
      const logger = createLogger('application-server', o.logLevel);
      const as = new ApplicationServer({
        host: o.host,
        port: o.port,
        controlPort: o.controlPort,
        strategy: o.strategy,
        heartbeatMs: o.heartbeatMs,
        defaultTimeoutMs: o.timeoutMs,
        reconnectCapMs: o.reconnectCapMs,
        poolSize: o.poolSize,
        maxConnections: o.maxConnections,
        maxInflightPerClient: o.maxInflightPerClient,
        maxInflightPerFs: o.maxInflightPerFs,
        loadRefreshMs: o.loadRefreshMs,
        logger,
      });
      await as.start();
      let admin: AdminServer | undefined;
      if (o.adminPort !== undefined) {
        admin = new AdminServer(as, logger, { processMetrics: true });
        const adminPort = await admin.listen(o.adminPort, o.host);
        logger.info({ adminPort }, 'admin surface listening');
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
