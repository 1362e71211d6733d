import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dirs: string[] = [];

/** A one-file project laid out like this repository, with this repository's build scripts. */
function project(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-build-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'scripts'));
  for (const f of ['build.mjs', 'copy-assets.mjs']) copyFileSync(join(ROOT, 'scripts', f), join(dir, 'scripts', f));
  mkdirSync(join(dir, 'src', 'application-server', 'admin', 'dashboard'), { recursive: true });
  writeFileSync(join(dir, 'src', 'application-server', 'admin', 'dashboard', 'index.html'), '<!doctype html>\n');
  writeFileSync(join(dir, 'src', 'a.ts'), 'export const a = 1;\n');
  writeFileSync(join(dir, 'src', 'b.ts'), 'export const b = 2;\n');
  // lib as in this repository's tsconfig: without it tsc also reads the DOM's declarations, about half of each build.
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'es2022', module: 'nodenext', lib: ['es2023'], strict: true, skipLibCheck: true, types: [] } }));
  writeFileSync(join(dir, 'tsconfig.build.json'), JSON.stringify({ extends: './tsconfig.json', compilerOptions: { rootDir: 'src', outDir: 'dist' }, include: ['src'] }));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const old = new Date(Date.now() - 2_000_000);
  for (const p of ['src', 'scripts', 'tsconfig.json', 'tsconfig.build.json']) setTree(join(dir, p), old);
  return dir;
}

function build(dir: string, ...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(dir, 'scripts', 'build.mjs'), ...args], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

/** Every mtime under p set to t: the build's inputs start older than any stamp a step sets. */
function setTree(p: string, t: Date): void {
  if (statSync(p).isDirectory()) for (const e of readdirSync(p)) setTree(join(p, e), t);
  utimesSync(p, t, t);
}

/**
 * As if `path` was changed after the last build, on a clock of its own that starts 1000 s back: step
 * k puts the stamp at base + 10k and `path` at base + 10k + 5, so each step's change is newer than
 * the stamp and every earlier step's is older, however long the builds take.
 */
function changedAfterBuild(dir: string, path: string, step: number): void {
  const base = Date.now() - 1_000_000;
  const stamp = new Date(base + 10_000 * step);
  utimesSync(join(dir, 'dist', '.build-stamp'), stamp, stamp);
  const edit = new Date(base + 10_000 * step + 5000);
  utimesSync(path, edit, edit);
}

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('scripts/build.mjs --if-stale', () => {
  it('builds a fresh tree, then skips until a source file changes or is removed, or a tsconfig changes', async () => {
    const dir = project();
    const first = await build(dir, '--if-stale');
    expect(first.out).toMatch(/building dist\/: dist\/ has not been built here/);
    expect(existsSync(join(dir, 'dist', 'a.js'))).toBe(true);
    expect(existsSync(join(dir, 'dist', 'application-server', 'admin', 'dashboard', 'index.html'))).toBe(true);

    expect((await build(dir, '--if-stale')).out).toMatch(/up to date/);

    changedAfterBuild(dir, join(dir, 'src', 'a.ts'), 1);
    expect((await build(dir, '--if-stale')).out).toMatch(/building dist\/: src changed/);
    expect((await build(dir, '--if-stale')).out).toMatch(/up to date/);

    // A deleted file leaves every other file's mtime alone; its directory's changes.
    rmSync(join(dir, 'src', 'b.ts'));
    changedAfterBuild(dir, join(dir, 'src'), 2);
    expect((await build(dir, '--if-stale')).out).toMatch(/building dist\/: src changed/);

    changedAfterBuild(dir, join(dir, 'tsconfig.build.json'), 3);
    expect((await build(dir, '--if-stale')).out).toMatch(/building dist\/: tsconfig.build.json changed/);
  }, 60_000);

  it('a build that fails leaves dist/ stale, so the next check builds again', async () => {
    const dir = project();
    // As a good build leaves it (without paying for one).
    mkdirSync(join(dir, 'dist'));
    writeFileSync(join(dir, 'dist', '.build-stamp'), 'earlier\n');
    writeFileSync(join(dir, 'src', 'a.ts'), "export const a: number = 'one';\n");
    changedAfterBuild(dir, join(dir, 'src', 'a.ts'), 1);
    const failed = await build(dir, '--if-stale');
    expect(failed.code).toBe(1);
    expect(failed.out).toMatch(/TS2322/);
    // tsc emitted dist/a.js anyway; only the stamp says whether the build succeeded.
    const again = await build(dir, '--if-stale');
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/building dist\/: src changed/);
  }, 60_000);
});
