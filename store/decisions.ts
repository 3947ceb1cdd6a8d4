import type { Pool } from './pool';

export type DecisionAction = 'approve' | 'reject' | 'cancel';

/**
 * Records that `by` approved, rejected or cancelled an order (migrations/0003). Called once
 * Temporal accepted the request; a retry of the same request (same request id) adds nothing.
 */
export async function recordDecision(
  pool: Pool,
  decision: { orderId: string; action: DecisionAction; by: string; requestId: string },
): Promise<void> {
  await pool.query(
    `INSERT INTO order_decisions (order_id, action, principal, request_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (order_id, action, request_id) DO NOTHING`,
    [decision.orderId, decision.action, decision.by, decision.requestId],
  );
}
