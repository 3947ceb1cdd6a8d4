/**
 * `npm run build`: the production processes compiled to JavaScript in dist/, so they run
 * with plain `node` (no tsx, no npm in the process tree):
 *
 *   dist/api/server.js, dist/worker/main.js, dist/relay/main.js, dist/tools/migrate.js
 *   dist/migrations/*.sql       found by the compiled migrator (store/migrate.ts)
 *   dist/workflow-bundle.js     the workflows bundled by webpack once, here; the compiled
 *                               worker loads it, so nothing bundles at run time
 *
 * tsc runs incrementally (its build info is dist/.tsbuildinfo): a second build only
 * re-emits what changed. `-- --no-workflow-bundle` stops after tsc and the migrations.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
/** The entries the image and the start scripts run. */
const ENTRIES = [
  'api/server.js',
  'worker/main.js',
  'relay/main.js',
  'tools/migrate.js',
  'tools/build-workflow-bundle.js',
];

function run(step: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${step} exited with ${signal ?? String(code)}`)),
    );
  });
}

async function timed(step: string, work: () => Promise<void>): Promise<void> {
  const started = performance.now();
  await work();
  process.stdout.write(`build: ${step} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'no-workflow-bundle': { type: 'boolean' } } });
  // tsc's build info trusts that its earlier output is still there: when some of it was
  // deleted, forget it and compile everything.
  if (ENTRIES.some((entry) => !existsSync(path.join(DIST, entry)))) {
    await rm(path.join(DIST, '.tsbuildinfo'), { force: true });
  }
  await timed('tsc', () => run('tsc', [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json']));
  await timed('migrations', async () => {
    await rm(path.join(DIST, 'migrations'), { recursive: true, force: true });
    await cp(path.join(ROOT, 'migrations'), path.join(DIST, 'migrations'), { recursive: true });
  });
  if (values['no-workflow-bundle']) return;
  // The compiled bundler over the compiled workflows: the bundle holds exactly what dist/ runs.
  await timed('workflow bundle', () =>
    run('workflow bundle', [
      path.join(DIST, 'tools', 'build-workflow-bundle.js'),
      path.join(DIST, 'workflow-bundle.js'),
    ]),
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`build failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
