#!/usr/bin/env node
import 'reflect-metadata';
import { Command } from 'commander';

/** Each command's module, loaded only when needed: the admin commands then start without the servers' code. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  as: async () => (await import('./as-command.js')).asCommand(),
  fs: async () => (await import('./fs-command.js')).fsCommand(),
  call: async () => (await import('./call-command.js')).callCommand(),
  demo: async () => (await import('./demo-command.js')).demoCommand(),
  status: async () => (await import('./status-command.js')).statusCommand(),
  pair: async () => (await import('./status-command.js')).pairCommand(),
  'fs-admin': async () => (await import('./fs-admin-command.js')).fsAdminCommand(),
  top: async () => (await import('./top-command.js')).topCommand(),
  init: async () => (await import('./init-command.js')).initCommand(),
};

const program = new Command('switchboard')
  .description('Switchboard: an application server that routes requests to the least-loaded function server')
  .version('0.1.0')
  .showHelpAfterError();

async function main(): Promise<void> {
  // A known command name first: load that one; anything else (--help, a typo): all, for the listing.
  const named = process.argv[2];
  const names = named !== undefined && Object.hasOwn(COMMANDS, named) ? [named] : Object.keys(COMMANDS);
  for (const cmd of await Promise.all(names.map((n) => COMMANDS[n]()))) program.addCommand(cmd);
  await program.parseAsync(process.argv);
}

main().catch((err: Error & { code?: string }) => {
  process.stderr.write(`switchboard: ${err.message}${err.code ? ` (${err.code})` : ''}\n`);
  process.exit(1);
});
