import { randomUUID } from 'node:crypto';
import {
  DENIED_CUSTOMER,
  startSagaHarness,
  type SagaHarness,
  type StartedOrder,
} from '../support/saga-harness';
import { eventually } from '../../tools/fixtures/eventually';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { createSimulatedCarrier, createSimulatedPaymentGateway } from '../../activities/providers/simulated';
import { historySteps } from '../../lib/history-steps';
import { paymentTaskQueueFor, STEP_ABANDONED, stepKey, workflowIdFor } from '../../contracts/index';
import type { OrderSagaState } from '../../contracts/index';
import { decodedHistory } from '../support/encryption';
import { fenceStep } from '../../store/ledger';
import { withTransaction } from '../../store/tx';

/**
 * Every saga path of CONTRACT §3 through a real worker, Temporal dev server and Postgres:
 * final status, failure reason, money, stock and the order's events in commit order.
 */
let saga: SagaHarness;

beforeAll(async () => {
  saga = await startSagaHarness({ slowPaymentMs: 4_000 });
});
afterAll(async () => {
  await saga?.close();
});

async function orderRow(orderId: string) {
  const { rows } = await saga.pool.query<{ status: string; failure_reason: string | null }>(
    'SELECT status, failure_reason FROM orders WHERE id = $1',
    [orderId],
  );
  return rows[0]!;
}
async function paymentStatus(orderId: string): Promise<string> {
  const { rows } = await saga.pool.query<{ status: string }>(
    'SELECT status FROM payments WHERE order_id = $1',
    [orderId],
  );
  return rows[0]?.status ?? 'NONE';
}
async function shipmentStatus(orderId: string): Promise<string> {
  const { rows } = await saga.pool.query<{ status: string }>(
    'SELECT status FROM shipments WHERE order_id = $1',
    [orderId],
  );
  return rows[0]?.status ?? 'NONE';
}
async function steps(orderId: string): Promise<Record<string, { status: string; attempts: number }>> {
  const { rows } = await saga.pool.query<{ name: string; status: string; attempts: number }>(
    'SELECT name, status, attempts FROM order_steps WHERE order_id = $1 ORDER BY position',
    [orderId],
  );
  return Object.fromEntries(rows.map((r) => [r.name, { status: r.status, attempts: r.attempts }]));
}

/** Waits until the workflow itself (its `state` query) is parked at the approval gate. */
async function atApprovalGate(order: StartedOrder): Promise<void> {
  await saga.waitForStatus(order.orderId, ['AWAITING_APPROVAL']); // the database first…
  await eventually('the saga parked at the approval gate', async () => {
    const state = await order.handle.query<OrderSagaState>('state'); // …then the workflow
    return (
      state.status === 'AWAITING_APPROVAL' &&
      state.steps.find((s) => s.name === 'approval')?.status === 'RUNNING'
    );
  });
}

/** Waits until the workflow's history records the cancel request (the workflow has it). */
async function cancelRecorded(order: StartedOrder): Promise<void> {
  await eventually('WorkflowExecutionCancelRequested in the history', async () => {
    const { events } = await order.handle.fetchHistory();
    return (events ?? []).some((event) => event.workflowExecutionCancelRequestedEventAttributes);
  });
}

/** Waits until a statement of this database matching `query` (LIKE) waits on a row lock. */
async function blockedOnLock(query: string): Promise<void> {
  await eventually(`a statement like ${query} waiting on a row lock`, async () => {
    const { rows } = await saga.pool.query<{ waiting: number }>(
      `SELECT count(*)::int AS waiting FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'active' AND wait_event_type = 'Lock'
          AND query LIKE $1`,
      [query],
    );
    return rows[0]!.waiting > 0;
  });
}

/** What the simulated gateway holds for a charge key: calls made and the answer stored. */
async function gatewayCharge(orderId: string): Promise<{ calls: number; response: unknown } | undefined> {
  const { rows } = await saga.pool.query<{ calls: number; response: unknown }>(
    `SELECT calls, response FROM simulated_provider_requests WHERE provider = 'payment' AND idempotency_key = $1`,
    [stepKey(workflowIdFor(orderId), 'chargePayment')],
  );
  return rows[0];
}

describe('order saga', () => {
  it('when the card pays, then the order completes, stock leaves and the events tell the story', async () => {
    const order = await saga.startOrder({ paymentToken: 'tok_ok' });
    await expect(order.result()).resolves.toEqual({
      orderId: order.orderId,
      status: 'COMPLETED',
      failureReason: null,
    });
    expect(await orderRow(order.orderId)).toEqual({ status: 'COMPLETED', failure_reason: null });
    expect(await paymentStatus(order.orderId)).toBe('CAPTURED');
    expect(await shipmentStatus(order.orderId)).toBe('CREATED');
    expect(await saga.stock(order.sku)).toEqual({ available: 8, reserved: 0 });
    expect(await saga.eventTypes(order.orderId)).toEqual([
      'OrderCreated',
      'InventoryReserved',
      'PaymentCaptured',
      'ShipmentCreated',
      'OrderCompleted',
    ]);
    const s = await steps(order.orderId);
    expect(Object.entries(s).map(([name, step]) => `${name}:${step.status}`)).toEqual([
      'createOrder:COMPLETED',
      'reserveInventory:COMPLETED',
      'approval:SKIPPED',
      'fraudScreening:COMPLETED',
      'chargePayment:COMPLETED',
      'createShipment:COMPLETED',
      'completeOrder:COMPLETED',
    ]);
  });

  it('when the payment runs, then it is scheduled on the payments task queue (the bulkhead)', async () => {
    const order = await saga.startOrder({ paymentToken: 'tok_ok' });
    await order.result();
    const history = await decodedHistory(order.handle);
    const scheduled = (history.events ?? [])
      .map((event) => event.activityTaskScheduledEventAttributes)
      .filter((attributes) => attributes?.activityType?.name === 'chargeAndShip');
    expect(scheduled.map((attributes) => attributes?.taskQueue?.name)).toEqual([
      paymentTaskQueueFor(saga.taskQueue),
    ]);
  });

  it('when a saga runs, then its database steps run as local activities and the calls to other services as one activity', async () => {
    const order = await saga.startOrder({ paymentToken: 'tok_ok' });
    await order.result();
    const history = await decodedHistory(order.handle);
    expect(historySteps(history.events ?? []).map(({ activity, local }) => ({ activity, local }))).toEqual([
      { activity: 'admitOrder', local: true },
      { activity: 'chargeAndShip', local: false },
      { activity: 'completeOrder', local: true },
    ]);
  });

  it('when a happy saga completes, then its history has two workflow tasks, at most 20 events and 2 search-attribute upserts', async () => {
    const order = await saga.startOrder({ paymentToken: 'tok_ok' });
    await order.result();
    const events = (await decodedHistory(order.handle)).events ?? [];
    const count = (key: keyof (typeof events)[number]) => events.filter((event) => event[key]).length;
    expect({
      workflowTasks: count('workflowTaskCompletedEventAttributes'),
      upserts: count('upsertWorkflowSearchAttributesEventAttributes'),
      withinEvents: events.length <= 20,
    }).toEqual({ workflowTasks: 2, upserts: 2, withinEvents: true });
  });

  it('when the customer is on the deny list, then the order fails with fraud_suspected before any charge', async () => {
    const order = await saga.startOrder({ customerId: DENIED_CUSTOMER });
    await expect(order.result()).resolves.toMatchObject({
      status: 'FAILED',
      failureReason: 'fraud_suspected',
    });
    expect(await paymentStatus(order.orderId)).toBe('NONE');
    expect(await saga.stock(order.sku)).toEqual({ available: 10, reserved: 0 });
    expect(await saga.eventTypes(order.orderId)).toEqual([
      'OrderCreated',
      'InventoryReserved',
      'InventoryReleased',
      'OrderFailed',
    ]);
    expect((await steps(order.orderId)).fraudScreening!.status).toBe('FAILED');
  });

  it('when the card is declined, then it is not retried, the decline is recorded and stock returns', async () => {
    const order = await saga.startOrder({ paymentToken: 'tok_declined' });
    await expect(order.result()).resolves.toMatchObject({
      status: 'FAILED',
      failureReason: 'payment_declined',
    });
    expect(await orderRow(order.orderId)).toEqual({ status: 'FAILED', failure_reason: 'payment_declined' });
    expect(await paymentStatus(order.orderId)).toBe('DECLINED');
    expect(await saga.stock(order.sku)).toEqual({ available: 10, reserved: 0 });
    expect(await saga.eventTypes(order.orderId)).toEqual([
      'OrderCreated',
      'InventoryReserved',
      'PaymentDeclined',
      'InventoryReleased',
      'OrderFailed',
    ]);
    expect((await steps(order.orderId)).chargePayment).toEqual({ status: 'FAILED', attempts: 1 });
  });

  it('when stock is short, then nothing is reserved and the order fails with insufficient_stock', async () => {
    await saga.putProduct('SKU-SCARCE', 500, 1);
    const order = await saga.startOrder({ items: [{ sku: 'SKU-SCARCE', quantity: 2 }] });
    await expect(order.result()).resolves.toMatchObject({
      status: 'FAILED',
      failureReason: 'insufficient_stock',
    });
    expect(await saga.stock('SKU-SCARCE')).toEqual({ available: 1, reserved: 0 });
    expect(await paymentStatus(order.orderId)).toBe('NONE');
    expect(await saga.eventTypes(order.orderId)).toEqual(['OrderCreated', 'OrderFailed']);
    const s = await steps(order.orderId);
    expect(s.reserveInventory!.status).toBe('FAILED');
    expect(s.chargePayment!.status).toBe('SKIPPED');
  });

  it('when the carrier refuses, then the payment is refunded and stock released, in reverse order', async () => {
    const order = await saga.startOrder({ country: 'ZZ' });
    await expect(order.result()).resolves.toMatchObject({
      status: 'FAILED',
      failureReason: 'shipping_unavailable',
    });
    expect(await paymentStatus(order.orderId)).toBe('REFUNDED');
    expect(await shipmentStatus(order.orderId)).toBe('NONE');
    expect(await saga.stock(order.sku)).toEqual({ available: 10, reserved: 0 });
    expect(await saga.eventTypes(order.orderId)).toEqual([
      'OrderCreated',
      'InventoryReserved',
      'PaymentCaptured',
      'PaymentRefunded',
      'InventoryReleased',
      'OrderFailed',
    ]);
  });

  it('when the gateway fails twice transiently, then the charge is retried and applied once', async () => {
    const order = await saga.startOrder({ paymentToken: 'tok_flaky' });
    await expect(order.result()).resolves.toMatchObject({ status: 'COMPLETED' });
    expect((await steps(order.orderId)).chargePayment).toEqual({ status: 'COMPLETED', attempts: 3 });
    const events = await saga.eventTypes(order.orderId);
    expect(events.filter((type) => type === 'PaymentCaptured')).toHaveLength(1);
  });

  it('when the gateway hangs past the activity timeout once, then the next attempt pays, once', async () => {
    const order = await saga.startOrder({ paymentToken: 'tok_slow' });
    await expect(order.result()).resolves.toMatchObject({ status: 'COMPLETED' });
    expect((await steps(order.orderId)).chargePayment!.attempts).toBeGreaterThanOrEqual(2);
    expect(await paymentStatus(order.orderId)).toBe('CAPTURED');
    expect((await saga.eventTypes(order.orderId)).filter((t) => t === 'PaymentCaptured')).toHaveLength(1);
  });

  it('when a refund keeps failing, then the order shows REQUIRES_ATTENTION until it succeeds', async () => {
    const order = await saga.startOrder({ paymentToken: 'tok_refund_flaky', country: 'ZZ' });
    // The row: REQUIRES_ATTENTION for the 2 s between the third failure and the next try.
    await saga.waitForStatus(order.orderId, ['REQUIRES_ATTENTION']);
    await order.result();
    // The search attribute, from the history (every value it was set to, in order), rather than
    // a describe() racing the saga's next step.
    const { events } = await order.handle.fetchHistory();
    const statuses = (events ?? []).flatMap((event) => {
      const field =
        event.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.OrderStatus;
      return field?.data ? [JSON.parse(Buffer.from(field.data).toString()) as string] : [];
    });
    expect(statuses).toEqual(['COMPENSATING', 'REQUIRES_ATTENTION', 'COMPENSATING', 'FAILED']);
  });

  it('when a refund that kept failing succeeds, then the order ends FAILED with the money back once', async () => {
    const order = await saga.startOrder({ paymentToken: 'tok_refund_flaky', country: 'ZZ' });
    await expect(order.result()).resolves.toMatchObject({
      status: 'FAILED',
      failureReason: 'shipping_unavailable',
    });
    expect(await paymentStatus(order.orderId)).toBe('REFUNDED');
    expect((await saga.eventTypes(order.orderId)).filter((t) => t === 'PaymentRefunded')).toHaveLength(1);
  });

  describe('approval gate', () => {
    it('when an order needs approval, then the saga waits at the gate with the order AWAITING_APPROVAL', async () => {
      const order = await saga.startOrder({ requiresApproval: true });
      await atApprovalGate(order);
      expect(await orderRow(order.orderId)).toEqual({ status: 'AWAITING_APPROVAL', failure_reason: null });
      await order.handle.cancel(); // done with it
      await order.result();
    });

    it('when approved, then the saga goes on to completion', async () => {
      const order = await saga.startOrder({ requiresApproval: true });
      await atApprovalGate(order);
      await order.handle.executeUpdate('approve');
      await expect(order.result()).resolves.toMatchObject({ status: 'COMPLETED' });
      expect((await steps(order.orderId)).approval!.status).toBe('COMPLETED');
    });

    it('when rejected, then stock is released and the order fails with approval_rejected', async () => {
      const order = await saga.startOrder({ requiresApproval: true });
      await atApprovalGate(order);
      await order.handle.executeUpdate('reject');
      await expect(order.result()).resolves.toMatchObject({
        status: 'FAILED',
        failureReason: 'approval_rejected',
      });
      expect(await saga.stock(order.sku)).toEqual({ available: 10, reserved: 0 });
      expect(await paymentStatus(order.orderId)).toBe('NONE');
    });

    it('when nobody decides in time, then the order fails with approval_timeout', async () => {
      const order = await saga.startOrder({ requiresApproval: true, approvalTimeout: '2s' });
      await expect(order.result()).resolves.toMatchObject({
        status: 'FAILED',
        failureReason: 'approval_timeout',
      });
      expect(await saga.stock(order.sku)).toEqual({ available: 10, reserved: 0 });
    });

    it('when the order never needed approval, then an approve update is rejected', async () => {
      const order = await saga.startOrder({ requiresApproval: false, paymentToken: 'tok_ok' });
      await order.result();
      await expect(order.handle.executeUpdate('approve')).rejects.toThrow();
    });

    it('when the order was approved already, then a second approve is rejected with NotAwaitingApproval', async () => {
      const order = await saga.startOrder({ requiresApproval: true });
      await atApprovalGate(order);
      await order.handle.executeUpdate('approve');
      await expect(order.handle.executeUpdate('approve')).rejects.toMatchObject({
        cause: { type: 'NotAwaitingApproval' },
      });
      await order.result();
    });
  });

  describe('cancellation', () => {
    it('when cancelled while awaiting approval, then the reservation is released and the order ends CANCELLED', async () => {
      const order = await saga.startOrder({ requiresApproval: true });
      await atApprovalGate(order);
      await order.handle.cancel();
      await expect(order.result()).resolves.toMatchObject({ status: 'CANCELLED', failureReason: null });
      expect(await orderRow(order.orderId)).toEqual({ status: 'CANCELLED', failure_reason: null });
      expect(await saga.stock(order.sku)).toEqual({ available: 10, reserved: 0 });
      expect(await saga.eventTypes(order.orderId)).toEqual([
        'OrderCreated',
        'InventoryReserved',
        'InventoryReleased',
        'OrderCancelled',
      ]);
    });

    it('when cancelled while the gateway holds the charge, then nothing is charged, the charge key is voided and stock returns', async () => {
      // tok_slow: the gateway holds the first charge call (slowPaymentMs, 4 s) past the
      // attempt's 3 s timeout. Cancelled while it holds it (heartbeats carry the cancel to the
      // attempt, and a cancel-requested activity is not retried), that call is the only one:
      // the refund finds nothing captured and voids the key.
      const order = await saga.startOrder({ paymentToken: 'tok_slow' });
      await eventually('the gateway holding the first charge call', async () => {
        const charge = await gatewayCharge(order.orderId);
        return charge?.calls === 1 && charge.response === null;
      });
      await order.handle.cancel();
      await expect(order.result()).resolves.toEqual({
        orderId: order.orderId,
        status: 'CANCELLED',
        failureReason: null,
      });
      expect(await gatewayCharge(order.orderId)).toEqual({
        calls: 1,
        response: { status: 'declined', reason: 'voided' },
      });
      expect(await paymentStatus(order.orderId)).toBe('NONE');
      expect(await saga.stock(order.sku)).toEqual({ available: 10, reserved: 0 });
      expect(await saga.eventTypes(order.orderId)).toEqual([
        'OrderCreated',
        'InventoryReserved',
        'InventoryReleased',
        'OrderCancelled',
      ]);
    });

    it('when cancelled while the reservation waits for its product row, then what it reserves is released and the order ends CANCELLED', async () => {
      await saga.putProduct('SKU-LOCKED', 700, 5);
      // Hold the product row so reserveInventory (SELECT … FOR UPDATE) blocks inside its
      // transaction, its ledger key claimed; NO KEY leaves the order lines' foreign-key checks free.
      const blocker = await saga.pool.connect();
      let order: StartedOrder;
      try {
        await blocker.query('BEGIN');
        await blocker.query(`SELECT 1 FROM products WHERE sku = 'SKU-LOCKED' FOR NO KEY UPDATE`);
        order = await saga.startOrder({ items: [{ sku: 'SKU-LOCKED', quantity: 2 }] });
        await blockedOnLock('%FROM products%FOR UPDATE%');
        await order.handle.cancel();
        await cancelRecorded(order); // the workflow has the cancel while the reservation still waits
      } finally {
        await blocker.query('ROLLBACK');
        blocker.release();
      }
      // The reservation commits once the row is free (nothing interrupts a running statement);
      // the release fences the step, waits for that commit and undoes it.
      await expect(order.result()).resolves.toEqual({
        orderId: order.orderId,
        status: 'CANCELLED',
        failureReason: null,
      });
      expect(await saga.stock('SKU-LOCKED')).toEqual({ available: 5, reserved: 0 });
      expect(await paymentStatus(order.orderId)).toBe('NONE');
      expect(await saga.eventTypes(order.orderId)).toEqual([
        'OrderCreated',
        'InventoryReserved',
        'InventoryReleased',
        'OrderCancelled',
      ]);
    });

    it('when cancelled before its first step, then what a lost run left under its keys is undone', async () => {
      // A local activity can commit while its workflow task is lost (the worker died before
      // recording it). If a cancel arrives meanwhile, the rerun stops before the steps that
      // run did: the chaos drills found such a reservation left RESERVED on a CANCELLED order.
      const lostRun = createActivities({
        pool: saga.pool,
        gateway: createSimulatedPaymentGateway(saga.pool, { slowCallMs: 100 }),
        carrier: createSimulatedCarrier(saga.pool),
      });
      const order = await saga.startOrder({
        // Far longer than the test: only the cancel (which ends a start delay) starts the saga.
        startDelay: '1h',
        beforeStart: async (input) => {
          const workflowId = workflowIdFor(input.orderId);
          const step = new MockActivityEnvironment({ workflowExecution: { workflowId, runId: 'lost' } });
          await step.run(lostRun.createOrder, {
            orderId: input.orderId,
            idempotencyKey: stepKey(workflowId, 'createOrder'),
            input,
          });
          await step.run(lostRun.reserveInventory, {
            orderId: input.orderId,
            idempotencyKey: stepKey(workflowId, 'reserveInventory'),
            items: input.items,
            awaitApproval: false,
          });
        },
      });
      expect(await saga.stock(order.sku)).toEqual({ available: 8, reserved: 2 });
      await order.handle.cancel();
      await expect(order.result()).resolves.toMatchObject({ status: 'CANCELLED' });
      // The cancel was there before the saga's first workflow task: the rerun never reached a step.
      const { events } = await order.handle.fetchHistory();
      const kinds = (events ?? []).map((event) =>
        event.workflowExecutionCancelRequestedEventAttributes
          ? 'cancel'
          : event.workflowTaskStartedEventAttributes
            ? 'task'
            : 'other',
      );
      expect(kinds.indexOf('cancel')).toBeGreaterThan(-1);
      expect(kinds.indexOf('cancel')).toBeLessThan(kinds.indexOf('task'));
      expect(await saga.stock(order.sku)).toEqual({ available: 10, reserved: 0 });
      expect(await saga.eventTypes(order.orderId)).toEqual([
        'OrderCreated',
        'InventoryReserved',
        'InventoryReleased',
        'OrderCancelled',
      ]);
    });

    it('when cancelled the moment it started, then it ends CANCELLED with no money kept', async () => {
      const order = await saga.startOrder({ paymentToken: 'tok_ok' });
      await order.handle.cancel();
      await expect(order.result()).resolves.toMatchObject({ status: 'CANCELLED' });
      // Whether the cancel landed before the charge or raced the charge-and-ship activity,
      // nothing captured stays captured.
      const { rows } = await saga.pool.query<{ status: string }>(
        `SELECT status FROM payments WHERE order_id = $1 AND status = 'CAPTURED'`,
        [order.orderId],
      );
      expect(rows).toEqual([]);
    });

    it('when the point of no return is fenced after the order completed, then the fence reports the completion', async () => {
      const order = await saga.startOrder({ paymentToken: 'tok_ok' });
      await expect(order.result()).resolves.toMatchObject({ status: 'COMPLETED' });
      const workflowId = order.handle.workflowId;
      const outcome = await withTransaction(saga.pool, (tx) => fenceStep(tx, workflowId, 'completeOrder'));
      expect(outcome).toEqual({ ok: true });
    });

    it('when the point of no return is fenced before completion ran, then completion is abandoned for good', async () => {
      const workflowId = `order-${randomUUID()}`;
      const outcome = await withTransaction(saga.pool, (tx) => fenceStep(tx, workflowId, 'completeOrder'));
      expect(outcome).toEqual(STEP_ABANDONED);
    });

    it('when cancelled twice, then the order is cancelled once', async () => {
      const order = await saga.startOrder({ requiresApproval: true });
      await atApprovalGate(order);
      await order.handle.cancel();
      await order.handle.cancel();
      await expect(order.result()).resolves.toMatchObject({ status: 'CANCELLED' });
      expect((await saga.eventTypes(order.orderId)).filter((t) => t === 'OrderCancelled')).toHaveLength(1);
    });
  });
});
