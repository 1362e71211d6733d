import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/', '**/node_modules/', 'coverage/', 'bench/results/', 'reports/', '.stryker-tmp/'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', performance: 'readonly', fetch: 'readonly', URL: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['src/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['**/application-server/**', '**/function-server/**', '**/plugins/**', '**/client/**', '**/cli/**', '**/security/**', '**/common/**'] }],
    },
  },
  {
    // The dashboard runs in a browser.
    files: ['src/application-server/admin/dashboard/**/*.js'],
    languageOptions: { globals: { document: 'readonly', sessionStorage: 'readonly', TextDecoderStream: 'readonly', fetch: 'readonly', window: 'readonly' } },
  },
  {
    files: ['src/security/**/*.ts', 'src/common/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/application-server/**', '**/function-server/**', '**/plugins/**', '**/client/**', '**/cli/**'] }] },
  },
  {
    files: ['src/contracts/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/application-server/**', '**/function-server/**', '**/plugins/**', '**/client/**', '**/cli/**', '**/security/**', '**/common/**'] }] },
  },
  {
    files: ['src/plugins/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/application-server/**', '**/function-server/**', '**/client/**', '**/cli/**', '**/security/**'] }] },
  },
  {
    files: ['src/client/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/application-server/**', '**/function-server/**', '**/plugins/**', '**/cli/**'] }] },
  },
  {
    files: ['src/application-server/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/function-server/**', '**/plugins/**', '**/cli/**', '**/client/**'] }] },
  },
  {
    files: ['src/function-server/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/application-server/**', '**/cli/**', '**/client/**'] }] },
  },
);
