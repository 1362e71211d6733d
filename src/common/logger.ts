import { pino, type Logger } from 'pino';

export type { Logger };

/** One pino logger per process role; level from the option, then SWITCHBOARD_LOG_LEVEL, then `info`. */
export function createLogger(name: string, level?: string): Logger {
  return pino({
    name,
    level: level ?? process.env.SWITCHBOARD_LOG_LEVEL ?? 'info',
    base: { pid: process.pid, role: name },
  });
}

/** A logger that writes nothing, for tests and embedded use. */
export const silentLogger: Logger = pino({ level: 'silent' });
