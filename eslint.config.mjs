// @ts-check
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'assert', 'buffer', 'child_process', 'cluster', 'crypto', 'dgram', 'dns', 'events', 'fs', 'fs/promises',
  'http', 'http2', 'https', 'net', 'os', 'path', 'perf_hooks', 'process', 'readline', 'stream', 'timers',
  'tls', 'url', 'util', 'v8', 'vm', 'worker_threads', 'zlib',
];

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', 'coverage/**', 'tools/bench/results/**', 'dist/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no I/O, no Node builtins,
    // no database or HTTP libraries, and activities only as types.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltins.flatMap((name) => [
              { name, message: 'Node builtins are not allowed in workflow code.' },
              { name: `node:${name}`, message: 'Node builtins are not allowed in workflow code.' },
            ]),
            { name: 'pg', message: 'Workflow code must not touch the database; call an activity.' },
            { name: 'fastify', message: 'Workflow code must not import the API.' },
            { name: '@temporalio/activity', message: 'Activity context is not available in workflows.' },
            { name: '@temporalio/client', message: 'Use @temporalio/workflow APIs inside workflows.' },
            { name: '@temporalio/worker', message: 'Workflow code must not import the worker.' },
          ],
          patterns: [
            { group: ['**/activities', '**/activities/*', '**/activities/**'], allowTypeImports: true,
              message: 'Import activities as types only (import type …) and call them through proxyActivities.' },
            { group: ['**/store/**', '**/api/**', '**/worker/**', '**/relay/**', '@nats-io/*'],
              message: 'Workflow code is deterministic: no I/O modules.' },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['test/**/*.ts', 'tools/**/*.ts'],
    rules: {
      // Tests hand activity functions (which never use `this`) to MockActivityEnvironment.run.
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
);
