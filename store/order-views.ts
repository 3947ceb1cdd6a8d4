import type { Pool } from './pool';
import type {
  FailureReason,
  OrderStatus,
  PaymentStatus,
  ShipmentStatus,
  StepName,
  StepStatus,
} from '../contracts/index';

export interface OrderRow {
  id: string;
  workflow_id: string;
  customer_id: string;
  status: OrderStatus;
  failure_reason: FailureReason | null;
  total_cents: number;
  currency: string;
  created_at: Date;
  updated_at: Date;
  /** created_at in whole microseconds since the epoch: exact, unlike a JS Date, for the cursor. */
  created_us: number;
  items: { sku: string; quantity: number; unitPriceCents: number }[];
  steps: { name: StepName; status: StepStatus; attempts: number }[];
  payment_status: Exclude<PaymentStatus, 'NONE'> | null;
  shipment_status: Exclude<ShipmentStatus, 'NONE'> | null;
  tracking_number: string | null;
  /** Approvals, rejections and cancellations, oldest first (order_decisions). */
  decisions: { action: 'approve' | 'reject' | 'cancel'; by: string; at: string }[];
}

// One statement per read: lines, steps and decisions are aggregated in subselects, payment and
// shipment (at most one row each) joined.
const SELECT_ORDERS = `
  SELECT o.id, o.workflow_id, o.customer_id, o.status, o.failure_reason, o.total_cents, o.currency,
         o.created_at, o.updated_at,
         (extract(epoch FROM o.created_at) * 1000000)::bigint AS created_us,
         (SELECT coalesce(json_agg(json_build_object(
                   'sku', i.sku, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents)
                 ORDER BY i.line), '[]')
            FROM order_items i WHERE i.order_id = o.id) AS items,
         (SELECT coalesce(json_agg(json_build_object(
                   'name', s.name, 'status', s.status, 'attempts', s.attempts)
                 ORDER BY s.position), '[]')
            FROM order_steps s WHERE s.order_id = o.id) AS steps,
         (SELECT coalesce(json_agg(json_build_object(
                   'action', d.action, 'by', d.principal,
                   'at', to_char(d.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                 ORDER BY d.decided_at, d.id), '[]')
            FROM order_decisions d WHERE d.order_id = o.id) AS decisions,
         p.status AS payment_status,
         sh.status AS shipment_status, sh.tracking_number
    FROM orders o
    LEFT JOIN payments p ON p.order_id = o.id
    LEFT JOIN shipments sh ON sh.order_id = o.id`;

export async function findOrder(pool: Pool, orderId: string): Promise<OrderRow | undefined> {
  const { rows } = await pool.query<OrderRow>(`${SELECT_ORDERS} WHERE o.id = $1`, [orderId]);
  return rows[0];
}

export async function findOrderStatus(pool: Pool, orderId: string): Promise<OrderStatus | undefined> {
  const { rows } = await pool.query<{ status: OrderStatus }>('SELECT status FROM orders WHERE id = $1', [
    orderId,
  ]);
  return rows[0]?.status;
}

/**
 * Seconds since the order was accepted, by the database's clock on both ends (worker clocks
 * may drift from it); undefined when the order is missing.
 */
export async function secondsSinceAccepted(pool: Pool, orderId: string): Promise<number | undefined> {
  const { rows } = await pool.query<{ seconds: number }>(
    'SELECT EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8 AS seconds FROM orders WHERE id = $1',
    [orderId],
  );
  return rows[0]?.seconds;
}

/** Position after which a page starts: the last row of the previous page. */
export interface OrderKey {
  createdUs: number;
  id: string;
}

export interface ListOrdersFilter {
  customerId?: string;
  status?: OrderStatus;
  after?: OrderKey;
  limit: number;
}

/** Newest first by (created_at, id); returns up to `limit` rows. */
export async function listOrders(pool: Pool, filter: ListOrdersFilter): Promise<OrderRow[]> {
  const conditions: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown): string => `$${params.push(value)}`;
  if (filter.customerId !== undefined) conditions.push(`o.customer_id = ${param(filter.customerId)}`);
  if (filter.status !== undefined) conditions.push(`o.status = ${param(filter.status)}`);
  if (filter.after !== undefined) {
    const createdAt = `timestamptz 'epoch' + ${param(filter.after.createdUs)}::bigint * interval '1 microsecond'`;
    conditions.push(`(o.created_at, o.id) < (${createdAt}, ${param(filter.after.id)}::uuid)`);
  }
  const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
  const { rows } = await pool.query<OrderRow>(
    `${SELECT_ORDERS} ${where} ORDER BY o.created_at DESC, o.id DESC LIMIT ${param(filter.limit)}`,
    params,
  );
  return rows;
}
