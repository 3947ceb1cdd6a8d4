/** The order's shipment row: CREATED when booked, CANCELLED by its undo. */
import type { Queryable } from './pool';

export async function recordShipment(
  tx: Queryable,
  orderId: string,
  shipment: { carrier: string; trackingNumber: string },
): Promise<void> {
  await tx.query(
    `INSERT INTO shipments (order_id, status, carrier, tracking_number) VALUES ($1, 'CREATED', $2, $3)`,
    [orderId, shipment.carrier, shipment.trackingNumber],
  );
}

/** The order's recorded shipment status, if a shipment is recorded. */
export async function findShipmentStatus(
  db: Queryable,
  orderId: string,
): Promise<'CREATED' | 'CANCELLED' | undefined> {
  const { rows } = await db.query<{ status: 'CREATED' | 'CANCELLED' }>(
    'SELECT status FROM shipments WHERE order_id = $1',
    [orderId],
  );
  return rows[0]?.status;
}

/**
 * Records a cancelled booking: a booked shipment becomes CANCELLED; with none recorded (the
 * booking went through at the carrier but its recording was fenced off) one is written as
 * CANCELLED with the carrier's tracking number. Returns whether a booking was cancelled now
 * (false when it already was, or the order is missing).
 */
export async function recordShipmentCancelled(
  tx: Queryable,
  orderId: string,
  shipment: { carrier: string; trackingNumber: string },
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `INSERT INTO shipments (order_id, status, carrier, tracking_number)
     SELECT id, 'CANCELLED', $2, $3 FROM orders WHERE id = $1
     ON CONFLICT (order_id) DO UPDATE SET status = 'CANCELLED', updated_at = now()
       WHERE shipments.status = 'CREATED'`,
    [orderId, shipment.carrier, shipment.trackingNumber],
  );
  return rowCount === 1;
}
