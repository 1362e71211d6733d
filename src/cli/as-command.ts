import { isIP } from 'node:net';
import { Command, Option } from 'commander';
import { AdminServer, ApplicationServer, DEFAULT_LEAST_LOADED, STRATEGY_NAMES } from '../application-server/index.js';
import { LOG_LEVELS, createLogger } from '../common/logger.js';
import { ConfigError, DEFAULT_MAX_BODY_BYTES } from '../protocol/index.js';
import { isLoopback, loadTlsFiles, readSecretFile } from '../security/index.js';
import { asConfigSchema, asFileSchema, resolveSettings, unreadEnvironment, type AsConfig, type FlagMap } from './config.js';
import { loadStrategy } from './strategy-module.js';
import { DEFAULT_REGISTRY_PREFIX, parseRegistryUrl } from '../discovery/registry-url.js';
import { collectEndpoints, parseEndpoint, parseFraction, parseIntIn, parseNumberIn, parsePort, parseRegistry } from './parse.js';
import { onStopSignals } from './signals.js';

/** Flags whose name differs from their config key; the others keep theirs (camel-cased). */
const RENAMED: FlagMap = {
  advertiseHost: 'clientAdvertiseHost',
  timeoutMs: 'defaultTimeoutMs',
  forgetUnavailableMs: 'forgetUnavailableAfterMs',
  allowFsHost: 'allowedFsHosts',
  functionServer: 'functionServers',
  tlsCert: 'tls.certFile',
  tlsKey: 'tls.keyFile',
  tlsCa: 'tls.caFile',
  tlsRequireClientCert: 'tls.requireClientCert',
  pairPort: 'pair.port',
  pairHost: 'pair.host',
  pairPeer: 'pair.peer',
  pairSecretFile: 'pair.secretFile',
  pairInsecure: 'pair.insecure',
  priority: 'pair.priority',
  advertMs: 'pair.advertMs',
  preempt: 'pair.preempt',
  nodeId: 'pair.nodeId',
  negotiationTimeoutMs: 'pair.negotiationTimeoutMs',
  maxClockSkewMs: 'pair.maxClockSkewMs',
  onActive: 'pair.onActive',
  onStandby: 'pair.onStandby',
  outlierConsecutiveFailures: 'outlier.consecutiveFailures',
  outlierIntervalMs: 'outlier.intervalMs',
  outlierBaseEjectionMs: 'outlier.baseEjectionMs',
  outlierMaxEjectionMs: 'outlier.maxEjectionMs',
  outlierMaxEjectionPercent: 'outlier.maxEjectionPercent',
  outlierSuccessRateMinRequests: 'outlier.successRateMinRequests',
  outlierSuccessRateMinHosts: 'outlier.successRateMinHosts',
  outlierSuccessRateStdevFactor: 'outlier.successRateStdevFactor',
  outlierMinTimeoutMs: 'outlier.minTimeoutMs',
};
export const AS_FLAGS: FlagMap = {
  ...Object.fromEntries(Object.keys(asConfigSchema.shape).map((k) => [k, k])),
  ...RENAMED,
};

/** Reads the secret files the settings name; a file readable by others is used, with a warning. */
function secretReader(logger: ReturnType<typeof createLogger>) {
  return (file: string | undefined, what: string): Buffer | undefined => {
    if (!file) return undefined;
    const r = readSecretFile(file, what);
    if (r.warning) logger.warn(r.warning);
    return r.secret;
  };
}

/** `--pair-mode etcd`: the election on the `--registry` etcd, under `--registry-prefix` (pairProblem has checked the settings). */
function pairEtcdOptions(c: AsConfig) {
  if (c.pairMode !== 'etcd' || !c.registry) return undefined;
  return { endpoints: parseRegistryUrl(c.registry), prefix: c.registryPrefix, ttlSeconds: c.pairTtlSeconds, nodeId: c.pair?.nodeId, onActive: c.pair?.onActive, onStandby: c.pair?.onStandby };
}

function pairOptions(c: AsConfig, secret: ReturnType<typeof secretReader>) {
  if (c.pairMode === 'etcd' || c.pair?.port === undefined || c.pair.peer === undefined) return undefined;
  const { secretFile, port, peer, ...rest } = c.pair;
  return { ...rest, port, peer, secret: secret(secretFile, 'pair secret') };
}

/** The pair settings only the UDP pair reads; an etcd election takes nodeId, onActive and onStandby. */
const UDP_ONLY_PAIR_KEYS = ['port', 'host', 'peer', 'secretFile', 'insecure', 'priority', 'advertMs', 'preempt', 'negotiationTimeoutMs', 'maxClockSkewMs'];

/** A pair setting as the user may have given it: `--pair-port (pair.port)`. */
function pairSetting(key: string): string {
  const flag = Object.keys(RENAMED).find((f) => RENAMED[f] === `pair.${key}`) ?? key;
  return `--${flag.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`)} (pair.${key})`;
}

/**
 * Pair settings that would start something other than what they ask for (a pair that runs alone,
 * UDP settings an etcd election ignores), refused before anything starts, and by --print-config.
 * Flags and config-file keys meet here merged, so the same rules hold for both.
 */
export function pairProblem(c: AsConfig): string | undefined {
  const pair = (c.pair ?? {}) as Record<string, unknown>;
  const given = Object.keys(pair).filter((k) => pair[k] !== undefined);
  if (c.pairMode === 'etcd') {
    if (!c.registry) return '--pair-mode etcd needs --registry etcd://host:port (config key registry): the etcd that holds the election';
    const udp = UDP_ONLY_PAIR_KEYS.filter((k) => given.includes(k));
    if (udp.length === 0) return undefined;
    return `--pair-mode etcd does not use ${udp.map(pairSetting).join(', ')}: they set up the UDP pair, which the etcd election replaces; remove them, or drop --pair-mode etcd to run a UDP pair`;
  }
  const missing = ['port', 'peer'].filter((k) => pair[k] === undefined);
  if (missing.length === 0) return undefined;
  if (given.length === 0) {
    if (c.pairMode !== 'udp') return undefined; // no pair asked for: this AS runs alone
    return "--pair-mode udp needs --pair-port (pair.port) and --pair-peer (pair.peer), this node's UDP port and the sibling's host:port; without them this AS would run alone. Give both, or drop --pair-mode to run alone";
  }
  const etcdOnly = given.every((k) => !UDP_ONLY_PAIR_KEYS.includes(k)) ? ' (with --pair-mode etcd and --registry, these are used by the etcd election instead)' : '';
  return `a UDP pair needs ${missing.map(pairSetting).join(' and ')} too: ${given.map(pairSetting).join(', ')} ${given.length === 1 ? 'was' : 'were'} given, but without ${missing.length === 1 ? 'it' : 'them'} this AS would run alone${etcdOnly}. Give ${missing.length === 1 ? 'it' : 'them'}, or remove the pair settings to run alone`;
}

const LOOPBACK = '127.0.0.1';

/** Whether two bind addresses share a TCP port: the same address, or a wildcard that covers the other. */
function bindsOverlap(a: string, b: string): boolean {
  const norm = (h: string): string => h.replace(/^\[|\]$/g, '').toLowerCase();
  const [x, y] = [norm(a), norm(b)];
  if (x === y) return true;
  const any6 = (h: string): boolean => h === '::' || h === '::0' || h === '0:0:0:0:0:0:0:0';
  // `::` takes IPv4 too (dual stack); 0.0.0.0 takes every IPv4 address and name, not IPv6 ones.
  if (any6(x) || any6(y)) return true;
  if (x === '0.0.0.0') return isIP(y) !== 6;
  if (y === '0.0.0.0') return isIP(x) !== 6;
  return false;
}

/**
 * The TCP ports of one AS's own settings that would collide (two of client, control, admin and
 * HTTP with the same non-zero number on overlapping addresses): refused before anything listens,
 * where the bind would blame "another process". The pair port is UDP and may share a number.
 */
export function portClash(c: AsConfig): string | undefined {
  const clientHost = c.clientHost ?? LOOPBACK;
  const ports = [
    { flag: '--port', port: c.port, host: clientHost },
    { flag: '--control-port', port: c.controlPort, host: c.controlHost ?? LOOPBACK },
    { flag: '--admin-port', port: c.adminPort, host: c.adminHost ?? LOOPBACK },
    { flag: '--http-port', port: c.httpPort, host: c.httpHost ?? clientHost },
  ];
  for (let i = 0; i < ports.length; i++) {
    for (let j = i + 1; j < ports.length; j++) {
      const [a, b] = [ports[i], ports[j]];
      if (a.port === undefined || a.port === 0 || a.port !== b.port || !bindsOverlap(a.host, b.host)) continue;
      const where = a.host === b.host ? a.host : `${a.host} and ${b.host}`;
      return `${a.flag} and ${b.flag} are both ${a.port} (on ${where}): each port of an AS needs its own number (0 picks a free one)`;
    }
  }
  return undefined;
}

/** The ApplicationServer the settings describe, its admin surface, and the static FS list. */
async function startAs(c: AsConfig, strategy: Awaited<ReturnType<typeof loadStrategy>>): Promise<void> {
  const logger = createLogger('application-server', c.logLevel);
  const unread = unreadEnvironment();
  if (unread.length > 0) logger.warn({ variables: unread }, 'these SWITCHBOARD_* variables are not read (only SWITCHBOARD_LOG_LEVEL is); use flags or --config');
  const secret = secretReader(logger);
  const joinSecret = secret(c.joinSecretFile, 'join secret');
  const adminToken = secret(c.adminTokenFile, 'admin token');
  const adminHost = c.adminHost ?? '127.0.0.1';
  if (c.adminPort !== undefined && !adminToken && !isLoopback(adminHost)) {
    throw new ConfigError(`the admin port may bind ${adminHost} only with --admin-token-file; without a token it stays on loopback`);
  }
  const tls = loadTlsFiles(c.tls ?? {});
  const { joinSecretFile: _j, clientSecretFile, adminTokenFile: _a, adminHost: _h, adminPort: _p, functionServers, logLevel: _l, pair: _pair, tls: _tls, pairTtlSeconds: _ttl, registry: _r, registryPrefix: _rp, ...api } = c;
  const as = new ApplicationServer({
    ...api,
    strategy,
    joinSecret,
    clientSecret: secret(clientSecretFile, 'client secret'),
    tls,
    pair: pairOptions(c, secret),
    pairEtcd: pairEtcdOptions(c),
    registry: c.registry ? { endpoints: parseRegistryUrl(c.registry), prefix: c.registryPrefix } : undefined,
    logger,
  });
  if (!joinSecret && !c.tls?.caFile) logger.warn('no join secret: function servers are taken from loopback only (set --join-secret-file for FSs on other machines)');
  // Built before the AS starts: building it takes the event loop for a moment, which must not
  // fall inside the pair's negotiation.
  const admin = c.adminPort !== undefined ? new AdminServer(as, logger, { processMetrics: true, token: adminToken, tls }) : undefined;
  // The signal handlers come first: a SIGTERM during start-up waits for it, then stops cleanly.
  let ready: Promise<void> = Promise.resolve();
  const stop = async (signal: string): Promise<void> => {
    logger.info({ signal }, 'stopping');
    await ready.catch(() => undefined);
    await admin?.close();
    await as.stop();
    process.exit(0);
  };
  onStopSignals(logger, stop);
  ready = (async () => {
    await admin?.prepare();
    await as.start();
    // The original PoolEndPointList: FSs dialled without waiting for their HELLO.
    for (const f of functionServers ?? []) as.addFunctionServer(f);
    if (admin) {
      const adminPort = await admin.listen(c.adminPort ?? 0, adminHost);
      // One message whatever the token, so scripts can wait for it; the fields say how it is guarded.
      logger.info({ adminPort, adminHost, token: adminToken !== undefined, access: adminToken ? 'token required (all but /healthz, /readyz and the dashboard files)' : 'loopback only (no --admin-token-file)' }, 'admin surface listening');
    }
  })();
  await ready;
}

/**
 * `host` (`--host`, or `host:` in a file) binds the client and control ports together: within its
 * own layer it fills in clientHost and controlHost where that layer does not set them, so a typed
 * `--host` beats a file's clientHost as flags do, and `--client-host` typed beside it wins. It is
 * then dropped: the settings name each port's host. The admin port stays on its own `--admin-host`
 * (docs/security.md).
 */
function foldHost(layer: Record<string, unknown>): Record<string, unknown> {
  const { host, ...rest } = layer;
  if (host === undefined) return rest;
  return { ...rest, clientHost: rest.clientHost ?? host, controlHost: rest.controlHost ?? host };
}

export function asCommand(): Command {
  return new Command('as')
    .description('start an application server: clients call it, function servers register with it')
    .option('--config <file>', 'YAML or JSON settings under the API option names; flags given here override it')
    .option('--print-config', 'print the settings (defaults, then --config, then flags) as JSON and exit')
    .option('--client-host <address>', 'address the client port binds', '127.0.0.1')
    .option('--host <address>', 'address the client and control ports bind (0.0.0.0 or :: for every address); --client-host and --control-host override it')
    .option('--control-host <address>', 'address the control port binds (keep it on loopback unless FSs prove the join secret)', '127.0.0.1')
    .option('--admin-host <address>', 'address the admin port binds (beyond loopback only with --admin-token-file)', '127.0.0.1')
    .option('--http-host <address>', 'address the HTTP ingress binds (default: --client-host)')
    .option('--port <port>', 'client port (0 picks a free one)', parsePort, 7100)
    .option('--control-port <port>', 'port function servers register on', parsePort, 7101)
    .option('--admin-port <port>', 'HTTP admin port: probes, /functionservers, /metrics, /events and the dashboard (off when absent)', parsePort)
    .option('--http-port <port>', 'HTTP ingress: POST /v1/call/:service with a JSON body (off when absent)', parsePort)
    .option('--advertise-host <address>', 'host clients should dial to reach this AS (named by a standby in NOT_ACTIVE); default: the client host, or the first non-loopback address when that is 0.0.0.0 or ::')
    .option('--client-advertise-host <address>', 'older name for --advertise-host')
    .option('--function-server <host:port...>', 'FSs to dial at start without waiting for their HELLO (a static pool list)', collectEndpoints)
    .option('--join-secret-file <file>', 'shared secret FSs and this AS prove to each other (without it: FSs from loopback only)')
    .option('--client-secret-file <file>', 'secret clients must prove before their first request (without it the client port is open)')
    .option('--admin-token-file <file>', 'bearer token for the admin surface (all but /healthz, /readyz and the dashboard files /, /dashboard.js, /dashboard.css)')
    .option('--tls-cert <file>', 'PEM certificate for the client, control, admin and HTTP ports and pool connections')
    .option('--tls-key <file>', 'PEM key of --tls-cert')
    .option('--tls-ca <file>', 'PEM CA that signs the FSs (mutual TLS on the control port and pool connections)')
    .option('--tls-require-client-cert', 'clients must present a certificate signed by --tls-ca')
    .option('--auth-timeout-ms <ms>', 'a peer must prove itself within this', parseIntIn(10, 600_000), 5000)
    .option('--strategy <name|module>', `how to choose an FS: ${STRATEGY_NAMES.join(', ')}, or the path of a module exporting a strategy (docs/routing.md)`, 'least-loaded')
    .option('--direct-lease-ms <ms>', 'director mode: how long a LOOKUP answer stands; clients renew at half', parseIntIn(100, 86_400_000), 10_000)
    .option('--direct-max-endpoints <n>', 'director mode: most FSs one LOOKUP answer names', parseIntIn(1, 64), 8)
    .option('--load-weight <w>', 'least-loaded: weight of the reported load against requests in flight', parseNumberIn(0, 1000), DEFAULT_LEAST_LOADED.loadWeight)
    .option('--load-refresh-ms <ms>', "the FSs' LOAD period; older than 3 periods is stale", parseIntIn(10, 600_000), 1000)
    .option('--heartbeat-ms <ms>', 'heartbeat period; a peer silent for 3 periods is dead', parseIntIn(0, 600_000), 2000)
    .option('--timeout-ms <ms>', 'deadline for requests that carry none', parseIntIn(1, 3_600_000), 30_000)
    .option('--max-attempts <n>', 'times an idempotent request may be sent in all', parseIntIn(1, 10), 3)
    .option('--hedge-after-ratio <r>', 'send an idempotent request to a second FS after this share of its budget (0 turns it off)', parseFraction, 0.5)
    .option('--pool-size <n>', 'connections kept to each FS', parseIntIn(1, 64), 1)
    .option('--connect-timeout-ms <ms>', 'longest wait for a pool connection to open', parseIntIn(1, 600_000), 3000)
    .option('--reconnect-base-ms <ms>', 'first wait before probing an unavailable FS again; doubles each time', parseIntIn(1, 600_000), 100)
    .option('--reconnect-cap-ms <ms>', 'longest wait between probes of an unavailable FS', parseIntIn(10, 3_600_000), 5000)
    .option('--eject-after-failures <n>', 'failed dials before an FS leaves the available list', parseIntIn(1, 1000), 3)
    .option('--max-body-bytes <n>', 'largest request or response body (8 MiB)', parseIntIn(1, 2 ** 31), DEFAULT_MAX_BODY_BYTES)
    .option('--max-connections <n>', 'client connections accepted at once (lowered to fit the open-file limit)', parseIntIn(1, 1_000_000), 10_000)
    .option('--max-inflight-per-client <n>', 'requests in flight per client connection', parseIntIn(1, 1_000_000), 1024)
    .option('--max-inflight-bytes-per-client <n>', 'request bytes in flight per client; beyond, its reading pauses (16 MiB)', parseIntIn(1, 2 ** 40), 16 * 1024 * 1024)
    .option('--max-inflight-per-fs <n>', 'requests in flight per FS', parseIntIn(1, 1_000_000), 10_000)
    .option('--max-client-buffered-bytes <n>', 'answer bytes held for one client that does not read; beyond, it is closed', parseIntIn(65_536, 2 ** 40), 64 * 1024 * 1024)
    .option('--startup-grace-ms <ms>', 'after start, unknown service keys (requests, LOOKUP, RESOLVE) are answered UNAVAILABLE (retry) rather than SERVICE_NOT_FOUND for this long: FSs may not be back yet (0 turns it off)', parseIntIn(0, 3_600_000), 10_000)
    .option('--client-drain-timeout-ms <ms>', 'on SIGTERM, how long client requests in flight may take to be answered (new ones get UNAVAILABLE)', parseIntIn(0, 3_600_000), 5000)
    .option('--http-drain-timeout-ms <ms>', 'on SIGTERM, how long HTTP ingress requests in flight may take before they get 503', parseIntIn(0, 3_600_000), 5000)
    .option('--client-idle-timeout-ms <ms>', 'close a client connection with nothing in flight and no request for this long (0 keeps it)', parseIntIn(0, 86_400_000), 300_000)
    .option('--max-function-servers <n>', 'FSs the registry holds at once', parseIntIn(1, 100_000), 1000)
    .option('--max-services-per-fs <n>', 'service keys one FS may declare', parseIntIn(1, 65_536), 4096)
    .option('--forget-unavailable-ms <ms>', 'forget a registered FS unavailable this long (0 keeps it)', parseIntIn(0, 86_400_000 * 30), 600_000)
    .option('--allow-fs-host <host...>', 'IPs, CIDR blocks or names HELLOs may ask this AS to dial (default: any with a join secret, loopback without)')
    .option('--max-control-connections <n>', 'control connections held at once', parseIntIn(1, 100_000), 1024)
    .option('--max-control-body-bytes <n>', 'largest control message (1 MiB)', parseIntIn(1, 2 ** 30), 1024 * 1024)
    .option('--outlier-consecutive-failures <n>', 'errors in a row that eject an FS for a while (0 turns it off; default 5)', parseIntIn(0, 1000))
    .option('--outlier-interval-ms <ms>', 'success-rate window (default 10000)', parseIntIn(1, 3_600_000))
    .option('--outlier-base-ejection-ms <ms>', 'first ejection; longer on each repeat (default 30000)', parseIntIn(1, 86_400_000))
    .option('--outlier-max-ejection-ms <ms>', 'longest ejection (default 300000)', parseIntIn(1, 86_400_000))
    .option('--outlier-max-ejection-percent <p>', 'most FSs of a key ejected at once (default 50)', parseNumberIn(0, 100))
    .option('--outlier-success-rate-min-requests <n>', 'answers in a window before an FS is judged by success rate (default 100)', parseIntIn(1, 1_000_000))
    .option('--outlier-success-rate-min-hosts <n>', 'FSs with enough answers before any is judged (default 3)', parseIntIn(0, 10_000))
    .option('--outlier-success-rate-stdev-factor <f>', 'ejected below mean minus this many deviations (default 1.9)', parseNumberIn(0, 100))
    .option('--outlier-min-timeout-ms <ms>', 'a timeout counts against an FS only if the request had this long (default 1000)', parseIntIn(0, 86_400_000))
    .option('--pair-port <port>', 'UDP port of the active/standby pair (with --pair-peer)', parsePort)
    .option('--pair-host <address>', 'address the pair port binds (default: --control-host)')
    .option('--pair-peer <host:port>', "the sibling AS's pair endpoint", parseEndpoint)
    .option('--pair-secret-file <file>', 'shared secret that signs every pair datagram (HMAC-SHA256)')
    .option('--pair-insecure', 'run a pair without a secret (anyone who reaches the pair port can forge datagrams)')
    .option('--priority <n>', 'pair priority, 1-255: wins negotiations and takes over sooner (default 100)', parseIntIn(1, 255))
    .option('--advert-ms <ms>', "the active's advert interval; the standby takes over after 3 missed adverts plus a skew (default 200)", parseIntIn(10, 60_000))
    .option('--preempt', 'take the active role back from a sibling of lower priority (off: no flapping)')
    .option('--node-id <hex16>', 'this AS on the pair wire, 16 hex digits (default random)')
    .option('--negotiation-timeout-ms <ms>', 'how long a starting AS listens for its sibling before taking the active role (default 5 adverts)', parseIntIn(1, 600_000))
    .option('--max-clock-skew-ms <ms>', 'pair datagrams stamped further from this clock are dropped (default 60000)', parseIntIn(1, 86_400_000))
    .option('--on-active <command>', 'shell command run when this AS becomes active (e.g. to move a virtual IP)')
    .option('--on-standby <command>', 'shell command run when this AS becomes standby')
    .addOption(new Option('--pair-mode <mode>', 'how the pair picks its active: udp (--pair-port, --pair-peer) or etcd (an election on --registry; strict mutual exclusion)').choices(['udp', 'etcd']))
    .option('--pair-ttl-seconds <s>', 'etcd election lease TTL: a dead active is replaced after about this long', parseIntIn(1, 3600), 2)
    .option('--registry <etcd://host:port,...>', 'etcd endpoints (etcd://, http:// or bare host:port): FSs are found there and this AS registers its client endpoint (docs/registry.md); with --pair-mode etcd the election is held there too', parseRegistry)
    .option('--registry-prefix <prefix>', 'key prefix in etcd', DEFAULT_REGISTRY_PREFIX)
    .addOption(new Option('--log-level <level>', 'pino level (default info, or SWITCHBOARD_LOG_LEVEL)').choices(LOG_LEVELS))
    .action(async (_o, cmd: Command) => {
      const settings = resolveSettings(cmd, asConfigSchema, AS_FLAGS, { fileSchema: asFileSchema, fold: foldHost });
      const clash = portClash(settings) ?? pairProblem(settings);
      if (clash !== undefined) throw new ConfigError(clash);
      // Loaded (and its factory called) here, so --print-config refuses a module that start would refuse.
      const strategy = await loadStrategy(settings.strategy ?? 'least-loaded');
      if (cmd.opts().printConfig) {
        process.stdout.write(`${JSON.stringify(settings, null, 2)}\n`);
        return;
      }
      await startAs(settings, strategy);
    });
}
