import { fenceStep, findRecorded, runOnce } from '../store/ledger';
import { appendEvent } from '../store/outbox';
import type { Pool, PoolClient } from '../store/pool';
import { withTransaction } from '../store/tx';
import { markStepCompensating, markStepRunning, setStepStatus } from '../store/steps';
import type { StepOutcome } from '../contracts/index';
import type { StepCall } from './orders';
import type { PaymentGateway } from './providers/types';
import { callProvider, currentStep } from './step-context';

export function createPaymentActivities({ pool, gateway }: { pool: Pool; gateway: PaymentGateway }) {
  return {
    /**
     * Charges through the gateway (idempotent by key on the gateway's side), then records
     * the outcome in one transaction. A decline is recorded (DECLINED, PaymentDeclined)
     * and returned; it is never retried.
     */
    chargePayment: async (
      call: StepCall & { amountCents: number; currency: string; paymentToken: string },
    ): Promise<StepOutcome> => {
      const recorded = await findRecorded<StepOutcome>(pool, call.idempotencyKey);
      if (recorded) return recorded;
      const { workflowId, attempt } = currentStep();
      await markStepRunning(pool, call.orderId, 'chargePayment', attempt);
      const charge = await callProvider((signal) =>
        gateway.charge({
          idempotencyKey: call.idempotencyKey,
          amountCents: call.amountCents,
          currency: call.currency,
          paymentToken: call.paymentToken,
          signal,
        }),
      );
      const entry = { idempotencyKey: call.idempotencyKey, workflowId, step: 'chargePayment' };
      return runOnce(pool, entry, async (tx): Promise<StepOutcome> => {
        const captured = charge.status === 'captured';
        await tx.query(
          `INSERT INTO payments (order_id, status, amount_cents, provider_ref) VALUES ($1, $2, $3, $4)`,
          [
            call.orderId,
            captured ? 'CAPTURED' : 'DECLINED',
            call.amountCents,
            captured ? charge.reference : null,
          ],
        );
        await setStepStatus(tx, call.orderId, 'chargePayment', captured ? 'COMPLETED' : 'FAILED');
        await appendEvent(
          tx,
          captured
            ? {
                orderId: call.orderId,
                type: 'PaymentCaptured',
                data: { amountCents: call.amountCents, currency: call.currency, reference: charge.reference },
              }
            : { orderId: call.orderId, type: 'PaymentDeclined', data: { reason: charge.reason } },
        );
        return captured ? { ok: true } : { ok: false, reason: 'payment_declined' };
      });
    },

    /**
     * Refunds the charge made under `chargeKey`. Asks the gateway even when no payment is
     * recorded yet, because a charge attempt that timed out may still have gone through.
     */
    refundPayment: async (call: StepCall & { chargeKey: string }): Promise<void> => {
      const { rows } = await pool.query<{ status: string }>(
        'SELECT status FROM payments WHERE order_id = $1',
        [call.orderId],
      );
      const recordedStatus = rows[0]?.status;
      if (recordedStatus === 'DECLINED' || recordedStatus === 'REFUNDED') return;
      await markStepCompensating(pool, call.orderId, 'chargePayment');
      const refund = await callProvider((signal) =>
        gateway.refund({ idempotencyKey: call.idempotencyKey, chargeKey: call.chargeKey, signal }),
      );
      // The gateway now refuses the charge key (refunded, or voided when nothing was
      // captured); the fence keeps a charge attempt that comes late from recording anything.
      const { workflowId } = currentStep();
      const fence = (tx: PoolClient) => fenceStep(tx, workflowId, 'chargePayment');
      if (refund.status === 'nothing_to_refund') {
        await withTransaction(pool, fence);
        return;
      }
      const entry = { idempotencyKey: call.idempotencyKey, workflowId, step: 'refundPayment' };
      await runOnce(pool, entry, async (tx) => {
        await fence(tx);
        const { rows: payment } = await tx.query<{ amount_cents: number }>(
          `INSERT INTO payments (order_id, status, amount_cents, provider_ref)
           SELECT id, 'REFUNDED', total_cents, $2 FROM orders WHERE id = $1
           ON CONFLICT (order_id) DO UPDATE SET status = 'REFUNDED', updated_at = now()
             WHERE payments.status = 'CAPTURED'
           RETURNING amount_cents`,
          [call.orderId, refund.reference],
        );
        if (payment.length === 0) return null;
        await setStepStatus(tx, call.orderId, 'chargePayment', 'COMPENSATED');
        await appendEvent(tx, {
          orderId: call.orderId,
          type: 'PaymentRefunded',
          data: { amountCents: payment[0]!.amount_cents, reference: refund.reference },
        });
        return null;
      });
    },
  };
}
