/** The order's payment row: CAPTURED or DECLINED by the charge, REFUNDED by its undo. */
import type { PaymentStatus } from '../contracts/index';
import type { Queryable } from './pool';

type RecordedPayment = Exclude<PaymentStatus, 'NONE'>;

export async function recordCharge(
  tx: Queryable,
  orderId: string,
  charge: { status: 'CAPTURED' | 'DECLINED'; amountCents: number; reference: string | null },
): Promise<void> {
  await tx.query(
    `INSERT INTO payments (order_id, status, amount_cents, provider_ref) VALUES ($1, $2, $3, $4)`,
    [orderId, charge.status, charge.amountCents, charge.reference],
  );
}

export async function findPaymentStatus(
  db: Queryable,
  orderId: string,
): Promise<RecordedPayment | undefined> {
  const { rows } = await db.query<{ status: RecordedPayment }>(
    'SELECT status FROM payments WHERE order_id = $1',
    [orderId],
  );
  return rows[0]?.status;
}

/**
 * Records a refund: a captured payment becomes REFUNDED; with no payment recorded (the charge
 * went through but its recording was fenced off) one is written for the order's total.
 * Returns the amount refunded and its currency, or undefined when there was nothing captured
 * to refund.
 */
export async function recordRefund(
  tx: Queryable,
  orderId: string,
  reference: string,
): Promise<{ amountCents: number; currency: string } | undefined> {
  const { rows } = await tx.query<{ amountCents: number; currency: string }>(
    `INSERT INTO payments (order_id, status, amount_cents, provider_ref)
     SELECT id, 'REFUNDED', total_cents, $2 FROM orders WHERE id = $1
     ON CONFLICT (order_id) DO UPDATE SET status = 'REFUNDED', updated_at = now()
       WHERE payments.status = 'CAPTURED'
     RETURNING amount_cents AS "amountCents",
       (SELECT currency FROM orders WHERE id = $1) AS currency`,
    [orderId, reference],
  );
  return rows[0];
}
