import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { ConfigError } from '../protocol/index.js';
import { scaffoldFiles } from './init-templates.js';
import { parseIntIn } from './parse.js';

/** The root of the switchboard package this CLI runs from (dist/cli/ → ../..). */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function initCommand(): Command {
  const init = new Command('init').description('create things to start from');
  init
    .command('plugin')
    .description('write a plugin package (contract, plugin, test-bed test, build, start) whose npm install && npm test pass as written')
    .argument('<dir>', 'directory to create (must be empty or absent)')
    .option('--name <name>', 'package and plugin name (default: the directory name)')
    .option('--key <n>', 'service key of the first service', parseIntIn(0, 0xffffffff), 301)
    .action((dir: string, o: { name?: string; key: number }) => {
      const target = resolve(dir);
      if (existsSync(target) && readdirSync(target).length > 0) throw new ConfigError(`${target} is not empty; pick a new directory`);
      const name = (o.name ?? basename(target)).toLowerCase().replace(/[^a-z0-9-]/g, '-');
      if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new ConfigError(`"${name}" is not a usable package name; give --name with letters, digits and -`);
      for (const [rel, text] of Object.entries(scaffoldFiles({ name, key: o.key, switchboardPath: PACKAGE_ROOT }))) {
        const file = join(target, rel);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, text);
      }
      process.stdout.write(`created ${target}\nnext: cd ${dir} && npm install && npm test\n`);
    });
  return init;
}
