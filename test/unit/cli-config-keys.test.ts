import 'reflect-metadata';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AS_FLAGS, asCommand } from '../../src/cli/as-command.js';
import { FLAGS_WITHOUT_KEY, asConfigSchema, configKeyHints, fsConfigSchema } from '../../src/cli/config.js';
import { FS_FLAGS, fsCommand } from '../../src/cli/fs-command.js';

/** Whether `key` (`a` or `a.b`) names a field of the schema. */
function inSchema(schema: z.ZodObject, key: string): boolean {
  const [head, sub] = key.split('.');
  const field = schema.shape[head] as z.ZodType | undefined;
  if (field === undefined) return false;
  if (sub === undefined) return true;
  const inner = field instanceof z.ZodOptional ? field.unwrap() : field;
  return inner instanceof z.ZodObject && Object.hasOwn(inner.shape, sub);
}

describe('every flag of as and fs has a config key (the API option name)', () => {
  for (const [name, cmd, map, schema] of [
    ['as', asCommand(), AS_FLAGS, asConfigSchema],
    ['fs', fsCommand(), FS_FLAGS, fsConfigSchema],
  ] as [string, Command, Record<string, string>, z.ZodObject][]) {
    it(`${name}: each option maps onto a field of its config schema, but --config and --print-config`, () => {
      const missing: string[] = [];
      for (const o of cmd.options) {
        const attr = o.attributeName();
        if (FLAGS_WITHOUT_KEY.includes(attr)) continue;
        const key = map[attr];
        if (key === undefined || !inSchema(schema, key)) missing.push(`${o.long} -> ${key ?? '(none)'}`);
      }
      expect(missing).toEqual([]);
    });
  }

  it('as --host is the key host, fs --busy the key busy, fs --as the key applicationServers', () => {
    expect(AS_FLAGS.host).toBe('host');
    expect(FS_FLAGS.busy).toBe('busy');
    expect(FS_FLAGS.as).toBe('applicationServers');
  });

  it('an unknown key that is a flag spelt camel-case is told the right key', () => {
    expect(configKeyHints(fsCommand(), FS_FLAGS)).toMatchObject({ timeoutMs: 'the key for --timeout-ms is defaultTimeoutMs', as: 'the key for --as is applicationServers' });
    expect(configKeyHints(asCommand(), AS_FLAGS)).toMatchObject({ advertiseHost: 'the key for --advertise-host is clientAdvertiseHost', pairPort: 'the key for --pair-port is pair.port' });
  });
});
