import type { OrderStatus, StepName, StepStatus } from '../contracts/index';
import type { Pool, PoolClient } from './pool';

type Queryable = Pool | PoolClient;

/**
 * Marks a step RUNNING with its attempt number before its transaction starts, so
 * GET /orders/:id shows live progress. Best effort and idempotent: it never moves a step
 * that already reached an outcome.
 */
export async function markStepRunning(db: Queryable, orderId: string, step: StepName, attempt: number): Promise<void> {
  await db.query(
    `UPDATE order_steps SET status = 'RUNNING', attempts = GREATEST(attempts, $3), updated_at = now()
      WHERE order_id = $1 AND name = $2 AND status IN ('PENDING', 'RUNNING')`,
    [orderId, step, attempt],
  );
}

/** Marks a completed step as being undone (best effort, before its compensation's transaction). */
export async function markStepCompensating(db: Queryable, orderId: string, step: StepName): Promise<void> {
  await db.query(
    `UPDATE order_steps SET status = 'COMPENSATING', updated_at = now()
      WHERE order_id = $1 AND name = $2 AND status = 'COMPLETED'`,
    [orderId, step],
  );
}

export async function setStepStatus(tx: PoolClient, orderId: string, step: StepName, status: StepStatus): Promise<void> {
  await tx.query(
    `UPDATE order_steps SET status = $3, attempts = GREATEST(attempts, 1), updated_at = now()
      WHERE order_id = $1 AND name = $2`,
    [orderId, step, status],
  );
}

/** Moves a non-terminal order to `status`; a terminal order never changes. */
export async function setOrderStatus(db: Queryable, orderId: string, status: OrderStatus): Promise<void> {
  await db.query(
    `UPDATE orders SET status = $2, updated_at = now()
      WHERE id = $1 AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')`,
    [orderId, status],
  );
}
