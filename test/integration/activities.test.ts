import type { Activities } from '../../activities';
import { createSimulatedPaymentGateway } from '../../activities/providers/simulated';
import { STEP_ABANDONED, stepKey } from '../../contracts/index';
import { eventually } from '../../tools/fixtures/eventually';
import { activitiesOver, newActivityOrder } from '../support/activity-order';
import { createTestDatabase } from '../support/stack';

/**
 * Activities run at least once. Against the real database: the same step invoked again
 * with its key, or twice at the same moment, changes business rows and the outbox once.
 */
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let activities: Activities;

beforeAll(async () => {
  db = await createTestDatabase();
  activities = activitiesOver(db.pool);
});
afterAll(async () => {
  await db?.drop();
});

const newOrder = (available = 10) => newActivityOrder(db.pool, { available, quantity: 3, customerId: 'c-1' });

async function stock(sku: string) {
  const { rows } = await db.pool.query('SELECT available, reserved FROM products WHERE sku = $1', [sku]);
  return rows[0] as { available: number; reserved: number };
}
async function outboxTypes(orderId: string) {
  const { rows } = await db.pool.query<{ type: string; sequence: number }>(
    'SELECT type, sequence FROM outbox WHERE aggregate_id = $1 ORDER BY sequence',
    [orderId],
  );
  return rows;
}

describe('activities are applied once per key', () => {
  it('when reserveInventory is retried with the same key, then stock moves once and one event is written', async () => {
    const order = await newOrder();
    const call = {
      orderId: order.orderId,
      idempotencyKey: stepKey(order.workflowId, 'reserveInventory'),
      items: order.input.items,
      awaitApproval: false,
    };
    const first = await order.env(1).run(activities.reserveInventory, call);
    const second = await order.env(2).run(activities.reserveInventory, call);
    expect(first).toEqual({ ok: true });
    expect(second).toEqual(first);
    expect(await stock(order.sku)).toEqual({ available: 7, reserved: 3 });
    expect(await outboxTypes(order.orderId)).toEqual([{ type: 'InventoryReserved', sequence: 1 }]);
  });

  it('when two workers run the same reservation at the same moment, then one effect and both see the same result', async () => {
    const order = await newOrder();
    const call = {
      orderId: order.orderId,
      idempotencyKey: stepKey(order.workflowId, 'reserveInventory'),
      items: order.input.items,
      awaitApproval: false,
    };
    const results = await Promise.all([
      order.env(1).run(activities.reserveInventory, call),
      order.env(1).run(activities.reserveInventory, call),
      order.env(1).run(activities.reserveInventory, call),
    ]);
    expect(results).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(await stock(order.sku)).toEqual({ available: 7, reserved: 3 });
    expect(await outboxTypes(order.orderId)).toHaveLength(1);
  });

  it('when chargePayment is retried, then the gateway charges once and one payment row and event exist', async () => {
    const order = await newOrder();
    const call = {
      orderId: order.orderId,
      idempotencyKey: stepKey(order.workflowId, 'chargePayment'),
      amountCents: 3000,
      currency: 'USD',
      paymentToken: 'tok_ok',
    };
    await Promise.all([
      order.env(1).run(activities.chargePayment, call),
      order.env(2).run(activities.chargePayment, call),
    ]);
    await order.env(3).run(activities.chargePayment, call);
    const { rows } = await db.pool.query('SELECT status FROM payments WHERE order_id = $1', [order.orderId]);
    expect(rows).toEqual([{ status: 'CAPTURED' }]);
    expect((await outboxTypes(order.orderId)).map((r) => r.type)).toEqual(['PaymentCaptured']);
  });

  it('when a compensation runs twice, then stock is released once, and a release with nothing reserved is a silent no-op', async () => {
    const order = await newOrder();
    const release = { orderId: order.orderId, idempotencyKey: stepKey(order.workflowId, 'releaseInventory') };
    await order.env().run(activities.releaseInventory, release); // nothing reserved yet: no event
    expect(await outboxTypes(order.orderId)).toEqual([]);

    const other = await newOrder();
    await other.env().run(activities.reserveInventory, {
      orderId: other.orderId,
      idempotencyKey: stepKey(other.workflowId, 'reserveInventory'),
      items: other.input.items,
      awaitApproval: false,
    });
    const otherRelease = {
      orderId: other.orderId,
      idempotencyKey: stepKey(other.workflowId, 'releaseInventory'),
    };
    await other.env(1).run(activities.releaseInventory, otherRelease);
    await other.env(2).run(activities.releaseInventory, otherRelease);
    expect(await stock(other.sku)).toEqual({ available: 10, reserved: 0 });
    expect((await outboxTypes(other.orderId)).map((r) => r.type)).toEqual([
      'InventoryReserved',
      'InventoryReleased',
    ]);
  });

  it('when stock is short, then the refusal is recorded and replayed, and nothing moves', async () => {
    const order = await newOrder(2);
    const call = {
      orderId: order.orderId,
      idempotencyKey: stepKey(order.workflowId, 'reserveInventory'),
      items: order.input.items,
      awaitApproval: false,
    };
    await expect(order.env(1).run(activities.reserveInventory, call)).resolves.toEqual({
      ok: false,
      reason: 'insufficient_stock',
    });
    // Stock arrives later; a retry of the same step still returns the recorded refusal.
    await db.pool.query('UPDATE products SET available = 100 WHERE sku = $1', [order.sku]);
    await expect(order.env(2).run(activities.reserveInventory, call)).resolves.toEqual({
      ok: false,
      reason: 'insufficient_stock',
    });
    expect(await stock(order.sku)).toEqual({ available: 100, reserved: 0 });
  });
});

describe('admitOrder runs its steps in one transaction, each once per key', () => {
  const admission = (order: Awaited<ReturnType<typeof newOrder>>) => ({
    order: { ...order.call('createOrder'), input: order.input },
    reservation: { ...order.call('reserveInventory'), items: order.input.items },
    screening: { ...order.call('fraudScreening'), customerId: 'c-1', totalCents: order.input.totalCents },
  });
  async function ledgerResults(workflowId: string) {
    const { rows } = await db.pool.query<{ step: string; result: unknown }>(
      'SELECT step, result FROM activity_ledger WHERE workflow_id = $1 ORDER BY step',
      [workflowId],
    );
    return rows;
  }

  it('when admitOrder is retried, then every step replays its stored outcome and stock moves once', async () => {
    const order = await newOrder();
    const first = await order.env(1).run(activities.admitOrder, admission(order));
    const second = await order.env(2).run(activities.admitOrder, admission(order));
    expect([
      first,
      second,
      await stock(order.sku),
      (await outboxTypes(order.orderId)).map((r) => r.type),
    ]).toEqual([
      { createOrder: { ok: true }, reserveInventory: { ok: true }, fraudScreening: { ok: true } },
      first,
      { available: 7, reserved: 3 },
      ['OrderCreated', 'InventoryReserved'],
    ]);
  });

  it('when admitOrder has run, then each step it ran has its outcome in the ledger', async () => {
    const order = await newOrder();
    await order.env().run(activities.admitOrder, admission(order));
    expect(await ledgerResults(order.workflowId)).toEqual([
      { step: 'createOrder', result: { ok: true } },
      { step: 'fraudScreening', result: { ok: true } },
      { step: 'reserveInventory', result: { ok: true } },
    ]);
  });

  it('when the reservation is refused, then its refusal is recorded and the screening is never claimed', async () => {
    const order = await newOrder(2);
    const outcome = await order.env().run(activities.admitOrder, admission(order));
    expect([outcome, await ledgerResults(order.workflowId), await stock(order.sku)]).toEqual([
      { createOrder: { ok: true }, reserveInventory: { ok: false, reason: 'insufficient_stock' } },
      [
        { step: 'createOrder', result: { ok: true } },
        { step: 'reserveInventory', result: { ok: false, reason: 'insufficient_stock' } },
      ],
      { available: 2, reserved: 0 },
    ]);
  });
});

describe('a compensation fences its step', () => {
  // A local activity keeps running after its workflow task was lost (worker overloaded,
  // Temporal restarted), and an attempt can outlive its timeout: such a straggler may reach
  // the database after the saga already undid its step. Found by the chaos drills: a
  // cancelled order's reservation committed after its release, and stayed RESERVED.
  it('when a reservation arrives after its release, then it changes nothing', async () => {
    const order = await newOrder();
    await order.env().run(activities.releaseInventory, {
      orderId: order.orderId,
      idempotencyKey: stepKey(order.workflowId, 'releaseInventory'),
    });
    const late = await order.env().run(activities.reserveInventory, {
      orderId: order.orderId,
      idempotencyKey: stepKey(order.workflowId, 'reserveInventory'),
      items: order.input.items,
      awaitApproval: false,
    });
    expect(late).toEqual(STEP_ABANDONED);
    expect(await stock(order.sku)).toEqual({ available: 10, reserved: 0 });
    expect(await outboxTypes(order.orderId)).toEqual([]);
  });

  it('when a reservation is in flight while its release starts, then the release waits for it and undoes it', async () => {
    const order = await newOrder();
    // Hold the product row: the reservation claims its ledger key, then blocks on the row.
    const blocker = await db.pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM products WHERE sku = $1 FOR UPDATE', [order.sku]);
      const reserving = order.env().run(activities.reserveInventory, {
        orderId: order.orderId,
        idempotencyKey: stepKey(order.workflowId, 'reserveInventory'),
        items: order.input.items,
        awaitApproval: false,
      });
      // store/stock.ts reserveStock: one statement, which locks the products first.
      await eventually('the reservation waiting for the product row', () => blockedOnLock('WITH wanted AS'));
      const releasing = order.env().run(activities.releaseInventory, {
        orderId: order.orderId,
        idempotencyKey: stepKey(order.workflowId, 'releaseInventory'),
      });
      await blocker.query('COMMIT');
      await expect(reserving).resolves.toEqual({ ok: true });
      await releasing;
    } finally {
      blocker.release();
    }
    expect(await stock(order.sku)).toEqual({ available: 10, reserved: 0 });
    expect((await outboxTypes(order.orderId)).map((r) => r.type)).toEqual([
      'InventoryReserved',
      'InventoryReleased',
    ]);
  });

  it('when a charge arrives after the refund found nothing to refund, then nothing is captured or recorded', async () => {
    const order = await newOrder();
    const chargeKey = stepKey(order.workflowId, 'chargePayment');
    await order.env().run(activities.refundPayment, {
      orderId: order.orderId,
      idempotencyKey: stepKey(order.workflowId, 'refundPayment'),
      chargeKey,
    });
    // An attempt still on its way to the gateway (it outlived its timeout) is refused there…
    const gateway = createSimulatedPaymentGateway(db.pool, { slowCallMs: 100 });
    await expect(
      gateway.charge({
        idempotencyKey: chargeKey,
        amountCents: 3000,
        currency: 'USD',
        paymentToken: 'tok_ok',
      }),
    ).resolves.toEqual({ status: 'declined', reason: 'voided' });
    // …and one that starts now records nothing.
    const late = await order.env().run(activities.chargePayment, {
      orderId: order.orderId,
      idempotencyKey: chargeKey,
      amountCents: 3000,
      currency: 'USD',
      paymentToken: 'tok_ok',
    });
    expect(late).toEqual(STEP_ABANDONED);
    const { rows: payments } = await db.pool.query('SELECT 1 FROM payments WHERE order_id = $1', [
      order.orderId,
    ]);
    expect(payments).toHaveLength(0);
    expect(await outboxTypes(order.orderId)).toEqual([]);
  });

  it('when createOrder arrives after the order was closed, then no second OrderCreated follows', async () => {
    const order = await newOrder();
    await order.env().run(activities.cancelOrder, {
      orderId: order.orderId,
      idempotencyKey: stepKey(order.workflowId, 'cancelOrder'),
      outcome: 'CANCELLED' as const,
      failureReason: null,
    });
    await order.env().run(activities.createOrder, {
      orderId: order.orderId,
      idempotencyKey: stepKey(order.workflowId, 'createOrder'),
      input: order.input,
    });
    expect((await outboxTypes(order.orderId)).map((r) => r.type)).toEqual(['OrderCreated', 'OrderCancelled']);
  });
});

/** Whether a session of this test's database waits for a lock while running `statement…`. */
async function blockedOnLock(statement: string): Promise<boolean> {
  const { rows } = await db.pool.query<{ blocked: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'
                       AND query LIKE $1 || '%') AS blocked`,
    [statement],
  );
  return rows[0]!.blocked;
}
