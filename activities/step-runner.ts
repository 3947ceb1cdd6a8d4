import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { ErrorTypes, type StepName, type StepOutcome } from '../contracts/index';
import { claimKey, fenceStep, findRecorded, recordResults, runOnce } from '../store/ledger';
import { moveStep, moveStepAndNext } from '../store/lifecycle';
import type { Pool, PoolClient } from '../store/pool';
import { isDatabaseUnavailable } from '../store/errors';
import { withTransaction } from '../store/tx';
import { ProviderUnavailableError } from './providers/circuit-breaker';
import { TransientProviderError } from './providers/types';

/** Who is running: the workflow id and the attempt, from Temporal's activity context. */
export function currentStep(): { workflowId: string; attempt: number; signal: AbortSignal } {
  const context = Context.current();
  const workflowId = context.info.workflowExecution?.workflowId;
  if (!workflowId) throw new Error('saga activities run only inside a workflow');
  return {
    workflowId,
    attempt: context.info.attempt,
    signal: context.cancellationSignal,
  };
}

/**
 * Runs a provider call while heartbeating, so a long call notices cancellation and a
 * dead worker is detected by the heartbeat timeout. Transient provider errors and calls
 * refused by an open circuit breaker become retryable failures with an explicit type
 * string (TransientProviderError, ProviderUnavailable): the saga's retry policy backs off.
 */
export async function callProvider<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const context = Context.current();
  const beat = setInterval(() => context.heartbeat(), 500);
  try {
    return await reportCancellation(() => call(context.cancellationSignal));
  } catch (error) {
    if (error instanceof TransientProviderError) {
      throw ApplicationFailure.retryable(error.message, ErrorTypes.TransientProviderError);
    }
    if (error instanceof ProviderUnavailableError) {
      throw ApplicationFailure.retryable(error.message, ErrorTypes.ProviderUnavailable);
    }
    throw error;
  } finally {
    clearInterval(beat);
  }
}

/**
 * Runs a step's work; a failure after the workflow cancelled the step (heartbeat, or a local
 * activity's cancel) is reported as that cancellation, not as a failure, so the step is not
 * retried and the saga unwinds as CANCELLED at once.
 */
export async function reportCancellation<T>(work: () => Promise<T>): Promise<T> {
  const { cancellationSignal } = Context.current();
  try {
    return await work();
  } catch (error) {
    if (cancellationSignal.aborted) throw new CancelledFailure('activity cancelled');
    throw error;
  }
}

/** What every step and compensation is called with; the key is decided by the workflow. */
export interface StepCall {
  orderId: string;
  /** `<workflowId>:<step>`. */
  idempotencyKey: string;
}

export interface ForwardStep<P> {
  call: StepCall;
  step: StepName;
  /** The provider call, if the step makes one: heartbeats and the cancel signal reach it. */
  provider?: (signal: AbortSignal) => Promise<P>;
  /** The step's business rows and events, in its one transaction; a refusal is returned. */
  commit: (tx: PoolClient, provided: P) => Promise<StepOutcome>;
  /**
   * The step the saga runs at once after this one succeeds: shown RUNNING from this step's
   * commit, so a provider step needs no commit of its own before its call.
   */
  next?: StepName;
}

/**
 * Runs a forward step once per idempotency key: a provider step that already ran returns its
 * recorded outcome without calling the provider again, and a retry shows its attempt while
 * it calls; then the step's one transaction
 * claims the ledger key, commits the business rows and events, moves the step to COMPLETED
 * or FAILED (with its attempt) and, on success, shows the `next` step RUNNING.
 */
export async function runStep<P = undefined>(pool: Pool, spec: ForwardStep<P>): Promise<StepOutcome> {
  const { workflowId, attempt } = currentStep();
  let provided = undefined as P;
  if (spec.provider) {
    const recorded = await findRecorded<StepOutcome>(pool, spec.call.idempotencyKey);
    if (recorded) return recorded;
    // A retry shows its attempt while it waits on the provider (a first attempt needs no
    // commit of its own: the step before showed it RUNNING).
    if (attempt > 1) await moveStep(pool, spec.call.orderId, spec.step, 'RUNNING', attempt);
    provided = await callProvider(spec.provider);
  }
  return reportCancellation(() =>
    withTransaction(pool, async (tx) => (await commitSteps(tx, [spec], provided, workflowId, attempt))[0]!),
  );
}

/**
 * Database-only forward steps, one after another in one transaction (saga v4's first local
 * activity: the order, its reservation, its screening), each under its own idempotency key
 * exactly as runStep runs it; stops at the first refusal. The steps' results are stored in
 * the ledger together, before the commit. Returns each run step's outcome.
 */
export async function runSteps(pool: Pool, specs: readonly ForwardStep<undefined>[]): Promise<StepOutcome[]> {
  const { workflowId, attempt } = currentStep();
  return reportCancellation(() =>
    withTransaction(pool, (tx) => commitSteps(tx, specs, undefined, workflowId, attempt)),
  );
}

/**
 * Steps' part of a transaction, one after another up to the first refusal: for each, the
 * ledger claim (a key claimed before replays its stored outcome), its rows and events, its
 * status; then the outcomes of the steps that ran, stored in the ledger in one statement.
 */
async function commitSteps<P>(
  tx: PoolClient,
  specs: readonly ForwardStep<P>[],
  provided: P,
  workflowId: string,
  attempt: number,
): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  const ran: Array<{ idempotencyKey: string; result: StepOutcome }> = [];
  for (const { call, step, commit, next } of specs) {
    const claim = await claimKey<StepOutcome>(tx, { idempotencyKey: call.idempotencyKey, workflowId, step });
    let outcome: StepOutcome;
    if (!claim.claimed) {
      outcome = claim.result;
    } else {
      outcome = await commit(tx, provided);
      if (outcome.ok && next) {
        await moveStepAndNext(tx, call.orderId, { name: step, status: 'COMPLETED', attempt }, next);
      } else {
        await moveStep(tx, call.orderId, step, outcome.ok ? 'COMPLETED' : 'FAILED', attempt);
      }
      ran.push({ idempotencyKey: call.idempotencyKey, result: outcome });
    }
    outcomes.push(outcome);
    if (!outcome.ok) break;
  }
  await recordResults(tx, ran);
  return outcomes;
}

export interface Compensation<T, P> {
  call: StepCall;
  /** The compensation's own name (its ledger step). */
  name: string;
  /** The forward step it undoes, fenced before anything is undone. */
  undoes: StepName;
  /**
   * For a compensation that calls a provider: reads what there is to undo (after the fence),
   * null when nothing is, and the provider call that undoes it.
   */
  provider?: {
    find: (tx: PoolClient) => Promise<T | null>;
    call: (target: T, signal: AbortSignal) => Promise<P>;
  };
  /**
   * The undo's rows and events, in one transaction; returns whether anything was undone.
   * `forwardRecorded`: whether the forward step committed its effect (what its fence found),
   * so an undo can announce an effect that only the provider knew of.
   */
  undo: (
    tx: PoolClient,
    target: T | undefined,
    provided: P | undefined,
    forwardRecorded: boolean,
  ) => Promise<boolean>;
}

/**
 * Runs a compensation once per idempotency key, always fencing its forward step first
 * (store/ledger.ts fenceStep): a straggling attempt of the step can no longer commit, and
 * one in flight is waited for, so what it did is seen and undone. Without a provider the
 * fence and the undo are one transaction; with one, the fence and the read of what to undo
 * come first, then the provider call, then the undo's transaction. The step shows
 * COMPENSATING meanwhile, and COMPENSATED once something was undone. It heartbeats
 * throughout and waits out a database outage, so a healthy compensation never times out.
 */
export async function runCompensation<T = never, P = never>(
  pool: Pool,
  spec: Compensation<T, P>,
): Promise<void> {
  await heartbeating(() => whileDatabaseUnavailable(() => compensate(pool, spec)));
}

async function compensate<T, P>(pool: Pool, spec: Compensation<T, P>): Promise<void> {
  const { workflowId } = currentStep();
  const { call, undoes } = spec;
  const entry = { idempotencyKey: call.idempotencyKey, workflowId, step: spec.name };
  const undo = async (fenced: StepOutcome | undefined, target?: T, provided?: P): Promise<void> => {
    await runOnce(pool, entry, async (tx) => {
      const forward = fenced ?? (await fenceStep(tx, workflowId, undoes));
      if (await spec.undo(tx, target, provided, forward.ok)) {
        await moveStep(tx, call.orderId, undoes, 'COMPENSATED');
      }
      return null;
    });
  };
  if (!spec.provider) return undo(undefined);
  const { find, call: undoAtProvider } = spec.provider;
  const { fenced, target } = await withTransaction(pool, async (tx) => ({
    fenced: await fenceStep(tx, workflowId, undoes),
    target: await find(tx),
  }));
  if (target === null) return;
  await moveStep(pool, call.orderId, undoes, 'COMPENSATING');
  const provided = await callProvider((signal) => undoAtProvider(target, signal));
  await undo(fenced, target, provided);
}

/** How often a compensation heartbeats: well inside its heartbeat timeout (workflows/step-options.ts). */
const HEARTBEAT_EVERY_MS = 1_000;
/**
 * How long a compensation waits out an unavailable database before it fails the attempt:
 * longer than a Postgres restart or stall, shorter than its start-to-close timeout.
 */
const DATABASE_PATIENCE_MS = 40_000;
const DATABASE_RETRY_MS = 500;

/**
 * Heartbeats for as long as `work` runs: a compensation waiting on a stalled database is
 * alive, and must not be timed out (and counted a failure) for it; a dead worker still is.
 */
async function heartbeating<T>(work: () => Promise<T>): Promise<T> {
  const context = Context.current();
  const beat = setInterval(() => context.heartbeat(), HEARTBEAT_EVERY_MS);
  try {
    return await work();
  } finally {
    clearInterval(beat);
  }
}

/** Runs `work` again while the database is unavailable, for up to DATABASE_PATIENCE_MS. */
async function whileDatabaseUnavailable<T>(work: () => Promise<T>): Promise<T> {
  const { cancellationSignal } = Context.current();
  const deadline = Date.now() + DATABASE_PATIENCE_MS;
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if (!isDatabaseUnavailable(error) || Date.now() > deadline || cancellationSignal.aborted) throw error;
      await new Promise((resolve) => setTimeout(resolve, DATABASE_RETRY_MS));
    }
  }
}
