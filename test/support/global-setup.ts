/**
 * Integration tests' global setup, once per run: starts the stack (tools/dev/dev-stack.ts,
 * on fresh data in a temp dir), migrates the template database every test database is
 * cloned from, builds the workflow bundle once, and hands it all to the test processes as
 * TEST_* environment variables (see test/support/stack.ts). DATABASE_URL / TEMPORAL_ADDRESS
 * / NATS_URL, when set, are used instead of starting that piece.
 */
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { DefaultLogger, bundleWorkflowCode } from '@temporalio/worker';
import { migrate } from '../../store/migrate';
import { createPool } from '../../store/pool';
import { workflowBundleConverters } from '../../lib/payload-codec';
import globalTeardown from './global-teardown';
import { RUNNING_STACK_KEY, TEMPLATE_DATABASE, adminQuery, withDatabase } from './stack';

const ROOT = path.resolve(__dirname, '..', '..');
// Generous: on a fresh machine the first run builds the Temporal CLI and nats-server.
const STACK_TIMEOUT_MS = 15 * 60_000;

interface Endpoints {
  databaseUrl: string;
  temporalAddress: string;
  temporalUiUrl: string;
  natsUrl: string;
}

/** Left on globalThis for global-teardown.ts, which runs in the same process. */
export interface RunningStack {
  child: ChildProcess;
  dir: string;
}

export default async function globalSetup(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-test-'));
  await chmod(dir, 0o755); // as root, Postgres runs as user postgres and must enter this dir
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'tools', 'dev', 'dev-stack.ts'), '--data-dir', dir],
    // stdin stays open: dev-stack stops the stack when it closes, i.e. when jest goes away.
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  (globalThis as Record<string, unknown>)[RUNNING_STACK_KEY] = { child, dir } satisfies RunningStack;
  try {
    const endpoints = await readEndpoints(child);
    const adminUrl = withDatabase(endpoints.databaseUrl, 'postgres');
    const [, bundle] = await Promise.all([createTemplate(adminUrl), buildWorkflowBundle(dir)]);
    Object.assign(process.env, {
      TEST_DATABASE_ADMIN_URL: adminUrl,
      TEST_TEMPORAL_ADDRESS: endpoints.temporalAddress,
      TEST_TEMPORAL_UI_URL: endpoints.temporalUiUrl,
      TEST_NATS_URL: endpoints.natsUrl,
      ...(bundle ? { TEST_WORKFLOW_BUNDLE: bundle } : {}),
    });
  } catch (error) {
    await globalTeardown(); // stop the stack before jest reports the failure and exits
    throw error;
  }
}

/**
 * Waits for dev-stack's one JSON line. Its stderr is kept for the error message, except
 * tool-install progress, which is shown at once (a first run may build for minutes).
 */
function readEndpoints(child: ChildProcessWithoutNullStreams): Promise<Endpoints> {
  return new Promise((resolve, reject) => {
    const stderr: string[] = [];
    const fail = (why: string): void => {
      clearTimeout(timer);
      reject(new Error(`test stack: ${why}\n${stderr.slice(-30).join('\n')}`));
    };
    const timer = setTimeout(
      () => fail(`not ready within ${STACK_TIMEOUT_MS / 60_000} min`),
      STACK_TIMEOUT_MS,
    );
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (line.startsWith('tools:')) process.stderr.write(`${line}\n`);
      stderr.push(line);
    });
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line) as Endpoints);
      } catch {
        fail(`unexpected output from dev-stack: ${line}`);
      }
    });
    child.once('exit', (code, signal) =>
      fail(`dev-stack exited before it was ready (${signal ?? `code ${code}`})`),
    );
  });
}

/** A migrated database to clone: CREATE DATABASE … TEMPLATE copies files, far faster than migrating. */
async function createTemplate(adminUrl: string): Promise<void> {
  // Left over from an earlier run against the same (external) server: start again.
  await adminQuery(
    adminUrl,
    `DO $$ BEGIN
       IF EXISTS (SELECT 1 FROM pg_database WHERE datname = '${TEMPLATE_DATABASE}') THEN
         ALTER DATABASE ${TEMPLATE_DATABASE} IS_TEMPLATE false;
       END IF;
     END $$`,
    `DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`,
    `CREATE DATABASE ${TEMPLATE_DATABASE}`,
  );
  // migrate() holds one connection for its lock and applies each file on another.
  const pool = createPool(withDatabase(adminUrl, TEMPLATE_DATABASE), { max: 2 });
  try {
    await migrate(pool);
  } finally {
    await pool.end(); // cloning needs the template free of connections
  }
  // No one may connect to it again (not even autovacuum), so cloning never waits.
  await adminQuery(
    adminUrl,
    `ALTER DATABASE ${TEMPLATE_DATABASE} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`,
  );
}

/** Bundles workflows/ once for every test worker; undefined while there are no workflows yet. */
async function buildWorkflowBundle(dir: string): Promise<string | undefined> {
  const workflowsPath = path.join(ROOT, 'workflows', 'index.ts');
  if (!existsSync(workflowsPath)) return undefined;
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    logger: new DefaultLogger('WARN'),
    ...workflowBundleConverters,
  });
  const file = path.join(dir, 'workflow-bundle.js');
  await writeFile(file, code);
  return file;
}
