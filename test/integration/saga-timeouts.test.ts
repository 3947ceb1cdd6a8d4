import type { OrderSagaState } from '../../contracts/index';
import { decodeRetryState } from '@temporalio/common';
import { startSagaHarness, type SagaHarness } from '../support/saga-harness';
import { decodedHistory } from '../support/encryption';

/**
 * A forward step that keeps failing transiently exhausts its retry budget (the forward
 * steps' retry policy in workflows/order-saga.ts), fails the order with `step_timeout` and
 * compensates. The simulated gateway's `tok_unavailable` fails every charge transiently, as
 * a gateway that is down would. The payment step's budget is time (schedule-to-close 1 min,
 * backoff 200 ms ×2 capped at 5 s), and the refund compensation may then wait for the
 * payment gateway's circuit breaker to half-open: hence the long timeout.
 */
const STEP_TIMEOUT_TEST_MS = 120_000;

let saga: SagaHarness;

beforeAll(async () => {
  saga = await startSagaHarness();
});
afterAll(async () => {
  await saga?.close();
});

describe('order saga, a step that exhausts its retries', () => {
  it(
    'when the gateway fails transiently on every attempt, then the order fails with step_timeout, stock returns and nothing is charged',
    async () => {
      const order = await saga.startOrder({ paymentToken: 'tok_unavailable' });
      await expect(order.result()).resolves.toEqual({
        orderId: order.orderId,
        status: 'FAILED',
        failureReason: 'step_timeout',
      });

      const { rows: orders } = await saga.pool.query<{ status: string; failure_reason: string | null }>(
        'SELECT status, failure_reason FROM orders WHERE id = $1',
        [order.orderId],
      );
      expect(orders[0]).toEqual({ status: 'FAILED', failure_reason: 'step_timeout' });
      expect(await saga.stock(order.sku)).toEqual({ available: 10, reserved: 0 });
      const { rows: payments } = await saga.pool.query('SELECT status FROM payments WHERE order_id = $1', [
        order.orderId,
      ]);
      expect(payments).toEqual([]);
      expect(await saga.eventTypes(order.orderId)).toEqual([
        'OrderCreated',
        'InventoryReserved',
        'InventoryReleased',
        'OrderFailed',
      ]);

      // The charge gave up because its time budget ran out, not for any other reason: the
      // server ends it either after a failed attempt whose retry would start past the
      // budget (failed) or while it waits for the next attempt (timed out).
      const events = (await decodedHistory(order.handle)).events ?? [];
      const chargeIds = new Set(
        events
          .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'chargeAndShip')
          .map((e) => String(e.eventId)),
      );
      expect(chargeIds.size).toBe(1);
      const scheduled = events.find((e) => chargeIds.has(String(e.eventId)))!;
      expect(
        scheduled.activityTaskScheduledEventAttributes!.scheduleToCloseTimeout?.seconds?.toString(),
      ).toBe('60');
      const ended = events.filter(
        (e) =>
          chargeIds.has(String(e.activityTaskFailedEventAttributes?.scheduledEventId ?? '')) ||
          chargeIds.has(String(e.activityTaskTimedOutEventAttributes?.scheduledEventId ?? '')),
      );
      expect(ended).toHaveLength(1);
      const failedAttributes = ended[0]!.activityTaskFailedEventAttributes;
      const timedOutAttributes = ended[0]!.activityTaskTimedOutEventAttributes;
      expect(decodeRetryState((failedAttributes ?? timedOutAttributes)!.retryState)).toBe('TIMEOUT');
      // Each attempt failed fast and retryably: the gateway's error, or its open breaker.
      const lastFailure = failedAttributes?.failure ?? timedOutAttributes!.failure!.cause;
      expect(['TransientProviderError', 'ProviderUnavailable']).toContain(
        lastFailure?.applicationFailureInfo?.type,
      );
      const lastAttempt = events.find((e) =>
        chargeIds.has(String(e.activityTaskStartedEventAttributes?.scheduledEventId ?? '')),
      )!.activityTaskStartedEventAttributes!.attempt!;
      expect(lastAttempt).toBeGreaterThan(1);
      const { rows: steps } = await saga.pool.query<{ status: string; attempts: number }>(
        `SELECT status, attempts FROM order_steps WHERE order_id = $1 AND name = 'chargePayment'`,
        [order.orderId],
      );
      // The step that ran out of retries shows FAILED, in the database and in the query.
      expect(steps[0]).toEqual({ status: 'FAILED', attempts: lastAttempt });
      const state = await order.handle.query<OrderSagaState>('state');
      expect(state.steps.find((step) => step.name === 'chargePayment')!.status).toBe('FAILED');
      expect(state.steps.find((step) => step.name === 'createShipment')!.status).toBe('SKIPPED');
    },
    STEP_TIMEOUT_TEST_MS,
  );
});
