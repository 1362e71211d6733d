// Builds dist/: tsc, then the files tsc does not copy (scripts/copy-assets.mjs).
// With --if-stale it builds only when dist/ is missing or older than its inputs (src/, the tsconfig
// files, this script), so `npm test` after `npm ci`, and every `npm install` of a plugin package that
// links this repository (its `prepare` runs each time), does not compile the same code again.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyAssets } from './copy-assets.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Written after a build that succeeded: a failed tsc still emits, so dist/'s own files prove nothing. */
const STAMP = join(ROOT, 'dist', '.build-stamp');
const INPUTS = ['src', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.mjs', 'scripts/copy-assets.mjs'];

/** The newest mtime under p; directories count too, so a deleted or renamed file makes dist/ stale. */
function newestMtime(p) {
  const st = statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const e of readdirSync(p)) newest = Math.max(newest, newestMtime(join(p, e)));
  return newest;
}

/** Why dist/ must be built, or undefined when it is newer than every input. */
function staleReason() {
  if (!existsSync(STAMP)) return 'dist/ has not been built here';
  const built = statSync(STAMP).mtimeMs;
  const changed = INPUTS.find((i) => newestMtime(join(ROOT, i)) > built);
  return changed === undefined ? undefined : `${changed} changed since dist/ was built`;
}

function build() {
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
  copyAssets();
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const ifStale = process.argv.includes('--if-stale');
  const why = ifStale ? staleReason() : undefined;
  if (ifStale && why === undefined) {
    process.stdout.write('dist/ is up to date with src/; not building (npm run build forces it)\n');
  } else {
    if (why !== undefined) process.stdout.write(`building dist/: ${why}\n`);
    try {
      build();
    } catch {
      process.exitCode = 1; // tsc has printed its errors
    }
  }
}
