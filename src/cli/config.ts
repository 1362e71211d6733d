import { readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { LOG_LEVELS, logLevelFromEnv } from '../common/logger.js';
import { ConfigError } from '../protocol/index.js';
import { registryUrlProblem } from './parse.js';

const port = z.number().int().min(0).max(65535);
const endpoint = z.strictObject({ host: z.string().min(1).max(253), port: z.number().int().min(1).max(65535) });
const ms = (max = 86_400_000) => z.number().int().min(0).max(max);
const count = (max = 10_000_000) => z.number().int().min(1).max(max);
const tls = z.strictObject({ certFile: z.string().optional(), keyFile: z.string().optional(), caFile: z.string().optional(), requireClientCert: z.boolean().optional() });
const logLevel = z.enum(LOG_LEVELS);
/** etcd endpoints, comma-separated (`etcd://127.0.0.1:2379`); checked as `--registry` is. */
const registryUrl = z
  .string()
  .min(1)
  .superRefine((v, ctx) => {
    const problem = registryUrlProblem(v);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

/**
 * The pair group. `port` and `peer` are optional here: a UDP pair needs both, an etcd pair
 * (`pairMode: etcd`) takes only `nodeId`, `onActive` and `onStandby`; as-command's pairProblem
 * checks that, naming the flags.
 */
const pairSchema = z.strictObject({
  port: port.optional(),
  host: z.string().optional(),
  peer: endpoint.optional(),
  secretFile: z.string().optional(),
  insecure: z.boolean().optional(),
  priority: z.number().int().min(1).max(255).optional(),
  advertMs: count(60_000).optional(),
  preempt: z.boolean().optional(),
  nodeId: z.string().regex(/^[0-9a-f]{16}$/).optional(),
  negotiationTimeoutMs: count(600_000).optional(),
  maxClockSkewMs: count(86_400_000).optional(),
  onActive: z.string().optional(),
  onStandby: z.string().optional(),
});

/**
 * `switchboard as --config FILE`: the API's option names (ApplicationServerOptions), plus the
 * CLI's own (admin, HTTP ingress, secret files, the static FS list). Unknown keys are refused.
 */
export const asConfigSchema = z.strictObject({
  /** Binds the client and control ports together, as `--host` does; clientHost and controlHost beside it win. */
  host: z.string().optional(),
  clientHost: z.string().optional(),
  controlHost: z.string().optional(),
  adminHost: z.string().optional(),
  httpHost: z.string().optional(),
  port: port.optional(),
  controlPort: port.optional(),
  adminPort: port.optional(),
  httpPort: port.optional(),
  clientAdvertiseHost: z.string().optional(),
  joinSecretFile: z.string().optional(),
  clientSecretFile: z.string().optional(),
  adminTokenFile: z.string().optional(),
  tls: tls.optional(),
  authTimeoutMs: ms(600_000).optional(),
  /** A strategy's name, or the path of a module that exports one (relative to the config file). */
  strategy: z
    .string()
    .min(1)
    .max(4096)
    .refine((v) => ['least-loaded', 'round-robin', 'consistent-hash'].includes(v) || /[/\\]|\.[cm]?js$/.test(v), 'least-loaded, round-robin, consistent-hash, or the path of a module (./my-strategy.mjs)')
    .optional(),
  directLeaseMs: z.number().int().min(100).max(86_400_000).optional(),
  directMaxEndpoints: z.number().int().min(1).max(64).optional(),
  heartbeatMs: ms(600_000).optional(),
  defaultTimeoutMs: count(3_600_000).optional(),
  poolSize: count(64).optional(),
  connectTimeoutMs: count(600_000).optional(),
  reconnectBaseMs: count(600_000).optional(),
  reconnectCapMs: count(3_600_000).optional(),
  ejectAfterFailures: count(1000).optional(),
  maxConnections: count(1_000_000).optional(),
  maxInflightPerClient: count(1_000_000).optional(),
  maxInflightPerFs: count(1_000_000).optional(),
  maxInflightBytesPerClient: count(2 ** 40).optional(),
  maxClientBufferedBytes: count(2 ** 40).optional(),
  clientIdleTimeoutMs: ms().optional(),
  clientDrainTimeoutMs: ms(3_600_000).optional(),
  startupGraceMs: ms(3_600_000).optional(),
  httpDrainTimeoutMs: ms(3_600_000).optional(),
  httpKeepAliveTimeoutMs: ms(3_600_000).optional(),
  maxAttempts: count(10).optional(),
  hedgeAfterRatio: z.number().min(0).lt(1).optional(),
  loadRefreshMs: count(600_000).optional(),
  loadWeight: z.number().min(0).max(1000).optional(),
  maxBodyBytes: count(2 ** 31).optional(),
  maxFunctionServers: count(100_000).optional(),
  maxServicesPerFs: count(65_536).optional(),
  forgetUnavailableAfterMs: ms(86_400_000 * 30).optional(),
  allowedFsHosts: z.array(z.string().min(1)).max(1000).optional(),
  maxControlConnections: count(100_000).optional(),
  maxControlBodyBytes: count(2 ** 30).optional(),
  outlier: z
    .strictObject({
      consecutiveFailures: z.number().int().min(0).max(1000).optional(),
      intervalMs: count(3_600_000).optional(),
      baseEjectionMs: count(86_400_000).optional(),
      maxEjectionMs: count(86_400_000).optional(),
      maxEjectionPercent: z.number().min(0).max(100).optional(),
      successRateMinRequests: count(1_000_000).optional(),
      successRateMinHosts: z.number().int().min(0).max(10_000).optional(),
      successRateStdevFactor: z.number().min(0).max(100).optional(),
      minTimeoutMs: ms().optional(),
    })
    .optional(),
  pair: pairSchema.optional(),
  /** How the pair picks its active: udp (the `pair` group) or etcd (an election on `registry`). */
  pairMode: z.enum(['udp', 'etcd']).optional(),
  /** The etcd election's lease TTL in seconds (pairMode etcd; default 2). */
  pairTtlSeconds: z.number().int().min(1).max(3600).optional(),
  /** etcd endpoints, comma-separated (`etcd://127.0.0.1:2379`). */
  registry: registryUrl.optional(),
  /** Key prefix in etcd (default /switchboard). */
  registryPrefix: z.string().min(1).optional(),
  /** The original PoolEndPointList: FSs the AS dials without waiting for their HELLO. */
  functionServers: z
    .array(z.strictObject({ host: z.string().min(1).max(253), port: z.number().int().min(1).max(65535), name: z.string().max(128).optional(), poolType: z.number().int().min(0).max(65535).optional(), standby: z.boolean().optional() }))
    .max(10_000)
    .optional(),
  logLevel: logLevel.optional(),
});
export type AsConfig = z.infer<typeof asConfigSchema>;
/** A file may hold half of the pair group (the other half from flags); the whole is checked after merging (as-command's pairProblem). */
export const asFileSchema = asConfigSchema;

/** `switchboard fs --config FILE`: the API's option names (FunctionServerOptions), plus the CLI's own. */
export const fsConfigSchema = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  plugins: z.array(z.string().min(1)).min(1).max(1000).optional(),
  host: z.string().optional(),
  port: port.optional(),
  advertiseHost: z.string().optional(),
  poolType: z.number().int().min(0).max(65535).optional(),
  standby: z.boolean().optional(),
  weight: z.number().int().min(1).max(1000).optional(),
  /** One AS's control endpoint; a file may give it, applicationServers, or both (all are used). */
  applicationServer: endpoint.optional(),
  applicationServers: z.array(endpoint).max(100).optional(),
  refreshMs: count(600_000).optional(),
  heartbeatMs: ms(600_000).optional(),
  maxInflight: count(1_000_000).optional(),
  maxOneWayInflight: count(1_000_000).optional(),
  defaultTimeoutMs: ms(3_600_000).optional(),
  drainTimeoutMs: ms(3_600_000).optional(),
  reconnectBaseMs: count(600_000).optional(),
  reconnectCapMs: count(3_600_000).optional(),
  maxBodyBytes: count(2 ** 31).optional(),
  joinSecretFile: z.string().optional(),
  tls: tls.optional(),
  authTimeoutMs: count(600_000).optional(),
  maxConnections: count(100_000).optional(),
  pluginStopTimeoutMs: count(600_000).optional(),
  validateResponses: z.boolean().optional(),
  watch: z.boolean().optional(),
  /** `--busy`: keep the event loop busy this fraction of the time (a busier machine, for demos). */
  busy: z.number().min(0).lt(1).optional(),
  /** etcd endpoints, comma-separated (`etcd://127.0.0.1:2379`): the FS registers there (docs/registry.md). */
  registry: registryUrl.optional(),
  /** Key prefix in etcd (default /switchboard). */
  registryPrefix: z.string().min(1).optional(),
  /** TTL of the FS's registry lease in seconds (default 10): a dead FS leaves the registry after about this long. */
  registryTtlSeconds: z.number().int().min(1).max(3600).optional(),
  logLevel: logLevel.optional(),
});
export type FsConfig = z.infer<typeof fsConfigSchema>;

/**
 * Reads and checks a YAML or JSON file (by its extension; YAML otherwise). A bad field is named by
 * its path. File names in it (secrets, certificates, plugin paths) are relative to the file's folder.
 */
export function loadConfigFile<S extends z.ZodType>(path: string, schema: S, hints: Record<string, string> = {}): z.infer<S> {
  return resolvePaths(readConfigFile(path, schema, hints), dirname(resolve(path)));
}

/** A zod issue as one line: the field's path and what is wrong; an unknown key a flag's name explains gets the right key. */
function issueLine(issue: z.core.$ZodIssue, hints: Record<string, string>): string {
  const where = issue.path.length ? issue.path.join('.') : '(top)';
  const known = issue.code === 'unrecognized_keys' && issue.path.length === 0 ? issue.keys.filter((k) => Object.hasOwn(hints, k)).map((k) => hints[k]) : [];
  return `${where}: ${issue.message}${known.length > 0 ? ` (${known.join('; ')})` : ''}`;
}

function readConfigFile<S extends z.ZodType>(path: string, schema: S, hints: Record<string, string>): z.infer<S> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message}`, { cause: err });
  }
  if (raw === null || raw === undefined) raw = {};
  const r = schema.safeParse(raw);
  if (!r.success) {
    const lines = r.error.issues.slice(0, 10).map((i) => issueLine(i, hints));
    throw new ConfigError(`config file ${path} has a bad field: ${lines.join('; ')}`);
  }
  return r.data;
}

const PATH_KEYS = ['joinSecretFile', 'clientSecretFile', 'adminTokenFile', 'secretFile', 'certFile', 'keyFile', 'caFile'];

/** Makes the file names in a config absolute, from the config file's folder. */
function resolvePaths<T>(cfg: T, base: string): T {
  const walk = (v: unknown, key: string): unknown => {
    if (typeof v === 'string' && PATH_KEYS.includes(key)) return isAbsolute(v) ? v : resolve(base, v);
    if (key === 'plugins' && Array.isArray(v)) return v.map((p: string) => (p.startsWith('.') ? resolve(base, p) : p));
    if (key === 'strategy' && typeof v === 'string' && v.startsWith('.')) return resolve(base, v);
    if (isPlain(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]));
    return v;
  };
  return walk(cfg, '') as T;
}

/**
 * The order, lowest first: built-in defaults (the flags' defaults), the config file, then the flags
 * given on the command line. `SWITCHBOARD_LOG_LEVEL` only fills in a log level that neither the file
 * nor a flag sets; no other variable is read.
 */
export function merge<T extends object>(defaults: Partial<T>, file: Partial<T>, given: Partial<T>): Partial<T> {
  const out: Record<string, unknown> = { ...defaults };
  for (const layer of [file, given] as Record<string, unknown>[]) {
    for (const [k, v] of Object.entries(layer)) {
      if (v === undefined) continue;
      const prev = out[k];
      out[k] = isPlain(prev) && isPlain(v) ? { ...prev, ...v } : v;
    }
  }
  return out as Partial<T>;
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The values of the options the user typed (not defaults), by their commander names. */
export function givenFlags(cmd: Command): Record<string, unknown> {
  const opts = cmd.opts();
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(opts)) if (cmd.getOptionValueSource(k) === 'cli') out[k] = opts[k];
  return out;
}

/** The flags' defaults, by their commander names. */
export function defaultFlags(cmd: Command): Record<string, unknown> {
  const opts = cmd.opts();
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(opts)) if (cmd.getOptionValueSource(k) === 'default') out[k] = opts[k];
  return out;
}

/** How a command's flags (commander's camel-case names) map onto config keys; a dot nests. */
export type FlagMap = Record<string, string>;

/** The only flags of `as` and `fs` without a config key: they say where the settings come from and what to do with them. */
export const FLAGS_WITHOUT_KEY = ['config', 'printConfig'];

/** Flag values as a config object, under the keys `map` gives (flags not in the map are left out). */
export function flagsToConfig(flags: Record<string, unknown>, map: FlagMap): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [flag, value] of Object.entries(flags)) {
    const key = map[flag];
    if (key === undefined || value === undefined) continue;
    const [head, sub] = key.split('.');
    if (sub === undefined) out[head] = value;
    else out[head] = { ...(out[head] as Record<string, unknown> | undefined), [sub]: value };
  }
  return out;
}

/**
 * For an unknown key in a config file that is a flag's own name (`timeoutMs` for `--timeout-ms`),
 * the key that flag's setting has instead.
 */
export function configKeyHints(cmd: Command, map: FlagMap): Record<string, string> {
  const hints: Record<string, string> = {};
  for (const o of cmd.options) {
    const name = o.attributeName();
    const key = map[name];
    if (key !== undefined && key !== name && o.long) hints[name] = `the key for ${o.long} is ${key}`;
  }
  return hints;
}

export interface SettingsOptions {
  /** The schema a config file is checked against, when it may hold less than the whole (default: the schema). */
  fileSchema?: z.ZodType;
  /**
   * Rewrites one layer (the defaults, the file, the flags typed) before the layers are merged: a key
   * that stands for others (`host` for clientHost and controlHost) fills them in within its own layer,
   * so that a flag still beats the file.
   */
  fold?: (layer: Record<string, unknown>) => Record<string, unknown>;
}

/**
 * A command's settings: its flags' defaults, then the `--config` file, then the flags typed on the
 * command line; the result is checked against the schema again (a file may hold half of a group
 * whose other half came from a flag). A log level that none of them sets comes from
 * SWITCHBOARD_LOG_LEVEL (checked), else `info`, so the result holds every setting the command runs with.
 */
export function resolveSettings<S extends z.ZodType>(cmd: Command, schema: S, map: FlagMap, opts: SettingsOptions = {}): z.infer<S> {
  const fold = opts.fold ?? ((layer) => layer);
  const configFile = cmd.opts().config as string | undefined;
  const file = configFile ? (loadConfigFile(configFile, opts.fileSchema ?? schema, configKeyHints(cmd, map)) as Record<string, unknown>) : {};
  const merged = merge(fold(flagsToConfig(defaultFlags(cmd), map)), fold(file), fold(flagsToConfig(givenFlags(cmd), map))) as Record<string, unknown>;
  if (Object.hasOwn(schema instanceof z.ZodObject ? schema.shape : {}, 'logLevel')) merged.logLevel ??= logLevelFromEnv() ?? 'info';
  const r = schema.safeParse(merged);
  if (!r.success) {
    const lines = r.error.issues.slice(0, 10).map((i) => `${i.path.length ? i.path.join('.') : '(top)'}: ${i.message}`);
    throw new ConfigError(`the settings${configFile ? ` (from ${configFile} and the flags)` : ''} have a bad field: ${lines.join('; ')}`);
  }
  return r.data;
}

/**
 * `SWITCHBOARD_*` variables this program does not read: named at start, so that nobody believes one
 * took effect. Only SWITCHBOARD_LOG_LEVEL is read.
 */
export function unreadEnvironment(env: NodeJS.ProcessEnv = process.env): string[] {
  return Object.keys(env).filter((k) => k.startsWith('SWITCHBOARD_') && k !== 'SWITCHBOARD_LOG_LEVEL');
}
