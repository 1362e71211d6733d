import { basename, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { STRATEGY_NAMES, type SchedulingStrategy, type StrategyName } from '../application-server/index.js';
import { ConfigError } from '../protocol/index.js';

/** What a strategy module must export, said in every refusal. */
const WHAT_TO_EXPORT = 'export (as default or as "strategy") an object with pick(candidates, ctx) and, optionally, a name, or a function that returns one';

/**
 * `--strategy`: a built-in name, or the path of an ES module whose default export (or `strategy`
 * export) is a SchedulingStrategy, or a function that returns one. Its name is optional: without
 * one, the module's file name (`my-strategy.mjs`) names it in log lines. The AS guards it: a throw
 * or a bad answer falls back to least-loaded for that pick.
 */
export async function loadStrategy(spec: string): Promise<StrategyName | SchedulingStrategy> {
  if ((STRATEGY_NAMES as readonly string[]).includes(spec)) return spec as StrategyName;
  if (!/[/\\]|\.[cm]?js$/.test(spec)) {
    throw new ConfigError(`--strategy ${spec} is neither ${STRATEGY_NAMES.join(', ')} nor a module path (./my-strategy.js)`);
  }
  const path = isAbsolute(spec) ? spec : resolve(spec);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    // A file that is not there (or not JavaScript) wants another path; one whose own code fails wants fixing.
    const next = code === 'ERR_MODULE_NOT_FOUND' || code === 'ERR_UNKNOWN_FILE_EXTENSION' ? 'give the path of a built .js file' : `its code failed while loading; fix it so that node ${path} runs`;
    throw new ConfigError(`cannot load the strategy module ${path}: ${(err as Error)?.message ?? String(err)}; ${next}`, { cause: err });
  }
  let exported = mod.default ?? mod.strategy;
  if (typeof exported === 'function') {
    // The factory is the user's code: its throw must name the module, not stand alone as "switchboard: <message>".
    try {
      exported = (exported as () => unknown)();
    } catch (err) {
      throw new ConfigError(`the strategy module ${path} exports a function that threw when called to make the strategy: ${(err as Error)?.message ?? String(err)}; ${WHAT_TO_EXPORT}`, { cause: err });
    }
  }
  const s = exported as Partial<SchedulingStrategy> | undefined;
  if (s === null || typeof s !== 'object' || typeof s.pick !== 'function') {
    throw new ConfigError(`the strategy module ${path} must ${WHAT_TO_EXPORT}`);
  }
  return { name: typeof s.name === 'string' && s.name !== '' ? s.name : basename(path), pick: s.pick.bind(s) };
}
