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

/** The tracking number of the order's booked (not cancelled) shipment. */
export async function findBookedShipment(db: Queryable, orderId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ tracking_number: string }>(
    `SELECT tracking_number FROM shipments WHERE order_id = $1 AND status = 'CREATED'`,
    [orderId],
  );
  return rows[0]?.tracking_number;
}

/** Returns whether a booked shipment was there to cancel. */
export async function recordShipmentCancelled(tx: Queryable, orderId: string): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE shipments SET status = 'CANCELLED', updated_at = now() WHERE order_id = $1 AND status = 'CREATED'`,
    [orderId],
  );
  return rowCount === 1;
}
