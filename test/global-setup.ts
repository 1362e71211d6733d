import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Child-process tests run the built CLI (dist/) while in-process tests import src/: a stale build
 * would test old code beside new. Build when dist/ is missing or older than src/ (`npx vitest`
 * skips the build that `npm test` does first).
 */
export default function setup(): void {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--if-stale'], { stdio: ['ignore', 'inherit', 'inherit'] });
}
