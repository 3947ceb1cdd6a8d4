/** Stock: products' available and reserved units, and each order's reservations. */
import type { PoolClient } from './pool';

export interface StockLine {
  sku: string;
  quantity: number;
}

/** Locks the products rows in sku order, so concurrent sagas never deadlock on stock. */
async function lockProducts(tx: PoolClient, skus: string[]): Promise<Map<string, number>> {
  const { rows } = await tx.query<{ sku: string; available: number }>(
    'SELECT sku, available FROM products WHERE sku = ANY($1) ORDER BY sku FOR UPDATE',
    [skus],
  );
  return new Map(rows.map((row) => [row.sku, row.available]));
}

/** Moves each line's quantity from available to reserved (`toReserved`) or back. */
async function moveStock(tx: PoolClient, lines: StockLine[], toReserved: boolean): Promise<void> {
  await tx.query(
    `UPDATE products p
        SET available = p.available - $3 * l.quantity,
            reserved  = p.reserved  + $3 * l.quantity,
            updated_at = now()
       FROM unnest($1::text[], $2::int[]) AS l(sku, quantity)
      WHERE p.sku = l.sku`,
    [lines.map((l) => l.sku), lines.map((l) => l.quantity), toReserved ? 1 : -1],
  );
}

/**
 * Reserves every line for the order, or none, in one statement: returns the lines reserved
 * (sorted by sku), or undefined when any line has too little stock (nothing changed).
 *
 * `locked` takes the products' row locks in sku order (so concurrent sagas never deadlock
 * on stock) and reads each row's latest committed units; `enough` decides from those, and
 * the UPDATE and the INSERT run only when it says every line fits. Both read `enough`
 * before touching a row, so the locks are taken first.
 */
export async function reserveStock(
  tx: PoolClient,
  orderId: string,
  items: StockLine[],
): Promise<StockLine[] | undefined> {
  const lines = [...items]
    .sort((a, b) => a.sku.localeCompare(b.sku))
    .map(({ sku, quantity }) => ({ sku, quantity }));
  const { rows } = await tx.query<{ reserved: boolean }>(
    `WITH wanted AS (
       SELECT sku, quantity FROM unnest($2::text[], $3::int[]) AS l(sku, quantity)
     ), locked AS (
       SELECT sku, available FROM products WHERE sku = ANY($2::text[]) ORDER BY sku FOR UPDATE
     ), enough AS (
       SELECT count(*) = cardinality($2::text[]) AND bool_and(l.available >= w.quantity) AS ok
         FROM locked l JOIN wanted w USING (sku)
     ), moved AS (
       UPDATE products p
          SET available = p.available - w.quantity, reserved = p.reserved + w.quantity, updated_at = now()
         FROM wanted w
        WHERE p.sku = w.sku AND (SELECT ok FROM enough)
     ), recorded AS (
       INSERT INTO inventory_reservations (order_id, sku, quantity, status)
       SELECT $1, sku, quantity, 'RESERVED' FROM wanted WHERE (SELECT ok FROM enough)
     )
     SELECT coalesce((SELECT ok FROM enough), false) AS reserved`,
    [orderId, lines.map((l) => l.sku), lines.map((l) => l.quantity)],
  );
  return rows[0]?.reserved ? lines : undefined;
}

/** Returns the order's reserved units to `available`; the lines released (none: nothing was held). */
export async function releaseStock(tx: PoolClient, orderId: string): Promise<StockLine[]> {
  const { rows: reserved } = await tx.query<StockLine>(
    `SELECT sku, quantity FROM inventory_reservations
      WHERE order_id = $1 AND status = 'RESERVED' ORDER BY sku FOR UPDATE`,
    [orderId],
  );
  if (reserved.length === 0) return [];
  await lockProducts(
    tx,
    reserved.map((l) => l.sku),
  );
  await moveStock(tx, reserved, false);
  await tx.query(
    `UPDATE inventory_reservations SET status = 'RELEASED', updated_at = now()
      WHERE order_id = $1 AND status = 'RESERVED'`,
    [orderId],
  );
  return reserved;
}

/** The completed order's reserved units leave stock (one statement). */
export async function consumeStock(tx: PoolClient, orderId: string): Promise<void> {
  await tx.query(
    `WITH consumed AS (
       UPDATE inventory_reservations SET status = 'CONSUMED', updated_at = now()
        WHERE order_id = $1 AND status = 'RESERVED'
       RETURNING sku, quantity
     )
     UPDATE products p SET reserved = p.reserved - c.quantity, updated_at = now()
       FROM consumed c WHERE p.sku = c.sku`,
    [orderId],
  );
}
