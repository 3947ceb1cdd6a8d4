/**
 * The one writer of order and step status. Every UPDATE is guarded by the lifecycle table
 * (contracts/lifecycle.ts): a status moves only to an allowed successor, and a terminal
 * order or a finished step never changes again. A refused move changes nothing.
 */
import { orderStatusesBefore, stepStatusesBefore } from '../contracts/lifecycle';
import type { FailureReason, OrderStatus, StepName, StepStatus } from '../contracts/index';
import type { PoolClient, Queryable } from './pool';

/**
 * Moves a step to `status`. `attempt` is the activity attempt that got it there (shown as
 * the step's attempts). Returns whether the step moved.
 */
export async function moveStep(
  db: Queryable,
  orderId: string,
  step: StepName,
  status: StepStatus,
  attempt = 1,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE order_steps SET status = $3, attempts = GREATEST(attempts, $4), updated_at = now()
      WHERE order_id = $1 AND name = $2 AND status = ANY($5::text[])`,
    [orderId, step, status, attempt, stepStatusesBefore(status)],
  );
  return rowCount === 1;
}

/**
 * Moves a step to `status` and, in the same statement, the step that follows it to RUNNING
 * (a forward step that succeeded shows the next one started: one round trip, not two).
 * Each move is guarded as moveStep's is.
 */
export async function moveStepAndNext(
  db: Queryable,
  orderId: string,
  step: { name: StepName; status: StepStatus; attempt: number },
  next: StepName,
): Promise<void> {
  await db.query(
    `UPDATE order_steps s
        SET status = m.status, attempts = GREATEST(s.attempts, m.attempt), updated_at = now()
       FROM (VALUES ($2::text, $3::text, $4::int, $5::text[]), ($6::text, 'RUNNING', 1, $7::text[]))
            AS m(name, status, attempt, allowed)
      WHERE s.order_id = $1 AND s.name = m.name AND s.status = ANY(m.allowed)`,
    [orderId, step.name, step.status, step.attempt, stepStatusesBefore(step.status), next, stepStatusesBefore('RUNNING')],
  );
}

/** Moves an order to a non-terminal `status` (the workflow's COMPENSATING, REQUIRES_ATTENTION). */
export async function moveOrder(db: Queryable, orderId: string, status: OrderStatus): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE orders SET status = $2, updated_at = now() WHERE id = $1 AND status = ANY($3::text[])`,
    [orderId, status, orderStatusesBefore(status)],
  );
  return rowCount === 1;
}

/**
 * The order's approval gate opens, if the order requires approval (decided once, when the
 * API accepted it, and stored with the order): AWAITING_APPROVAL, approval step RUNNING.
 */
export async function openApprovalGate(tx: PoolClient, orderId: string): Promise<void> {
  const { rowCount } = await tx.query(
    `UPDATE orders SET status = 'AWAITING_APPROVAL', updated_at = now()
      WHERE id = $1 AND requires_approval AND status = ANY($2::text[])`,
    [orderId, orderStatusesBefore('AWAITING_APPROVAL')],
  );
  if (rowCount === 1) await moveStep(tx, orderId, 'approval', 'RUNNING');
}

/** The approval decision: the gate passes (PENDING) or the order starts compensating. */
export async function closeApprovalGate(tx: PoolClient, orderId: string, approved: boolean): Promise<void> {
  await moveStep(tx, orderId, 'approval', approved ? 'COMPLETED' : 'FAILED');
  await moveOrder(tx, orderId, approved ? 'PENDING' : 'COMPENSATING');
}

/** The point of no return. Returns the order's total, or undefined if it could not complete. */
export async function completeOrder(
  tx: PoolClient,
  orderId: string,
): Promise<{ totalCents: number } | undefined> {
  const { rows } = await tx.query<{ total_cents: number }>(
    `UPDATE orders SET status = 'COMPLETED', updated_at = now()
      WHERE id = $1 AND status = ANY($2::text[]) RETURNING total_cents`,
    [orderId, orderStatusesBefore('COMPLETED')],
  );
  return rows[0] ? { totalCents: rows[0].total_cents } : undefined;
}

/**
 * The saga's last word on an order it could not complete: FAILED (with its reason) or
 * CANCELLED; createOrder COMPENSATED, the step that refused or ran out of retries FAILED
 * (for a FAILED order, also a step still RUNNING: the charge-and-ship activity of saga v4
 * gave up inside its shipment), the steps never reached SKIPPED. Returns false when the order is missing or already final.
 */
export async function closeOrder(
  tx: PoolClient,
  orderId: string,
  ending: {
    outcome: 'FAILED' | 'CANCELLED';
    failureReason: FailureReason | null;
    failedStep: StepName | null;
  },
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE orders SET status = $2, failure_reason = $3, updated_at = now()
      WHERE id = $1 AND status = ANY($4::text[])`,
    [
      orderId,
      ending.outcome,
      ending.outcome === 'FAILED' ? ending.failureReason : null,
      orderStatusesBefore(ending.outcome),
    ],
  );
  if (rowCount === 0) return false;
  await tx.query(
    `UPDATE order_steps SET status = CASE
         WHEN name = 'createOrder' AND status = ANY($2::text[]) THEN 'COMPENSATED'
         WHEN $3::text IS NOT NULL AND (name = $3 OR status = 'RUNNING') AND status = ANY($4::text[]) THEN 'FAILED'
         WHEN status = ANY($5::text[]) THEN 'SKIPPED'
         ELSE status END,
       updated_at = now()
      WHERE order_id = $1`,
    [
      orderId,
      stepStatusesBefore('COMPENSATED'),
      // A cancelled order shows no FAILED step, whatever its caller says.
      ending.outcome === 'FAILED' ? ending.failedStep : null,
      stepStatusesBefore('FAILED'),
      stepStatusesBefore('SKIPPED'),
    ],
  );
  return true;
}
