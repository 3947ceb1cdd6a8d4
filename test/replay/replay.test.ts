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
import { ReplayError } from '@temporalio/worker';
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
    (await loadHistories()).filter((h) => h.workflowId.endsWith('.v3')),
  );
  expect(errors.length).toBeGreaterThan(0);
  for (const error of errors) expect(error).toBeInstanceOf(DeterminismViolationError);
}, 60_000);

/** The same for v4: its first step scheduled as an activity instead of a local one. */
test('when v4 runs its first step as an activity instead of a local one, then replay fails with a determinism violation', async () => {
  const v4 = (await loadHistories()).filter((h) => h.workflowId.endsWith('.v4'));
  expect(v4.length).toBeGreaterThan(0);
  const errors = await replayAltered(
    (source) => source.replace('db.admitOrder.executeWithOptions', 'steps.admitOrder.executeWithOptions'),
    v4,
  );
  expect(errors).toHaveLength(v4.length);
  for (const error of errors) expect(error).toBeInstanceOf(DeterminismViolationError);
}, 60_000);

/**
 * The retired v1/v2 guards are deprecatePatch() now: the v3 histories carry their markers
 * (recorded as not deprecated), and the replay above accepts them. Removing the calls
 * altogether is the later retirement step, safe only once no run recorded before the
 * deprecation is open: against those histories it fails, which is why it waits.
 */
test('when the deprecated guards are removed altogether, then the histories recorded before the deprecation break', async () => {
  const v3 = (await loadHistories()).filter((h) => h.workflowId.endsWith('.v3'));
  expect(v3.length).toBeGreaterThan(0);
  const errors = await replayAltered(
    (source) => source.replace(/deprecatePatch\(PATCHES\.\w+\);/g, 'void 0;'),
    v3,
  );
  expect(errors).toHaveLength(v3.length);
  for (const error of errors) expect(error).toBeInstanceOf(DeterminismViolationError);
}, 60_000);

/**
 * The v4 change (two workflow tasks) is guarded: forced on, no v3 history replays (a
 * determinism violation, or v4 reading v3's first local activity result as its own and
 * failing the workflow task: either way the run would be stuck).
 */
test('when the v4 workflow loses its patched() guard, then it breaks every v3 history', async () => {
  const v3 = (await loadHistories()).filter((h) => h.workflowId.endsWith('.v3'));
  expect(v3.length).toBeGreaterThan(0);
  const errors = await replayAltered((source) => source.replace('patched(PATCHES.twoTaskSaga)', 'true'), v3);
  expect(errors).toHaveLength(v3.length);
  for (const error of errors) expect(error).toBeInstanceOf(ReplayError);
}, 60_000);
