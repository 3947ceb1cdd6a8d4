import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import {
  bundleWorkflowCode,
  makeTelemetryFilterString,
  Runtime,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';

/**
 * The replay band: every committed history replays against the current workflow code,
 * with no server. A workflow change that would break sagas already running fails here.
 */
const REPO_ROOT = path.resolve(__dirname, '..', '..');
const HISTORIES_DIR = path.join(REPO_ROOT, 'test', 'histories');
const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

async function loadHistories() {
  const files = (await readdir(HISTORIES_DIR)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(
    files.map(async (file) => ({
      workflowId: file.replace(/\.json$/, ''),
      history: historyFromJSON(JSON.parse(await readFile(path.join(HISTORIES_DIR, file), 'utf8'))),
    })),
  );
}

let bundle: WorkflowBundleWithSourceMap;
beforeAll(async () => {
  // The altered-workflow test makes the core log each expected nondeterminism warning.
  Runtime.install({
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
  });
  bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    logger: quietLogger,
  });
}, 60_000);

test('there are committed histories to replay', async () => {
  expect((await loadHistories()).length).toBeGreaterThanOrEqual(1);
});

test('every committed history replays against the current workflow code', async () => {
  const histories = await loadHistories();
  const failures: string[] = [];
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, histories)) {
    if (result.error) failures.push(`${result.workflowId}: ${String(result.error)}`);
  }
  expect(failures).toEqual([]);
}, 60_000);

/**
 * Proof that the band can fail: a copy of the workflow whose first two steps are swapped
 * (reserve stock before writing the order) must not replay the committed histories.
 */
test('a workflow with two steps swapped fails replay with a determinism violation', async () => {
  await mkdir(path.join(REPO_ROOT, '.data'), { recursive: true });
  const workDir = await mkdtemp(path.join(REPO_ROOT, '.data', 'replay-altered-'));
  try {
    const altered = path.join(workDir, 'workflows');
    await cp(path.join(REPO_ROOT, 'workflows'), altered, { recursive: true });
    const sagaFile = path.join(altered, 'order-saga.ts');
    const source = await readFile(sagaFile, 'utf8');
    const swapped = source
      .replace('steps.createOrder.executeWithOptions', 'steps.__FIRST__.executeWithOptions')
      .replace('steps.reserveInventory.executeWithOptions', 'steps.createOrder.executeWithOptions')
      .replace('steps.__FIRST__.executeWithOptions', 'steps.reserveInventory.executeWithOptions');
    expect(swapped).not.toEqual(source);
    await writeFile(sagaFile, swapped);
    const alteredBundle = await bundleWorkflowCode({ workflowsPath: altered, logger: quietLogger });
    const errors: unknown[] = [];
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: alteredBundle },
      await loadHistories(),
    )) {
      errors.push(result.error);
    }
    expect(errors.length).toBeGreaterThan(0);
    for (const error of errors) expect(error).toBeInstanceOf(DeterminismViolationError);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}, 60_000);
