import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { STRATEGY_NAMES, type SchedulingStrategy, type StrategyName } from '../application-server/index.js';
import { ConfigError } from '../protocol/index.js';

/**
 * `--strategy`: a built-in name, or the path of an ES module whose default export (or `strategy`
 * export) is a SchedulingStrategy, or a function that returns one. The AS guards it: a throw or a
 * bad answer falls back to least-loaded for that pick.
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
    throw new ConfigError(`cannot load the strategy module ${path}: ${(err as Error).message}; give the path of a built .js file`, { cause: err });
  }
  let exported = mod.default ?? mod.strategy;
  if (typeof exported === 'function') exported = (exported as () => unknown)();
  const s = exported as Partial<SchedulingStrategy> | undefined;
  if (s === null || typeof s !== 'object' || typeof s.pick !== 'function') {
    throw new ConfigError(`the strategy module ${path} must export (as default or as "strategy") an object with name and pick(candidates, ctx), or a function returning one`);
  }
  return { name: typeof s.name === 'string' ? s.name : path, pick: s.pick.bind(s) };
}
