import { readFileSync } from 'node:fs';

/** File descriptors kept back for everything that is not a peer connection: logs, the admin port, DNS, files. */
export const FD_RESERVE = 64;

/** This process's soft limit on open files (Linux /proc); undefined where it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s+/)[3];
    if (soft === undefined || soft === 'unlimited') return undefined;
    const n = Number(soft);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
