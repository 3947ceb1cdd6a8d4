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
import { workflowBundleConverters } from '../../lib/payload-codec';

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
    ...workflowBundleConverters, // as the workers bundle it
  });
}, 60_000);

test('when the replay band runs, then there are committed histories to replay', async () => {
  expect((await loadHistories()).length).toBeGreaterThanOrEqual(1);
});

test('when every committed history is replayed against the current workflow code, then each replays', async () => {
  const histories = await loadHistories();
  const failures: string[] = [];
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, histories)) {
    if (result.error) failures.push(`${result.workflowId}: ${String(result.error)}`);
  }
  expect(failures).toEqual([]);
}, 60_000);

/** Bundles a copy of workflows/ (and the contracts/ it imports) with `alter` applied to order-saga.ts and replays `histories` against it. */
async function replayAltered(
  alter: (source: string) => string,
  histories: Awaited<ReturnType<typeof loadHistories>>,
) {
  await mkdir(path.join(REPO_ROOT, '.data'), { recursive: true });
  const workDir = await mkdtemp(path.join(REPO_ROOT, '.data', 'replay-altered-'));
  try {
    const altered = path.join(workDir, 'workflows');
    await cp(path.join(REPO_ROOT, 'workflows'), altered, { recursive: true });
    // The workflow imports the shared contract from its sibling folder.
    await cp(path.join(REPO_ROOT, 'contracts'), path.join(workDir, 'contracts'), { recursive: true });
    const sagaFile = path.join(altered, 'order-saga.ts');
    const source = await readFile(sagaFile, 'utf8');
    const changed = alter(source);
    expect(changed).not.toEqual(source);
    await writeFile(sagaFile, changed);
    const alteredBundle = await bundleWorkflowCode({ workflowsPath: altered, logger: quietLogger });
    const errors: unknown[] = [];
    for await (const result of Worker.runReplayHistories({ workflowBundle: alteredBundle }, histories)) {
      errors.push(result.error);
    }
    return errors;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * Proof that the band can fail: a copy of the workflow whose first two steps are swapped
 * (reserve stock before writing the order) must not replay the committed histories.
 */
test('when a workflow has two steps swapped, then replay fails with a determinism violation', async () => {
  const errors = await replayAltered(
    (source) =>
      source
        .replace('db.createOrder.executeWithOptions', 'db.__FIRST__.executeWithOptions')
        .replace('db.reserveInventory.executeWithOptions', 'db.createOrder.executeWithOptions')
        .replace('db.__FIRST__.executeWithOptions', 'db.reserveInventory.executeWithOptions'),
    await loadHistories(),
  );
  expect(errors.length).toBeGreaterThan(0);
  for (const error of errors) expect(error).toBeInstanceOf(DeterminismViolationError);
}, 60_000);

/**
 * The v2 changes are only safe because of their patched() guards: with the guards forced
 * on, the histories recorded before the change (v1) that reach the changed steps no longer
 * replay.
 */
test('when the v2 workflow loses its patched() guards, then it breaks the v1 histories that reach the change', async () => {
  const v1 = (await loadHistories()).filter((h) => h.workflowId.endsWith('.v1'));
  expect(v1.length).toBeGreaterThan(0);
  // Only the v2 guards: the v3 one, forced on, would break every v1 history at its first step.
  const errors = await replayAltered(
    (source) => source.replace(/patched\(PATCHES\.(fraudScreening|paymentBulkhead)\)/g, 'true'),
    v1,
  );
  const broken = errors.filter((error) => error instanceof DeterminismViolationError);
  // Paths that stop before the fraud screening (out of stock, cancelled early, rejected…)
  // never reach the change; every path that reaches the payment step must break.
  expect(broken.length).toBeGreaterThanOrEqual(7);
}, 60_000);

/**
 * The v3 change (database steps as local activities) is guarded too: forced on, every v2
 * history breaks at its first step, which it recorded as an activity, not a marker.
 */
test('when the v3 workflow loses its patched() guard, then it breaks every v2 history', async () => {
  const v2 = (await loadHistories()).filter((h) => h.workflowId.endsWith('.v2'));
  expect(v2.length).toBeGreaterThan(0);
  const errors = await replayAltered((source) => source.replace('patched(PATCHES.localDbSteps)', 'true'), v2);
  expect(errors).toHaveLength(v2.length);
  for (const error of errors) expect(error).toBeInstanceOf(DeterminismViolationError);
}, 60_000);
