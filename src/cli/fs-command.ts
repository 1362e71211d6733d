import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Command, Option } from 'commander';
import { loadTlsFiles, readSecretFile } from '../security/index.js';
import { LOG_LEVELS, createLogger } from '../common/logger.js';
import { FunctionServer } from '../function-server/index.js';
import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { isPathSpec, loadPluginModules, pluginPath } from '../plugins/index.js';
import { ConfigError, DEFAULT_MAX_BODY_BYTES } from '../protocol/index.js';
import { fsConfigSchema, resolveSettings, unreadEnvironment, type FlagMap, type FsConfig } from './config.js';
import { parseEndpoints, parseFraction, parseIntIn, parsePort, parseRegistry } from './parse.js';
import { DEFAULT_REGISTRY_PREFIX, parseRegistryUrl } from '../discovery/registry-url.js';
import { onStopSignals } from './signals.js';

export const FS_FLAGS: FlagMap = {
  ...Object.fromEntries(Object.keys(fsConfigSchema.shape).map((k) => [k, k])),
  as: 'applicationServers',
  timeoutMs: 'defaultTimeoutMs',
  tlsCert: 'tls.certFile',
  tlsKey: 'tls.keyFile',
  tlsCa: 'tls.caFile',
};

/** The etcd lease TTL of an FS's registration when none is given (DEFAULT_LEASE_TTL_SECONDS of the registry, which loads etcd3). */
const DEFAULT_REGISTRY_TTL_SECONDS = 10;

/**
 * `applicationServer` (one AS, the API's other option name) joins `applicationServers` within its
 * own layer, so that `--as` typed on the command line replaces the file's ASs as flags do.
 */
function foldApplicationServer(layer: Record<string, unknown>): Record<string, unknown> {
  const { applicationServer, ...rest } = layer;
  if (applicationServer === undefined) return rest;
  return { ...rest, applicationServers: [applicationServer, ...((rest.applicationServers as unknown[] | undefined) ?? [])] };
}

/**
 * Keeps the event loop busy for `fraction` of every 20 ms: a stand-in for a machine that has
 * other work, so that its reported load (and its answers) are really slower.
 */
function burn(fraction: number): void {
  const slice = 20;
  const t = setInterval(() => {
    const until = performance.now() + slice * fraction;
    while (performance.now() < until) {
      /* busy on purpose */
    }
  }, slice);
  t.unref();
}

/**
 * Reloads the plugin modules when a watched file changes (debounced): the new code serves new
 * requests, running ones finish on the old. A module that fails to load or start changes nothing:
 * the old code keeps serving and the log says why.
 */
function watchPlugins(fs: FunctionServer, specs: string[], logger: ReturnType<typeof createLogger>): void {
  const files = specs.filter(isPathSpec).map((s) => pluginPath(s));
  if (files.length === 0) {
    logger.warn('--watch: no plugin is given by path; bundled plugins and packages are not watched');
    return;
  }
  let version = 0;
  let timer: NodeJS.Timeout | undefined;
  let running = Promise.resolve();
  const reload = (): void => {
    running = running.then(async () => {
      try {
        const plugins = await loadPluginModules(specs, process.cwd(), ++version);
        await fs.replacePlugins(plugins);
      } catch (err) {
        const e = err as Error & { code?: string };
        logger.error({ err: e.message, code: e.code }, 'plugin reload failed; the code loaded before keeps serving');
      }
    });
  };
  // Directories, not files: an editor that saves by writing a new file and renaming it would end a
  // watch on the old file.
  const byDir = new Map<string, Set<string>>();
  for (const f of files) {
    const names = byDir.get(dirname(f)) ?? new Set<string>();
    names.add(basename(f));
    byDir.set(dirname(f), names);
  }
  for (const [dir, names] of byDir) {
    watch(dir, (_event, name) => {
      if (name !== null && !names.has(String(name))) return;
      clearTimeout(timer);
      timer = setTimeout(reload, 150);
    }).unref();
  }
  logger.info({ files }, 'watching plugin modules; a change reloads them');
}

/** Unique across containers too, where every process may be pid 1. */
function defaultName(): string {
  const host = hostname().replace(/[^A-Za-z0-9.-]/g, '').slice(0, 40) || 'host';
  return `fs-${host}-${process.pid}-${randomBytes(2).toString('hex')}`;
}

async function startFs(c: FsConfig): Promise<void> {
  const logger = createLogger('function-server', c.logLevel);
  const unread = unreadEnvironment();
  if (unread.length > 0) logger.warn({ variables: unread }, 'these SWITCHBOARD_* variables are not read (only SWITCHBOARD_LOG_LEVEL is); use flags or --config');
  if (!c.plugins || c.plugins.length === 0) throw new ConfigError('no plugins: give --plugins <module...> or a plugins: list in the --config file');
  if (!c.name) throw new ConfigError('no name: give --name or name: in the --config file');
  const specs = c.plugins;
  const plugins = await loadPluginModules(specs);
  let joinSecret: Buffer | undefined;
  if (c.joinSecretFile) {
    const r = readSecretFile(c.joinSecretFile, 'join secret');
    if (r.warning) logger.warn(r.warning);
    joinSecret = r.secret;
  }
  const { plugins: _p, joinSecretFile: _j, tls, watch: watching, logLevel: _l, busy, name, registry, registryPrefix, registryTtlSeconds, ...api } = c;
  if (!registry && !api.applicationServers?.length) logger.warn('no --as and no --registry: this FS waits to be added by address (switchboard as --function-server)');
  const fs = new FunctionServer({
    ...api,
    name,
    plugins,
    joinSecret,
    tls: loadTlsFiles(tls ?? {}),
    registry: registry ? { endpoints: parseRegistryUrl(registry), prefix: registryPrefix, ttlSeconds: registryTtlSeconds } : undefined,
    logger,
  });
  // The signal handlers come first: a SIGTERM during start-up waits for it, then stops cleanly.
  let ready: Promise<unknown> = Promise.resolve();
  const stop = async (signal: string): Promise<void> => {
    logger.info({ signal }, 'stopping');
    await ready.catch(() => undefined);
    await fs.stop();
    process.exit(0);
  };
  onStopSignals(logger, stop);
  ready = fs.start();
  await ready;
  if (busy) burn(busy);
  if (watching) watchPlugins(fs, specs, logger);
}

export function fsCommand(): Command {
  return new Command('fs')
    .description('start a function server that hosts plugins and registers with an application server')
    .option('--config <file>', 'YAML or JSON settings under the API option names; flags given here override it')
    .option('--print-config', 'print the settings (defaults, then --config, then flags) as JSON and exit')
    .option('--plugins <module...>', 'plugin modules: paths to built .js files, package names (looked up from the working directory), or the bundled echo and weather')
    .option('--as <host:port,...>', 'the control endpoints of the application servers to register with (all of a pair, or several); not needed with --registry', parseEndpoints)
    .option('--registry <etcd://host:port,...>', 'register in etcd (etcd://, http:// or bare host:port) instead of (or as well as) with --as: ASs watching it dial this FS (docs/registry.md)', parseRegistry)
    .option('--registry-prefix <prefix>', 'key prefix in etcd', DEFAULT_REGISTRY_PREFIX)
    .option('--registry-ttl-seconds <s>', 'lease TTL of the registration: a dead FS leaves after about this long', parseIntIn(1, 3600), DEFAULT_REGISTRY_TTL_SECONDS)
    .option('--host <address>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'data port the AS connects to (0 picks a free one)', parsePort, 7200)
    .option('--advertise-host <address>', 'host the AS dials, when it differs from --host')
    .addOption(new Option('--name <name>', 'unique name; the AS uses it as the FS id').default(defaultName(), 'fs-<hostname>-<pid>-<random>'))
    .option('--join-secret-file <file>', 'shared secret this FS and the AS prove to each other (without it: pool connections from loopback only)')
    .option('--tls-cert <file>', 'PEM certificate for the data port and the control link')
    .option('--tls-key <file>', 'PEM key of --tls-cert')
    .option('--tls-ca <file>', 'PEM CA that signs the ASs (mutual TLS)')
    .option('--auth-timeout-ms <ms>', 'a peer must prove itself within this', parseIntIn(1, 600_000), 5000)
    .option('--max-connections <n>', 'pool connections held at once', parseIntIn(1, 100_000), 1024)
    .option('--pool-type <n>', 'pool type this FS belongs to (0 = default pool)', parseIntIn(0, 65535), 0)
    .option('--standby', 'serve a key only while no active FS for it is available', false)
    .option('--weight <n>', 'worth against FSs of weight 1, 1 to 1000: the share under round-robin and consistent-hash, a divisor of the cost under least-loaded', parseIntIn(1, 1000), 1)
    .option('--refresh-ms <ms>', 'LOAD report period', parseIntIn(10, 600_000), 1000)
    .option('--heartbeat-ms <ms>', 'heartbeat period', parseIntIn(0, 600_000), 2000)
    .option('--max-inflight <n>', 'requests in flight before OVERLOADED', parseIntIn(1, 1_000_000), 10_000)
    .option('--max-one-way-inflight <n>', 'one-way requests running at once before new ones are dropped (default: half of --max-inflight)', parseIntIn(1, 1_000_000))
    .option('--timeout-ms <ms>', 'deadline for requests that carry none', parseIntIn(0, 3_600_000), 30_000)
    .option('--drain-timeout-ms <ms>', 'longest wait for in-flight requests on SIGTERM', parseIntIn(0, 3_600_000), 30_000)
    .option('--reconnect-base-ms <ms>', 'first wait before registering again after the control link drops', parseIntIn(1, 600_000), 200)
    .option('--reconnect-cap-ms <ms>', 'longest wait between registration attempts', parseIntIn(1, 3_600_000), 10_000)
    .option('--max-body-bytes <n>', 'largest request or response body (8 MiB)', parseIntIn(1, 2 ** 31), DEFAULT_MAX_BODY_BYTES)
    .option('--plugin-stop-timeout-ms <ms>', "longest wait for a plugin's onStop", parseIntIn(1, 600_000), 5000)
    .option('--validate-responses', "check each answer against its service's contract too (for tests and staging)", false)
    .option('--watch', 'reload plugin modules given by path when their file changes, without dropping requests', false)
    .option('--busy <fraction>', 'simulate a busier machine: keep the event loop busy this fraction of the time, 0 to 0.99', parseFraction, 0)
    .addOption(new Option('--log-level <level>', 'pino level (default info, or SWITCHBOARD_LOG_LEVEL)').choices(LOG_LEVELS))
    .action(async (_o, cmd: Command) => {
      const settings = resolveSettings(cmd, fsConfigSchema, FS_FLAGS, { fold: foldApplicationServer });
      if (cmd.opts().printConfig) {
        process.stdout.write(`${JSON.stringify(settings, null, 2)}\n`);
        return;
      }
      await startFs(settings);
    });
}
