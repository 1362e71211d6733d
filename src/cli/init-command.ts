import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { ConfigError } from '../protocol/index.js';
import { SCAFFOLD_SERVICE_SUFFIX, scaffoldFiles } from './init-templates.js';
import { parseIntIn } from './parse.js';

/** The root of the switchboard package this CLI runs from (dist/cli/ → ../..). */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Service names are at most this long (defineService); the package's first one is `<name>.greet`. */
const MAX_SERVICE_NAME = 128;
/** The longest package name whose `<name>.greet` still fits. */
export const MAX_PLUGIN_NAME = MAX_SERVICE_NAME - SCAFFOLD_SERVICE_SUFFIX.length;
/** Names npm refuses for this package: it would depend on a package of its own name. */
const TAKEN = ['switchboard', 'typescript'];

/**
 * The package and plugin name from `--name` or the directory's name: lower-cased, every run of
 * characters other than letters and digits made one `-`, and no `-` at either end.
 */
export function normalizePluginName(raw: string): string {
  return raw
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/**
 * The normalized name, or a ConfigError saying why `raw` cannot be used: it must start with a letter
 * (the plugin class is named after it), leave a service name of at most 128 characters, and not be
 * the name of one of the package's own dependencies.
 */
export function pluginNameFrom(raw: string, from: string): string {
  const name = normalizePluginName(raw);
  const shown = (v: string): string => (v.length > 40 ? `${v.slice(0, 37)}...` : v);
  const what = `${from} "${shown(raw)}"${name !== raw ? ` (normalized: "${shown(name)}")` : ''}`;
  if (name === '') throw new ConfigError(`${what} has no letter or digit; give --name with letters, digits and -, such as --name greeter`);
  if (!/^[a-z]/.test(name)) throw new ConfigError(`${what} does not start with a letter; give --name starting with a letter, such as --name greeter`);
  if (name.length > MAX_PLUGIN_NAME) {
    throw new ConfigError(
      `${what} is ${name.length} characters; it can be at most ${MAX_PLUGIN_NAME}: the package's service is named <name>${SCAFFOLD_SERVICE_SUFFIX}, and service names are at most ${MAX_SERVICE_NAME} characters; give a shorter --name`,
    );
  }
  if (TAKEN.includes(name)) throw new ConfigError(`${what} is the name of a package this one depends on (npm refuses to install it); give another --name`);
  return name;
}

export function initCommand(): Command {
  const init = new Command('init').description('create things to start from');
  init
    .command('plugin')
    .description('write a plugin package (contract, plugin, test-bed test, build, start) whose npm install && npm test pass as written')
    .argument('<dir>', 'directory to create (must be empty or absent)')
    .option('--name <name>', `package and plugin name (default: the directory name), normalized: lower case, letters, digits and single -; it must start with a letter and be at most ${MAX_PLUGIN_NAME} characters`)
    .option('--key <n>', 'service key of the first service', parseIntIn(0, 0xffffffff), 301)
    .action((dir: string, o: { name?: string; key: number }) => {
      const target = resolve(dir);
      const name = o.name !== undefined ? pluginNameFrom(o.name, '--name') : pluginNameFrom(basename(target), 'the directory name');
      if (existsSync(target) && readdirSync(target).length > 0) throw new ConfigError(`${target} is not empty; pick a new directory`);
      for (const [rel, text] of Object.entries(scaffoldFiles({ name, key: o.key, switchboardPath: PACKAGE_ROOT }))) {
        const file = join(target, rel);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, text);
      }
      process.stdout.write(`created ${target}\nnext: cd ${dir} && npm install && npm test\n`);
    });
  return init;
}
