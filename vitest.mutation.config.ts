import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// The suite Stryker runs for each mutant. MUTATION_TESTS=unit (the default) runs the fast pure
// tests only, which is what a two-core machine can afford for every mutant; MUTATION_TESTS=all adds
// the in-process socket tests. Tests that start the built CLI in child processes test dist/, which
// a mutant in src/ does not reach, so they are always left out. (Built by hand, not with
// mergeConfig: mergeConfig would add these lists to the base ones instead of replacing them.)
const CHILD_PROCESS_TESTS = [
  'test/integration/cli.test.ts',
  'test/integration/plugin-packages.test.ts',
  'test/resilience/standby.test.ts',
  'test/resilience/fail-fast.test.ts',
  'test/resilience/silent-fs.test.ts',
  'test/resilience/pair-processes.test.ts',
  'test/resilience/pair-partition.test.ts',
  'test/unit/security-doc.test.ts',
];
const all = process.env.MUTATION_TESTS === 'all';

export default defineConfig({
  plugins: base.plugins,
  test: {
    ...base.test,
    include: all ? ['test/**/*.test.ts'] : ['test/unit/**/*.test.ts'],
    exclude: CHILD_PROCESS_TESTS,
    globalSetup: [],
    reporters: ['default'],
  },
});
