import { pino, type Logger } from 'pino';
import { ConfigError } from '../protocol/errors.js';

export type { Logger };

/** The levels `--log-level`, a config file's `logLevel` and SWITCHBOARD_LOG_LEVEL take. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

/**
 * The level SWITCHBOARD_LOG_LEVEL names, or undefined when it is unset or empty. A value that is
 * not a level is refused with the list of levels (pino's own message names none).
 */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevel | undefined {
  const value = env.SWITCHBOARD_LOG_LEVEL;
  if (value === undefined || value === '') return undefined;
  if (!isLogLevel(value)) throw new ConfigError(`SWITCHBOARD_LOG_LEVEL=${value} is not a log level; use one of ${LOG_LEVELS.join(', ')}`);
  return value;
}

/**
 * One pino logger per process role; level from the option, then SWITCHBOARD_LOG_LEVEL, then `info`.
 * Every line carries `pid` and `role` (the role's name); the logger binds no `name`, so that a line
 * about a named thing can use `name` without writing the key twice.
 */
export function createLogger(role: string, level?: string): Logger {
  const chosen = level ?? logLevelFromEnv() ?? 'info';
  if (!isLogLevel(chosen)) throw new ConfigError(`log level ${chosen} is not a log level; use one of ${LOG_LEVELS.join(', ')}`);
  return pino({ level: chosen, base: { pid: process.pid, role } }, stdoutDestination());
}

/**
 * Synchronous writes to stdout: a write to a closed pipe (the reader gone) fails at once and pino
 * stops logging. With pino's default asynchronous stream, that error could still be in flight at
 * exit, and the flush at exit retried the write for ever: the process never ended.
 */
function stdoutDestination(): ReturnType<typeof pino.destination> {
  return pino.destination({ dest: process.stdout.fd ?? 1, sync: true });
}

/** A logger that writes nothing, for tests and embedded use. */
export const silentLogger: Logger = pino({ level: 'silent' });
