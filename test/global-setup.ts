import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Child-process tests run the built CLI (dist/) while in-process tests import src/: a stale build
 * would test old code beside new. Build when dist/ is missing or older than any file in src/.
 */
export default function setup(): void {
  const marker = join(ROOT, 'dist', 'cli', 'main.js');
  const built = existsSync(marker) ? statSync(marker).mtimeMs : 0;
  if (built >= newestMtime(join(ROOT, 'src'))) return;
  process.stderr.write(`dist/ is ${built === 0 ? 'missing' : 'older than src/'}; building it before the tests (npm run build)\n`);
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'copy-assets.mjs')], { stdio: 'inherit' });
}
