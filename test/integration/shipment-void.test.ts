import { createActivities, type Activities } from '../../activities';
import { createSimulatedCarrier, createSimulatedPaymentGateway } from '../../activities/providers/simulated';
import type { Carrier } from '../../activities/providers/types';
import { STEP_ABANDONED, stepKey } from '../../contracts/index';
import { findProviderRequest } from '../../store/simulated-provider-requests';
import { newActivityOrder } from '../support/activity-order';
import { createTestDatabase } from '../support/stack';

/**
 * cancelShipment voids the booking key at the carrier, the way refundPayment voids the
 * charge key at the gateway: a booking attempt that outlived its timeout and reaches the
 * carrier after the cancel is refused there, and the fence keeps it from recording anything.
 * Against the real database and the simulated carrier (its records are in Postgres).
 */
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/**
 * The simulated carrier, with its bookings held at a gate: `before` holds a booking on its
 * way to the carrier (it has not reached it), `after` holds the carrier's answer on its way
 * back (the carrier booked). `arrived` resolves when a booking reaches the gate.
 */
function gatedCarrier(where: 'before' | 'after') {
  const carrier = createSimulatedCarrier(db.pool);
  let open!: () => void;
  let arrive!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  const gated: Carrier = {
    async createShipment(request) {
      arrive();
      if (where === 'before') await gate;
      const answer = await carrier.createShipment(request);
      if (where === 'after') await gate;
      return answer;
    },
    cancelShipment: (request) => carrier.cancelShipment(request),
  };
  return { carrier: gated, arrived, open };
}

function activitiesWith(carrier: Carrier): Activities {
  return createActivities({
    pool: db.pool,
    gateway: createSimulatedPaymentGateway(db.pool, { slowCallMs: 100 }),
    carrier,
  });
}

async function newOrder() {
  const { orderId, input, workflowId, env, call } = await newActivityOrder(db.pool, {
    customerId: 'c-shipment-void',
  });
  const bookingKey = stepKey(workflowId, 'createShipment');
  return {
    orderId,
    bookingKey,
    env,
    createShipment: { ...call('createShipment'), address: input.shippingAddress },
    cancelShipment: { ...call('cancelShipment'), bookingKey },
    createOrder: { ...call('createOrder'), input },
    cancelOrder: { ...call('cancelOrder'), outcome: 'CANCELLED' as const, failureReason: null },
  };
}

async function eventTypes(orderId: string) {
  const { rows } = await db.pool.query<{ type: string }>(
    'SELECT type FROM outbox WHERE aggregate_id = $1 ORDER BY sequence',
    [orderId],
  );
  return rows.map((row) => row.type);
}
async function shipment(orderId: string) {
  const { rows } = await db.pool.query<{ status: string; tracking_number: string }>(
    'SELECT status, tracking_number FROM shipments WHERE order_id = $1',
    [orderId],
  );
  return rows[0];
}

describe('cancelShipment voids the booking key at the carrier', () => {
  it('when cancelShipment runs before a late booking attempt reaches the carrier, then the carrier refuses it as voided, the attempt is abandoned and no ShipmentCreated follows the cancel', async () => {
    const { carrier, arrived, open } = gatedCarrier('before');
    const activities = activitiesWith(carrier);
    const order = await newOrder();
    await order.env().run(activities.createOrder, order.createOrder);

    // The booking attempt passed its ledger check and is on its way to the carrier…
    const late = order.env().run(activities.createShipment, order.createShipment);
    await arrived;
    // …when the order is cancelled: the compensations run before the booking arrives.
    await order.env().run(activities.cancelShipment, order.cancelShipment);
    await order.env().run(activities.cancelOrder, order.cancelOrder);
    open();

    await expect(late).resolves.toEqual(STEP_ABANDONED);
    expect(await eventTypes(order.orderId)).toEqual(['OrderCreated', 'OrderCancelled']);
    expect(await shipment(order.orderId)).toBeUndefined();
    // The carrier's own records: the booking key voided (the late booking got that answer)…
    expect(await findProviderRequest(db.pool, 'carrier', order.bookingKey)).toEqual({
      calls: 1,
      request: {},
      response: { status: 'refused', reason: 'voided' },
    });
    // …because the cancel found nothing booked under it.
    expect(
      (await findProviderRequest(db.pool, 'carrier-cancel', order.cancelShipment.idempotencyKey))?.response,
    ).toEqual({ status: 'nothing_to_cancel' });
  });

  it('when a booking attempt starts after cancelShipment, then it is abandoned without reaching the carrier', async () => {
    const activities = activitiesWith(createSimulatedCarrier(db.pool));
    const order = await newOrder();
    await order.env().run(activities.cancelShipment, order.cancelShipment);
    await expect(order.env().run(activities.createShipment, order.createShipment)).resolves.toEqual(
      STEP_ABANDONED,
    );
    expect(await eventTypes(order.orderId)).toEqual([]);
    expect(await findProviderRequest(db.pool, 'carrier', order.bookingKey)).toEqual({
      calls: 0,
      request: {},
      response: { status: 'refused', reason: 'voided' },
    });
  });

  it('when the carrier booked but the booking was fenced before it was recorded, then the cancel still cancels it at the carrier, records it and announces the booking before its cancellation', async () => {
    const { carrier, arrived, open } = gatedCarrier('after');
    const activities = activitiesWith(carrier);
    const order = await newOrder();

    // The carrier booked; its answer is on its way back when the cancel fences the step.
    const late = order.env().run(activities.createShipment, order.createShipment);
    await arrived;
    const booked = await carrierAnswer(order.bookingKey);
    await order.env().run(activities.cancelShipment, order.cancelShipment);
    open();

    await expect(late).resolves.toEqual(STEP_ABANDONED);
    const { trackingNumber } = booked as { trackingNumber: string };
    expect(await shipment(order.orderId)).toEqual({ status: 'CANCELLED', tracking_number: trackingNumber });
    // The stream never cancels a shipment it did not show created: the booking the carrier
    // made is announced first, with what the carrier said of it.
    expect(await eventTypes(order.orderId)).toEqual(['ShipmentCreated', 'ShipmentCancelled']);
    const { rows } = await db.pool.query<{ data: unknown }>(
      `SELECT body->'data' AS data FROM outbox WHERE aggregate_id = $1 AND type = 'ShipmentCreated'`,
      [order.orderId],
    );
    expect(rows).toEqual([{ data: { carrier: 'SimPost', trackingNumber } }]);
    expect(
      (await findProviderRequest(db.pool, 'carrier-cancel', order.cancelShipment.idempotencyKey))?.response,
    ).toEqual({ status: 'cancelled', carrier: 'SimPost', trackingNumber });
  });

  it('when a recorded booking is cancelled, then it becomes CANCELLED with one ShipmentCancelled, however often the cancel runs', async () => {
    const activities = activitiesWith(createSimulatedCarrier(db.pool));
    const order = await newOrder();
    await expect(order.env().run(activities.createShipment, order.createShipment)).resolves.toEqual({
      ok: true,
    });
    const { tracking_number: trackingNumber } = (await shipment(order.orderId))!;

    await order.env().run(activities.cancelShipment, order.cancelShipment);
    await order.env().run(activities.cancelShipment, order.cancelShipment);

    expect(await shipment(order.orderId)).toEqual({ status: 'CANCELLED', tracking_number: trackingNumber });
    expect(await eventTypes(order.orderId)).toEqual(['ShipmentCreated', 'ShipmentCancelled']);
    const { rows } = await db.pool.query<{ data: unknown }>(
      `SELECT body->'data' AS data FROM outbox WHERE aggregate_id = $1 AND type = 'ShipmentCancelled'`,
      [order.orderId],
    );
    expect(rows).toEqual([{ data: { trackingNumber } }]);
  });

  it('when a cancel scheduled before the workflow passed bookingKey runs, then it voids the createShipment step key', async () => {
    const activities = activitiesWith(createSimulatedCarrier(db.pool));
    const order = await newOrder();
    const { bookingKey: _passedNow, ...scheduledEarlier } = order.cancelShipment;
    await order.env().run(activities.cancelShipment, scheduledEarlier);
    expect((await findProviderRequest(db.pool, 'carrier', order.bookingKey))?.response).toEqual({
      status: 'refused',
      reason: 'voided',
    });
  });
});

/** What the simulated carrier answered under `key`, once it has. */
async function carrierAnswer(key: string): Promise<unknown> {
  const record = await findProviderRequest(db.pool, 'carrier', key);
  if (!record?.response) throw new Error(`the carrier has no answer under ${key}`);
  return record.response;
}
