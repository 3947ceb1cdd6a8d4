// @ts-check
// JavaScript, not jest.config.ts: on Node 20, Jest 30 reads a TypeScript config only through
// ts-node or esbuild-register, and neither is a dependency.

const swc = (/** @type {'typescript' | 'ecmascript'} */ syntax) => [
  '@swc/jest',
  { jsc: { target: 'es2022', parser: { syntax } }, module: { type: 'commonjs' } },
];

/** Packages published as ESM only, which Jest on Node 20 cannot require(): compiled to CommonJS. */
const ESM_ONLY = ['content-disposition', 'cookie', 'jose']; // via @fastify/static and light-my-request; jose

const shared = {
  rootDir: __dirname,
  testEnvironment: 'node',
  // TypeScript through SWC: no type checking here (`npm run typecheck` does that), just fast.
  transform: { '^.+\\.ts$': swc('typescript'), '^.+\\.js$': swc('ecmascript') },
  transformIgnorePatterns: [`/node_modules/(?!(${ESM_ONLY.join('|')})/)`],
  // `npm run build` output: compiled copies of the sources, never a module tests load.
  modulePathIgnorePatterns: ['<rootDir>/dist/'],
};

/**
 * Four bands, each runnable alone: `jest --selectProjects unit|integration|replay|system`.
 * Only the integration band starts the stack (Postgres, Temporal, NATS), in its global setup.
 * @type {import('jest').Config}
 */
module.exports = {
  projects: [
    { ...shared, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...shared,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
      setupFilesAfterEnv: ['<rootDir>/test/support/integration-setup.ts'], // 60 s test timeout
    },
    { ...shared, displayName: 'replay', testMatch: ['<rootDir>/test/replay/**/*.test.ts'] },
    // Whole-system runs as child processes, each over a stack of its own: the reduced chaos
    // drills (`npm run test:chaos -- --reduced`), the quick benchmark (`npm run bench -- --quick`)
    // and the production topology (`npm run start:cluster`).
    { ...shared, displayName: 'system', testMatch: ['<rootDir>/test/system/**/*.test.ts'] },
    {
      // `npm run histories:record` only (npm test selects the three bands above).
      ...shared,
      displayName: 'record',
      testMatch: ['<rootDir>/test/record/**/*.record.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
      setupFilesAfterEnv: ['<rootDir>/test/support/integration-setup.ts'],
    },
  ],
};
