import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { resolve as resolveModule } from 'import-meta-resolve';
import { pathToFileURL } from 'node:url';
import { PluginLoadError } from './errors.js';
import { isPluginClass, type PluginClass } from './plugin-explorer.js';

/** Names that load the bundled sample plugins without a path. */
const BUNDLED: Record<string, string> = {
  echo: './samples/echo-plugin.js',
  weather: './samples/weather-plugin.js',
};

export function bundledPluginNames(): string[] {
  return Object.keys(BUNDLED);
}

function specifierFor(spec: string, cwd: string, version?: number): string {
  const bundled = BUNDLED[spec];
  if (bundled) return new URL(bundled, import.meta.url).href;
  // A query makes the module loader import the file afresh (a reload); the old one stays cached.
  if (isPathSpec(spec)) return `${pathToFileURL(resolve(cwd, spec)).href}${version ? `?reload=${version}` : ''}`;
  // A package name: from the user's project first; else as this module would import it, from
  // switchboard's own folder (a package installed next to a global switchboard).
  return resolvePackageFrom(spec, cwd) ?? spec;
}

/**
 * The file URL a package name (`lab-plugins`, `@acme/plugins`, `@acme/plugins/extra`) stands for,
 * resolved as `import` would from a module in `cwd` (node_modules of `cwd` and of each folder above
 * it, the package's `exports` map). Resolving from switchboard's own module instead would miss a
 * package installed in the user's project whenever switchboard is linked (`file:`, `npm link`) or
 * installed globally. Undefined when no such folder holds it.
 */
export function resolvePackageFrom(spec: string, cwd = process.cwd()): string | undefined {
  try {
    return resolveModule(spec, pathToFileURL(join(resolve(cwd), 'noop.js')).href);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND') return undefined;
    if (code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') {
      throw new PluginLoadError(`package ${spec} exports no such path for import: ${(err as Error).message}; name a path its package.json "exports" lists`, { cause: err });
    }
    throw new PluginLoadError(`cannot resolve plugin package ${spec} from ${resolve(cwd)}: ${(err as Error).message}`, { cause: err });
  }
}

/** Whether a plugin spec names a file (which can be watched and reloaded), not a bundled name or a package. */
export function isPathSpec(spec: string): boolean {
  return spec.startsWith('.') || isAbsolute(spec);
}

/** The file a path spec names. */
export function pluginPath(spec: string, cwd = process.cwd()): string {
  return resolve(cwd, spec);
}

/**
 * Imports each module (a bundled name, a path, or a package) and returns every exported class
 * that carries @Plugin. A module that exports none is an error: it was probably the wrong file.
 */
export async function loadPluginModules(specs: readonly string[], cwd = process.cwd(), version?: number): Promise<PluginClass[]> {
  const classes: PluginClass[] = [];
  for (const spec of specs) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(specifierFor(spec, cwd, version))) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof PluginLoadError) throw err;
      const e = err as Error & { code?: string };
      const notFound = !isPathSpec(spec) && (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND');
      const missingPackage = notFound && e.message.includes(`'${spec}'`);
      const hint = notFound ? notAPackageHint(spec, cwd) : undefined;
      throw new PluginLoadError(
        hint !== undefined
          ? `cannot import plugin module "${spec}": ${hint}`
          : missingPackage
          ? `cannot import plugin module "${spec}": no package ${spec} in node_modules from ${resolve(cwd)} up, nor next to switchboard; ` +
              `install it in your project (npm install ${spec}) and run from there, or give a path to a built .js module, or one of: ${bundledPluginNames().join(', ')}`
          : `cannot import plugin module "${spec}": ${e.message}; ` + `give a path to a built .js module, a package name, or one of: ${bundledPluginNames().join(', ')}`,
        { cause: err },
      );
    }
    const found = [...new Set(Object.values(mod).filter(isPluginClass))];
    if (found.length === 0) {
      throw new PluginLoadError(`module "${spec}" exports no class decorated with @Plugin; export the plugin class`);
    }
    classes.push(...found);
  }
  return classes;
}

/**
 * Why a spec that did not resolve as a package may be something else the user meant: a file path
 * without its ./, or a package that is installed but names no entry point (a scaffold built
 * before it had "exports").
 */
function notAPackageHint(spec: string, cwd: string): string | undefined {
  if (existsSync(resolve(cwd, spec))) return `it is read as a package name, and a path must start with ./, ../ or /; give ./${spec}`;
  const parts = spec.split('/');
  const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const folder = join(dir, 'node_modules', name);
    if (existsSync(join(folder, 'package.json'))) {
      return `package ${name} is installed at ${folder} but names no module to import: its package.json has no "exports" or "main" for it (and there is no index.js); add "exports" naming the built plugin module (e.g. "./dist/src/plugin.js"), or give the path to that module`;
    }
    if (dirname(dir) === dir) return undefined;
  }
}
