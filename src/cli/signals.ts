import type { Logger } from '../common/logger.js';

const EXIT_CODES: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

/**
 * SIGTERM or SIGINT stops the process gracefully (`stop` drains, then exits). A second one, of
 * either kind, while that is under way exits at once: an operator who asks twice means it.
 */
export function onStopSignals(logger: Logger, stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  const on = (signal: NodeJS.Signals): void => {
    if (!stopping) {
      stopping = true;
      void stop(signal);
      return;
    }
    logger.warn({ signal }, 'second stop signal: exiting now, without finishing the drain');
    process.exit(EXIT_CODES[signal]);
  };
  process.on('SIGTERM', on).on('SIGINT', on);
}
