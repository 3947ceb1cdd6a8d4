import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  deprecatePatch,
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

  // v3 (database steps as local activities) is the only shape left: the v1 and v2 branches
  // are retired (README, "Retire a patch"), their markers still accepted where they stand.
  deprecatePatch(PATCHES.localDbSteps);
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
    await state.forward('createOrder', () =>
      db.createOrder.executeWithOptions({ ...dbOptions, summary: 'Write the order' }, [
        { ...call('createOrder'), input },
      ]),
    );

    await state.forward('reserveInventory', () =>
      db.reserveInventory.executeWithOptions(
        { ...dbOptions, summary: `Reserve ${input.items.length} line(s) of stock` },
        [{ ...call('reserveInventory'), items: input.items }],
      ),
    );

    if (input.requiresApproval) {
      state.setStatus('AWAITING_APPROVAL');
      state.step('approval').status = 'RUNNING';
      // The API validated the duration text (e.g. '24h') when it read APPROVAL_TIMEOUT.
      const decided = await condition(() => decision !== undefined, input.approvalTimeout as Duration);
      const verdict = decided ? decision! : 'timed_out';
      gatePassed = true;
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

    // Fraud screening before money moves. As an activity, it ends the workflow task: a cancel
    // that arrived during the local steps is seen before the charge.
    deprecatePatch(PATCHES.fraudScreening);
    await state.forward('fraudScreening', () =>
      steps.screenOrder.executeWithOptions({ ...STEP_OPTIONS, summary: 'Screen for fraud' }, [
        { ...call('fraudScreening'), customerId: input.customerId, totalCents: input.totalCents },
      ]),
    );

    // Payment calls go to the payments bulkhead (own slots and rate limit); the refund follows the charge.
    deprecatePatch(PATCHES.paymentBulkhead);
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
    await state.forward('chargePayment', () =>
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
        [{ ...call('cancelShipment'), bookingKey: stepKey(workflowId, 'createShipment') }],
      ),
    );
    await state.forward('createShipment', () =>
      steps.createShipment.executeWithOptions(
        { ...STEP_OPTIONS, summary: `Ship to ${input.shippingAddress.country}` },
        [{ ...call('createShipment'), address: input.shippingAddress }],
      ),
    );

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
