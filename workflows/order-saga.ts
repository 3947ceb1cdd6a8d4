import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { Activities } from '../activities';
import {
  ErrorTypes,
  PATCHES,
  paymentTaskQueueFor,
  QUERY_STATE,
  STEP_NAMES,
  stepKey,
  UPDATE_APPROVE,
  UPDATE_REJECT,
  SIGNAL_CANCEL_REQUESTED,
  type DecidedBy,
  type FailureReason,
  type OrderSagaInput,
  type OrderSagaResult,
  type OrderSagaState,
  type OrderStatus,
  type StepName,
  type StepOutcome,
  type StepState,
} from './contracts';
import { Saga } from './saga';
import { OrderStatusKey } from './search-attributes';

// Forward steps: transient failures retry with exponential backoff; a step that exhausts
// its budget fails the order with `step_timeout`. Business refusals are returned, not
// thrown, so they never retry. WAIT_CANCELLATION_COMPLETED: on cancel, wait for the
// activity to really stop, so a step is never reported cancelled while it committed.
// The budget is time, not attempts: the chaos drills saw a 10 s Postgres restart under
// load fail healthy orders, because attempts that timed out while the backlog drained
// used up a 10-attempt budget. A database outage shorter than the budget costs no order.
// (Timeouts and retry policies are not part of the commands replay compares.)
const STEP_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '2m',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s' },
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};
// Payment calls a provider: shorter timeout, heartbeats so cancellation reaches it, and a
// shorter budget: a gateway down for a minute fails the order rather than hold its stock.
const PAYMENT_OPTIONS: ActivityOptions = {
  ...STEP_OPTIONS,
  startToCloseTimeout: '3s',
  scheduleToCloseTimeout: '1m',
  heartbeatTimeout: '2s',
};
// After the point of no return the step must finish, however long the database is away:
// no budget at all. Its own proxy: executeWithOptions deep-merges its options into the
// proxy's, so through `steps` it inherited the forward steps' budget (until this change,
// their 10 attempts), which a pivot must not have.
const PIVOT_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};
// One attempt per call: the saga helper retries compensations itself, forever, so it can
// count failures and flag the order REQUIRES_ATTENTION.
const COMPENSATION_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10s',
  heartbeatTimeout: '5s',
  retry: { maximumAttempts: 1 },
};
// Status bookkeeping retries until it succeeds.
const BOOKKEEPING_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
};

// v3: the database steps before and after the provider calls (createOrder,
// reserveInventory, completeOrder) run as local activities: the worker runs them inside the
// workflow task and records a marker, instead of the server scheduling, dispatching and
// recording each as a task of its own. Same timeouts and budget as above. A worker that
// dies mid-step leaves the workflow task to time out and run again elsewhere, where the
// step's ledger row makes the rerun change nothing; what a lost run did that its rerun
// does not redo is undone by compensations registered early (see undoReservation).
// Calls to other services stay activities: fraud screening, the charge (behind the
// payments bulkhead) and the shipment. They may be slow or heartbeat, and fraud screening,
// the last step before money moves, ends the workflow task: a cancel that arrived while
// the local steps ran is seen there, before the charge is scheduled.
//
// Backoffs past LOCAL_RETRY_THRESHOLD wait on a workflow timer rather than inside the
// workflow task, so a step that keeps failing (Postgres down) does not hold a workflow task
// slot for its whole budget, and a cancel lands between its attempts.
const LOCAL_RETRY_THRESHOLD = '2s';
const LOCAL_STEP_OPTIONS: LocalActivityOptions = {
  startToCloseTimeout: STEP_OPTIONS.startToCloseTimeout,
  scheduleToCloseTimeout: STEP_OPTIONS.scheduleToCloseTimeout,
  retry: STEP_OPTIONS.retry,
  localRetryThreshold: LOCAL_RETRY_THRESHOLD,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};
const LOCAL_PIVOT_OPTIONS: LocalActivityOptions = {
  startToCloseTimeout: PIVOT_OPTIONS.startToCloseTimeout,
  retry: PIVOT_OPTIONS.retry,
  localRetryThreshold: LOCAL_RETRY_THRESHOLD,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

const steps = proxyActivities<Activities>(STEP_OPTIONS);
const pivot = proxyActivities<Activities>(PIVOT_OPTIONS);
const localSteps = proxyLocalActivities<Activities>(LOCAL_STEP_OPTIONS);
const localPivot = proxyLocalActivities<Activities>(LOCAL_PIVOT_OPTIONS);
const compensations = proxyActivities<Activities>(COMPENSATION_OPTIONS);
const bookkeeping = proxyActivities<Activities>(BOOKKEEPING_OPTIONS);

export const stateQuery = defineQuery<OrderSagaState>(QUERY_STATE);
// The API sends its caller's principal (DecidedBy) as the updates' argument, for the
// history; the handlers need nothing from it.
export const approveUpdate = defineUpdate<void>(UPDATE_APPROVE);
export const rejectUpdate = defineUpdate<void>(UPDATE_REJECT);
export const cancelRequestedSignal = defineSignal<[DecidedBy]>(SIGNAL_CANCEL_REQUESTED);

/** A step refused for a business reason; unwinds the saga with that failure reason. */
class StepRefused extends Error {
  constructor(readonly reason: FailureReason) {
    super(reason);
  }
}

const dollars = (cents: number): string => `$${(cents / 100).toFixed(2)}`;

export async function orderSaga(input: OrderSagaInput): Promise<OrderSagaResult> {
  const { workflowId } = workflowInfo();
  const { orderId } = input;
  const call = (step: string) => ({ orderId, idempotencyKey: stepKey(workflowId, step) });

  // v3: the database steps run as local activities (LOCAL_STEP_OPTIONS). Asked before the
  // first step, where the commands start to differ; runs started before this change (no
  // marker in their history) replay with activities.
  const localDbSteps = patched(PATCHES.localDbSteps);
  const db = localDbSteps ? localSteps : steps;
  const dbOptions: ActivityOptions & LocalActivityOptions = localDbSteps ? LOCAL_STEP_OPTIONS : STEP_OPTIONS;
  const dbPivot = localDbSteps ? localPivot : pivot;
  // The activity's pivot options come from its proxy (executeWithOptions merges them in).
  const dbPivotOptions: LocalActivityOptions = localDbSteps ? LOCAL_PIVOT_OPTIONS : {};

  const state: OrderSagaState = {
    orderId,
    status: 'PENDING',
    failureReason: null,
    steps: STEP_NAMES.map((name): StepState => ({
      name,
      status: name === 'approval' && !input.requiresApproval ? 'SKIPPED' : 'PENDING',
      attempts: 0,
    })),
  };
  const stepState = (name: StepName): StepState => state.steps.find((s) => s.name === name)!;
  const setStatus = (status: OrderStatus): void => {
    state.status = status;
    upsertSearchAttributes([{ key: OrderStatusKey, value: status }]);
    setCurrentDetails(`**${status}**${state.failureReason ? ` — ${state.failureReason}` : ''}`);
  };
  const recordStatus = async (status: OrderStatus): Promise<void> => {
    setStatus(status);
    await bookkeeping.markOrderStatus.executeWithOptions(
      { ...BOOKKEEPING_OPTIONS, summary: `Status ${status}` },
      [{ orderId, status }],
    );
  };

  // Approval arrives as an Update whose validator rejects it unless the order needs one
  // and the gate is not passed yet. A decision may arrive just before the saga reaches the
  // gate (the database shows AWAITING_APPROVAL as soon as the reservation commits, a moment
  // before the workflow hears of it); it is kept and applied at the gate.
  let decision: 'approved' | 'rejected' | undefined;
  let gatePassed = false;
  const validateAwaiting = (): void => {
    const beforeOrAtGate = state.status === 'PENDING' || state.status === 'AWAITING_APPROVAL';
    if (!input.requiresApproval || gatePassed || decision !== undefined || !beforeOrAtGate) {
      throw ApplicationFailure.nonRetryable(
        `order is ${state.status}, not awaiting approval`,
        ErrorTypes.NotAwaitingApproval,
      );
    }
  };
  setHandler(stateQuery, () => state);
  setHandler(approveUpdate, () => void (decision = 'approved'), { validator: validateAwaiting });
  setHandler(rejectUpdate, () => void (decision = 'rejected'), { validator: validateAwaiting });
  // Only for the record (the history keeps who cancelled); schedules nothing.
  setHandler(cancelRequestedSignal, () => undefined);

  const saga = new Saga(
    { sleep: (ms) => sleep(ms), nonCancellable: (fn) => CancellationScope.nonCancellable(fn) },
    {
      onUnwindStart: () => recordStatus('COMPENSATING'),
      onAttention: (needed) => recordStatus(needed ? 'REQUIRES_ATTENTION' : 'COMPENSATING'),
    },
  );

  /** Runs a forward step; a refusal unwinds the saga. */
  let failedStep: StepName | null = null;
  const forward = async (name: StepName, run: () => Promise<StepOutcome>): Promise<void> => {
    const step = stepState(name);
    step.status = 'RUNNING';
    step.attempts++;
    let outcome: StepOutcome;
    try {
      outcome = await run();
    } catch (error) {
      // Out of retries (or the step was cancelled): the saga unwinds from here.
      if (!isCancellation(error)) {
        step.status = 'FAILED';
        failedStep = name;
      }
      throw error;
    }
    step.status = outcome.ok ? 'COMPLETED' : 'FAILED';
    if (!outcome.ok) {
      failedStep = name;
      throw new StepRefused(outcome.reason);
    }
  };

  /** Registers the undo of `name` before it runs; a no-op activity if nothing was done. */
  const undoBeforeRunning = (name: StepName, compensation: string, run: () => Promise<void>): void => {
    saga.add({
      name: compensation,
      run: async () => {
        const step = stepState(name);
        const wasDone = step.status === 'COMPLETED' || step.status === 'COMPENSATING';
        if (wasDone) step.status = 'COMPENSATING';
        await run();
        if (wasDone) step.status = 'COMPENSATED';
      },
    });
  };

  let ending: { status: 'FAILED' | 'CANCELLED'; reason: FailureReason | null };
  try {
    undoBeforeRunning('createOrder', 'cancelOrder', () =>
      compensations.cancelOrder.executeWithOptions(
        {
          ...COMPENSATION_OPTIONS,
          summary: `Close the order ${ending.status}${ending.reason ? ` (${ending.reason})` : ''}`,
        },
        [{ ...call('cancelOrder'), outcome: ending.status, failureReason: ending.reason, failedStep }],
      ),
    );
    // The reservation's undo. v3 registers it before the first step: a local activity's
    // effects can outlive a lost workflow task (the worker died before recording it), and
    // when the rerun takes another path (a cancel arrived meanwhile) it never reaches the
    // reservation again; only an undo registered already releases what that run reserved.
    // The release also fences the step (db/ledger.ts), and is a no-op with nothing reserved.
    const undoReservation = (): void =>
      undoBeforeRunning('reserveInventory', 'releaseInventory', () =>
        compensations.releaseInventory.executeWithOptions(
          { ...COMPENSATION_OPTIONS, summary: 'Release reserved stock' },
          [call('releaseInventory')],
        ),
      );
    if (localDbSteps) undoReservation();
    await forward('createOrder', () =>
      db.createOrder.executeWithOptions({ ...dbOptions, summary: 'Write the order' }, [
        { ...call('createOrder'), input },
      ]),
    );

    if (!localDbSteps) undoReservation();
    await forward('reserveInventory', () =>
      db.reserveInventory.executeWithOptions(
        { ...dbOptions, summary: `Reserve ${input.items.length} line(s) of stock` },
        [{ ...call('reserveInventory'), items: input.items, awaitApproval: input.requiresApproval }],
      ),
    );

    if (input.requiresApproval) {
      setStatus('AWAITING_APPROVAL');
      stepState('approval').status = 'RUNNING';
      // The API validated the text (e.g. '24h') when it read APPROVAL_TIMEOUT.
      const decided = await condition(() => decision !== undefined, input.approvalTimeout as Duration);
      const verdict = decided ? decision! : 'timed_out';
      gatePassed = true;
      await bookkeeping.recordApproval.executeWithOptions(
        { ...BOOKKEEPING_OPTIONS, summary: `Record approval: ${verdict}` },
        [{ ...call('approval'), decision: verdict }],
      );
      stepState('approval').status = verdict === 'approved' ? 'COMPLETED' : 'FAILED';
      if (verdict !== 'approved') {
        throw new StepRefused(verdict === 'rejected' ? 'approval_rejected' : 'approval_timeout');
      }
      setStatus('PENDING');
    }

    // v2: screen for fraud before any money moves. Runs started before this change
    // (no marker in their history) replay without it.
    if (patched(PATCHES.fraudScreening)) {
      await forward('fraudScreening', () =>
        steps.screenOrder.executeWithOptions({ ...STEP_OPTIONS, summary: 'Screen for fraud' }, [
          { ...call('fraudScreening'), customerId: input.customerId, totalCents: input.totalCents },
        ]),
      );
    } else {
      stepState('fraudScreening').status = 'SKIPPED';
    }

    // v2: payment calls go to the payments task queue, a bulkhead with its own worker
    // slots and rate limit; the refund follows the charge.
    const paymentQueue = patched(PATCHES.paymentBulkhead)
      ? { taskQueue: paymentTaskQueueFor(workflowInfo().taskQueue) }
      : {};
    undoBeforeRunning('chargePayment', 'refundPayment', () =>
      compensations.refundPayment.executeWithOptions(
        {
          ...COMPENSATION_OPTIONS,
          ...paymentQueue,
          summary: `Refund ${dollars(input.totalCents)} if charged`,
        },
        [{ ...call('refundPayment'), chargeKey: stepKey(workflowId, 'chargePayment') }],
      ),
    );
    await forward('chargePayment', () =>
      steps.chargePayment.executeWithOptions(
        { ...PAYMENT_OPTIONS, ...paymentQueue, summary: `Charge ${dollars(input.totalCents)}` },
        [
          {
            ...call('chargePayment'),
            amountCents: input.totalCents,
            currency: input.currency,
            paymentToken: input.paymentToken,
          },
        ],
      ),
    );

    undoBeforeRunning('createShipment', 'cancelShipment', () =>
      compensations.cancelShipment.executeWithOptions(
        { ...COMPENSATION_OPTIONS, summary: 'Cancel the shipment if booked' },
        [call('cancelShipment')],
      ),
    );
    await forward('createShipment', () =>
      steps.createShipment.executeWithOptions(
        { ...STEP_OPTIONS, summary: `Ship to ${input.shippingAddress.country}` },
        [{ ...call('createShipment'), address: input.shippingAddress }],
      ),
    );

    // Point of no return: from here the order completes, even if cancelled meanwhile.
    saga.pivot();
    await CancellationScope.nonCancellable(() =>
      forward('completeOrder', () =>
        dbPivot.completeOrder.executeWithOptions({ ...dbPivotOptions, summary: 'Complete the order' }, [
          call('completeOrder'),
        ]),
      ),
    );
    setStatus('COMPLETED');
    return { orderId, status: 'COMPLETED', failureReason: null };
  } catch (error) {
    ending = classifyFailure(error);
  }

  state.failureReason = ending.reason;
  await saga.compensate();
  for (const step of state.steps) {
    if (step.status === 'PENDING' || step.status === 'RUNNING') step.status = 'SKIPPED';
  }
  setStatus(ending.status);
  return { orderId, status: ending.status, failureReason: ending.reason };
}

/** Why the saga stopped going forward. Anything unexpected fails the workflow task (a bug). */
function classifyFailure(error: unknown): { status: 'FAILED' | 'CANCELLED'; reason: FailureReason | null } {
  if (error instanceof StepRefused) return { status: 'FAILED', reason: error.reason };
  // Once a cancel was requested, whatever surfaced from the interrupted step is its echo.
  if (isCancellation(error) || CancellationScope.current().consideredCancelled) {
    return { status: 'CANCELLED', reason: null };
  }
  if (error instanceof ActivityFailure) return { status: 'FAILED', reason: 'step_timeout' };
  throw error;
}
