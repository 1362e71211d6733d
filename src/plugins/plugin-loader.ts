import { isAbsolute, resolve } from 'node:path';
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
  return spec; // a package name
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
      throw new PluginLoadError(
        `cannot import plugin module "${spec}": ${(err as Error).message}; ` +
          `give a path to a built .js module, a package name, or one of: ${bundledPluginNames().join(', ')}`,
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
