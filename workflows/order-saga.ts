import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  deprecatePatch,
  patched,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import {
  ErrorTypes,
  PATCHES,
  paymentTaskQueueFor,
  QUERY_STATE,
  STEP_ABANDONED,
  stepKey,
  UPDATE_APPROVE,
  UPDATE_REJECT,
  SIGNAL_CANCEL_REQUESTED,
  type DecidedBy,
  type OrderSagaInput,
  type OrderSagaResult,
  type OrderSagaState,
  type OrderStatus,
  type StepName,
  type StepOutcome,
} from '../contracts/index';
import { Saga } from './saga';
import { classifyFailure, SagaState, StepRefused, type Ending } from './saga-state';
import {
  BOOKKEEPING_OPTIONS,
  bookkeeping,
  COMPENSATION_OPTIONS,
  compensations,
  LOCAL_PIVOT_OPTIONS,
  LOCAL_STEP_OPTIONS,
  localPivot,
  localSteps,
  PAYMENT_OPTIONS,
  STEP_OPTIONS,
  steps,
} from './step-options';

export const stateQuery = defineQuery<OrderSagaState>(QUERY_STATE);
// The API sends its caller's principal (DecidedBy) as the updates' argument, for the
// history; the handlers need nothing from it.
export const approveUpdate = defineUpdate<void>(UPDATE_APPROVE);
export const rejectUpdate = defineUpdate<void>(UPDATE_REJECT);
export const cancelRequestedSignal = defineSignal<[DecidedBy]>(SIGNAL_CANCEL_REQUESTED);

const dollars = (cents: number): string => `$${(cents / 100).toFixed(2)}`;

export async function orderSaga(input: OrderSagaInput): Promise<OrderSagaResult> {
  const { workflowId } = workflowInfo();
  const { orderId } = input;
  const call = (step: string) => ({ orderId, idempotencyKey: stepKey(workflowId, step) });

  // v4: two workflow tasks per happy saga (see the step calls below); v3 runs (no v4 marker)
  // replay as they were recorded. v3's own v1/v2 guards are retired (README, "Retire a
  // patch"): deprecatePatch() accepts the markers v3 histories carry.
  const twoTasks = patched(PATCHES.twoTaskSaga);
  if (!twoTasks) deprecatePatch(PATCHES.localDbSteps);
  const db = localSteps;
  const dbOptions = LOCAL_STEP_OPTIONS;

  const state = new SagaState(input);
  const recordStatus = async (status: OrderStatus): Promise<void> => {
    state.setStatus(status);
    await bookkeeping.markOrderStatus.executeWithOptions(
      { ...BOOKKEEPING_OPTIONS, summary: `Status ${status}` },
      [{ orderId, status }],
    );
  };

  // The database shows AWAITING_APPROVAL as soon as the reservation commits, a moment before
  // the workflow reaches the gate: a decision arriving in between is kept for the gate.
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
  setHandler(stateQuery, () => state.view);
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
  /** Registers the undo of `step` before the step runs: a step that timed out may have committed. */
  const undoBeforeRunning = (step: StepName, compensation: string, run: () => Promise<void>): void =>
    saga.add({ name: compensation, run: state.undoing(step, run) });

  let ending: Ending;
  try {
    undoBeforeRunning('createOrder', 'cancelOrder', () =>
      compensations.cancelOrder.executeWithOptions(
        {
          ...COMPENSATION_OPTIONS,
          summary: `Close the order ${ending.status}${ending.reason ? ` (${ending.reason})` : ''}`,
        },
        [
          {
            ...call('cancelOrder'),
            outcome: ending.status,
            failureReason: ending.reason,
            failedStep: state.failedStep,
          },
        ],
      ),
    );
    // The release is registered before the first step: a lost workflow task's local activity
    // may have reserved stock that a rerun taking another path (a cancel arrived) never
    // reaches again. The release is a no-op with nothing reserved.
    undoBeforeRunning('reserveInventory', 'releaseInventory', () =>
      compensations.releaseInventory.executeWithOptions(
        { ...COMPENSATION_OPTIONS, summary: 'Release reserved stock' },
        [call('releaseInventory')],
      ),
    );
    const order = { ...call('createOrder'), input };
    const reservation = { ...call('reserveInventory'), items: input.items };
    const screening = { ...call('fraudScreening'), customerId: input.customerId, totalCents: input.totalCents };
    const reserveSummary = `Reserve ${input.items.length} line(s) of stock`;
    // v4: the order, its reservation and (with no approval to wait for) its screening in one
    // local activity and one transaction; each still its own step. v3: one local activity each.
    const admitted = twoTasks
      ? db.admitOrder.executeWithOptions(
          {
            ...dbOptions,
            summary: `Write the order, ${reserveSummary.toLowerCase()}${input.requiresApproval ? '' : ', screen for fraud'}`,
          },
          [{ order, reservation, ...(input.requiresApproval ? {} : { screening }) }],
        )
      : undefined;
    await state.forward('createOrder', async () =>
      admitted
        ? (await admitted).createOrder
        : db.createOrder.executeWithOptions({ ...dbOptions, summary: 'Write the order' }, [order]),
    );
    await state.forward('reserveInventory', async () =>
      admitted
        ? ((await admitted).reserveInventory ?? STEP_ABANDONED)
        : db.reserveInventory.executeWithOptions({ ...dbOptions, summary: reserveSummary }, [reservation]),
    );

    if (input.requiresApproval) {
      state.setStatus('AWAITING_APPROVAL');
      state.step('approval').status = 'RUNNING';
      // The API validated the duration text (e.g. '24h') when it read APPROVAL_TIMEOUT.
      const decided = await condition(() => decision !== undefined, input.approvalTimeout as Duration);
      const verdict = decided ? decision! : 'timed_out';
      gatePassed = true;
      // An activity, never a local one (also in v4): the decision comes from an update, and
      // only once the update is in the history may the database say it was made. A local
      // activity would commit within the workflow task that accepts it; should that task be
      // lost, the update is lost with it while the database already shows the decision.
      await bookkeeping.recordApproval.executeWithOptions(
        { ...BOOKKEEPING_OPTIONS, summary: `Record approval: ${verdict}` },
        [{ ...call('approval'), decision: verdict }],
      );
      state.step('approval').status = verdict === 'approved' ? 'COMPLETED' : 'FAILED';
      if (verdict !== 'approved') {
        throw new StepRefused(verdict === 'rejected' ? 'approval_rejected' : 'approval_timeout');
      }
      state.setStatus('PENDING');
    }

    // Fraud screening before money moves: v4 screened with the other database steps, or (after
    // the approval gate) screens now, locally; v3 ran it as an activity, to end the workflow
    // task before the charge.
    if (!twoTasks) deprecatePatch(PATCHES.fraudScreening);
    await state.forward('fraudScreening', async () =>
      admitted && !input.requiresApproval
        ? ((await admitted).fraudScreening ?? STEP_ABANDONED)
        : twoTasks
          ? db.screenOrder.executeWithOptions({ ...dbOptions, summary: 'Screen for fraud' }, [screening])
          : steps.screenOrder.executeWithOptions({ ...STEP_OPTIONS, summary: 'Screen for fraud' }, [screening]),
    );

    // Payment calls go to the payments bulkhead (own slots and rate limit); the refund follows the charge.
    if (!twoTasks) deprecatePatch(PATCHES.paymentBulkhead);
    const paymentQueue = { taskQueue: paymentTaskQueueFor(workflowInfo().taskQueue) };
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
    const charge = {
      ...call('chargePayment'),
      amountCents: input.totalCents,
      currency: input.currency,
      paymentToken: input.paymentToken,
    };
    const shipment = { ...call('createShipment'), address: input.shippingAddress };
    // v4: what the charge-and-ship activity said of the charge, once it returned.
    let charged: StepOutcome | undefined;
    const undoShipment = (): void =>
      undoBeforeRunning('createShipment', 'cancelShipment', () =>
        // A declined charge never reached the carrier: nothing to cancel there.
        charged?.ok === false
          ? Promise.resolve()
          : compensations.cancelShipment.executeWithOptions(
              { ...COMPENSATION_OPTIONS, summary: 'Cancel the shipment if booked' },
              [{ ...call('cancelShipment'), bookingKey: stepKey(workflowId, 'createShipment') }],
            ),
      );
    if (twoTasks) {
      // v4: the charge and the shipment in one activity on the payments queue, so the saga's
      // second workflow task is its last. A cancel reaches whichever call runs (heartbeats);
      // one that arrived during the local steps is seen as soon as the activity is scheduled,
      // and the fenced refund undoes a charge that raced it.
      undoShipment();
      let shipped: StepOutcome | undefined;
      await state.forward('chargePayment', async () => {
        const outcome = await steps.chargeAndShip.executeWithOptions(
          {
            ...PAYMENT_OPTIONS,
            ...paymentQueue,
            summary: `Charge ${dollars(input.totalCents)}, ship to ${input.shippingAddress.country}`,
          },
          [{ charge, shipment }],
        );
        shipped = outcome.shipment;
        charged = outcome.charge;
        return outcome.charge;
      });
      await state.forward('createShipment', () => Promise.resolve(shipped!));
      // A cancel that came in before the activity finished (it may have run too quickly to
      // hear it) wins over the point of no return, unless a lost workflow task already
      // completed the order: the fence tells which, and makes sure completion never runs.
      if (CancellationScope.current().consideredCancelled) {
        const completed = await CancellationScope.nonCancellable(() =>
          localPivot.fenceCompletion.executeWithOptions(
            { ...LOCAL_PIVOT_OPTIONS, summary: 'Cancelled before the point of no return' },
            [],
          ),
        );
        if (!completed) throw new CancelledFailure('cancelled before the point of no return');
      }
    } else {
      await state.forward('chargePayment', () =>
        steps.chargePayment.executeWithOptions(
          { ...PAYMENT_OPTIONS, ...paymentQueue, summary: `Charge ${dollars(input.totalCents)}` },
          [charge],
        ),
      );
      undoShipment();
      await state.forward('createShipment', () =>
        steps.createShipment.executeWithOptions(
          { ...STEP_OPTIONS, summary: `Ship to ${input.shippingAddress.country}` },
          [shipment],
        ),
      );
    }

    // Point of no return: from here the order completes, even if cancelled meanwhile.
    saga.pivot();
    await CancellationScope.nonCancellable(() =>
      state.forward('completeOrder', () =>
        localPivot.completeOrder.executeWithOptions({ ...LOCAL_PIVOT_OPTIONS, summary: 'Complete the order' }, [
          call('completeOrder'),
        ]),
      ),
    );
    state.setStatus('COMPLETED');
    return { orderId, status: 'COMPLETED', failureReason: null };
  } catch (error) {
    ending = classifyFailure(error);
  }

  state.failing(ending.reason);
  await saga.compensate();
  state.close(ending.status);
  return { orderId, status: ending.status, failureReason: ending.reason };
}
