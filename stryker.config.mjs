// Mutation testing (npm run mutation): Stryker changes one thing at a time in the code below and
// checks that some test fails. Slow on two cores, so not part of CI; a run after a small change is
// quick (incremental). docs/mutation.md keeps the latest scores and the survivors explained.
// One folder: npm run mutation -- --mutate 'src/protocol/**/*.ts'
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  mutate: [
    'src/protocol/**/*.ts',
    'src/application-server/**/*.ts',
    'src/function-server/**/*.ts',
    '!src/**/index.ts',
  ],
  coverageAnalysis: 'perTest',
  incremental: true,
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'json', 'html'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  concurrency: 2,
  timeoutMS: 20_000,
  timeoutFactor: 2,
  ignoreStatic: true,
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
