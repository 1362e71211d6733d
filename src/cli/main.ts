#!/usr/bin/env node
import 'reflect-metadata';
import { Command } from 'commander';
import { asCommand } from './as-command.js';
import { callCommand } from './call-command.js';
import { demoCommand } from './demo-command.js';
import { fsCommand } from './fs-command.js';
import { initCommand } from './init-command.js';
import { pairCommand, statusCommand } from './status-command.js';

const program = new Command('switchboard')
  .description('Switchboard: an application server that routes requests to the least-loaded function server')
  .version('0.1.0')
  .addCommand(asCommand())
  .addCommand(fsCommand())
  .addCommand(callCommand())
  .addCommand(demoCommand())
  .addCommand(statusCommand())
  .addCommand(pairCommand())
  .addCommand(initCommand())
  .showHelpAfterError();

program.parseAsync(process.argv).catch((err: Error & { code?: string }) => {
  process.stderr.write(`switchboard: ${err.message}${err.code ? ` (${err.code})` : ''}\n`);
  process.exit(1);
});
