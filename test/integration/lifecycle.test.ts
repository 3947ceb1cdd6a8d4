import type { Activities } from '../../activities';
import { STEP_ABANDONED } from '../../contracts/index';
import { activitiesOver, newActivityOrder } from '../support/activity-order';
import { createTestDatabase } from '../support/stack';

/**
 * Order and step status go through one writer (store/lifecycle.ts): against the real
 * database, a move the lifecycle does not allow changes nothing.
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

async function newOrder({ requiresApproval = false } = {}) {
  const order = await newActivityOrder(db.pool, { requiresApproval, customerId: 'c-lifecycle' });
  return { ...order, env: order.env() };
}

async function orderRow(orderId: string) {
  const { rows } = await db.pool.query<{ status: string; failure_reason: string | null }>(
    'SELECT status, failure_reason FROM orders WHERE id = $1',
    [orderId],
  );
  return rows[0]!;
}
async function stepStatus(orderId: string, name: string) {
  const { rows } = await db.pool.query<{ status: string }>(
    'SELECT status FROM order_steps WHERE order_id = $1 AND name = $2',
    [orderId, name],
  );
  return rows[0]!.status;
}
async function eventTypes(orderId: string) {
  const { rows } = await db.pool.query<{ type: string }>(
    'SELECT type FROM outbox WHERE aggregate_id = $1 ORDER BY sequence',
    [orderId],
  );
  return rows.map((row) => row.type);
}

async function completedOrder() {
  const order = await newOrder();
  await order.env.run(activities.createOrder, { ...order.call('createOrder'), input: order.input });
  await order.env.run(activities.reserveInventory, {
    ...order.call('reserveInventory'),
    items: order.input.items,
  });
  await order.env.run(activities.completeOrder, order.call('completeOrder'));
  return order;
}

describe('a terminal order never changes again', () => {
  it('when a completed order is marked COMPENSATING, then it stays COMPLETED', async () => {
    const order = await completedOrder();
    await order.env.run(activities.markOrderStatus, {
      orderId: order.orderId,
      status: 'COMPENSATING' as const,
    });
    expect(await orderRow(order.orderId)).toEqual({ status: 'COMPLETED', failure_reason: null });
  });

  it('when a completed order is closed as FAILED, then it stays COMPLETED and no OrderFailed is written', async () => {
    const order = await completedOrder();
    await order.env.run(activities.cancelOrder, {
      ...order.call('cancelOrder'),
      outcome: 'FAILED' as const,
      failureReason: 'step_timeout' as const,
      failedStep: null,
    });
    expect(await eventTypes(order.orderId)).toEqual(['OrderCreated', 'InventoryReserved', 'OrderCompleted']);
  });
});

describe('requiresApproval is decided once and stored with the order', () => {
  it('when an order that requires approval has its stock reserved, then it awaits approval', async () => {
    const order = await newOrder({ requiresApproval: true });
    await order.env.run(activities.reserveInventory, {
      ...order.call('reserveInventory'),
      items: order.input.items,
    });
    expect([(await orderRow(order.orderId)).status, await stepStatus(order.orderId, 'approval')]).toEqual([
      'AWAITING_APPROVAL',
      'RUNNING',
    ]);
  });

  it('when admitOrder reserves an order that requires approval, then it awaits approval', async () => {
    const order = await newOrder({ requiresApproval: true });
    await order.env.run(activities.admitOrder, {
      order: { ...order.call('createOrder'), input: order.input },
      reservation: { ...order.call('reserveInventory'), items: order.input.items },
    });
    expect([(await orderRow(order.orderId)).status, await stepStatus(order.orderId, 'approval')]).toEqual([
      'AWAITING_APPROVAL',
      'RUNNING',
    ]);
  });

  it('when an order that needs no approval has its stock reserved, then it stays PENDING', async () => {
    const order = await newOrder();
    await order.env.run(activities.reserveInventory, {
      ...order.call('reserveInventory'),
      items: order.input.items,
    });
    expect([(await orderRow(order.orderId)).status, await stepStatus(order.orderId, 'approval')]).toEqual([
      'PENDING',
      'SKIPPED',
    ]);
  });
});

describe('the compensation runner fences every step', () => {
  it('when a shipment booking arrives after cancelShipment, then it records nothing', async () => {
    const order = await newOrder();
    await order.env.run(activities.cancelShipment, order.call('cancelShipment'));
    const late = await order.env.run(activities.createShipment, {
      ...order.call('createShipment'),
      address: order.input.shippingAddress,
    });
    expect([late, await eventTypes(order.orderId)]).toEqual([STEP_ABANDONED, []]);
  });
});

describe('a cancelled order never shows a FAILED step', () => {
  it('when an order is closed CANCELLED while a step was named as failing, then that step shows SKIPPED', async () => {
    const order = await newOrder();
    await order.env.run(activities.createOrder, { ...order.call('createOrder'), input: order.input });
    await order.env.run(activities.cancelOrder, {
      ...order.call('cancelOrder'),
      outcome: 'CANCELLED' as const,
      failureReason: null,
      failedStep: 'reserveInventory' as const,
    });
    const { rows } = await db.pool.query<{ status: string }>(
      `SELECT DISTINCT status FROM order_steps WHERE order_id = $1 ORDER BY status`,
      [order.orderId],
    );
    expect(rows.map((row) => row.status)).toEqual(['COMPENSATED', 'SKIPPED']);
  });
});
