import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPluginModules, resolvePackageFrom } from '../../src/plugins/plugin-loader.js';

// `switchboard fs --plugins <package>` looks the package up from the working directory, as `import`
// would from a module there: the user's project, not the folder switchboard runs from.
let project: string;
beforeEach(() => {
  project = mkdtempSync(join(tmpdir(), 'sb-plugin-pkg-'));
});
afterEach(() => rmSync(project, { recursive: true, force: true }));

function pkg(at: string, manifest: Record<string, unknown>, files: string[]): string {
  const root = join(at, 'node_modules', String(manifest.name));
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'package.json'), JSON.stringify(manifest));
  for (const f of files) {
    mkdirSync(join(root, f, '..'), { recursive: true });
    writeFileSync(join(root, f), 'export {};\n');
  }
  return root;
}
const url = (p: string): string => pathToFileURL(p).href;

describe('resolvePackageFrom', () => {
  it('follows "main", or index.js, when there is no exports map', () => {
    const a = pkg(project, { name: 'plain-main', main: 'lib/entry.js' }, ['lib/entry.js']);
    const b = pkg(project, { name: 'plain-index' }, ['index.js']);
    expect(resolvePackageFrom('plain-main', project)).toBe(url(join(a, 'lib/entry.js')));
    expect(resolvePackageFrom('plain-index', project)).toBe(url(join(b, 'index.js')));
  });

  it('follows an exports map under the import conditions, a scoped name and a subpath pattern', () => {
    const a = pkg(project, { name: 'esm-only', exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } } }, ['dist/index.js']);
    const b = pkg(project, { name: '@acme/plugins', exports: { '.': { require: './cjs/index.cjs', default: './esm/index.js' }, './extra/*': './esm/extra/*.js' } }, ['esm/index.js', 'esm/extra/one.js']);
    const c = pkg(project, { name: 'string-export', exports: './main.js' }, ['main.js']);
    expect(resolvePackageFrom('esm-only', project)).toBe(url(join(a, 'dist/index.js')));
    expect(resolvePackageFrom('@acme/plugins', project)).toBe(url(join(b, 'esm/index.js')));
    expect(resolvePackageFrom('@acme/plugins/extra/one', project)).toBe(url(join(b, 'esm/extra/one.js')));
    expect(resolvePackageFrom('string-export', project)).toBe(url(join(c, 'main.js')));
    expect(() => resolvePackageFrom('@acme/plugins/hidden', project)).toThrow(/package @acme\/plugins\/hidden exports no such path for import/);
  });

  it('looks in the node_modules of every folder above the working directory', () => {
    const a = pkg(project, { name: 'from-above', exports: './x.js' }, ['x.js']);
    const deep = join(project, 'packages', 'app', 'src');
    mkdirSync(deep, { recursive: true });
    expect(resolvePackageFrom('from-above', deep)).toBe(url(join(a, 'x.js')));
  });

  it('is undefined when no folder holds it, so the loader falls back to its own folder', () => {
    expect(resolvePackageFrom('no-such-package-here', project)).toBeUndefined();
  });
});

describe('loadPluginModules: what it says when a spec is not a package it can import', () => {
  it('an installed package with no "exports", "main" or index.js: names the folder and says to add "exports"', async () => {
    const root = pkg(project, { name: 'no-entry' }, ['dist/src/plugin.js']);
    await expect(loadPluginModules(['no-entry'], project)).rejects.toThrow(`package no-entry is installed at ${root} but names no module to import`);
    await expect(loadPluginModules(['no-entry'], project)).rejects.toThrow(/add "exports" naming the built plugin module/);
  });

  it('a file path without ./ (read as a package name): says to give ./path', async () => {
    mkdirSync(join(project, 'dist'), { recursive: true });
    writeFileSync(join(project, 'dist', 'plugin.js'), 'export {};\n');
    await expect(loadPluginModules(['dist/plugin.js'], project)).rejects.toThrow('"dist/plugin.js": it is read as a package name, and a path must start with ./, ../ or /; give ./dist/plugin.js');
  });

  it('a package that is nowhere: says to install it', async () => {
    await expect(loadPluginModules(['nowhere-pkg'], project)).rejects.toThrow(/no package nowhere-pkg in node_modules from .* install it in your project \(npm install nowhere-pkg\)/);
  });
});
