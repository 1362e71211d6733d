import { availableParallelism } from 'node:os';
import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // swc emits decorator metadata, which tsyringe's constructor injection reads; esbuild does not.
  plugins: [swc.vite({ module: { type: 'es6' }, jsc: { target: 'es2022', parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true } } })],
  test: {
    include: ['test/**/*.test.ts'],
    // Builds dist/ when it is older than src/, for the tests that start the built CLI.
    globalSetup: ['test/global-setup.ts'],
    environment: 'node',
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    // Most files wait on sockets, timers and child processes rather than the CPU, so even two cores
    // run two files at once (vitest's default would be one). Ports picked ahead of a process's start
    // come from test/fixtures/ports.ts, so files running side by side cannot take each other's.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // The JSON report is what .ci/run counts; the default reporter is for people.
    reporters: ['default', ['json', { outputFile: '.vitest-results.json' }]],
  },
});
