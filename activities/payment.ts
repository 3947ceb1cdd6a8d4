import type { StepOutcome } from '../contracts/index';
import { appendEvent } from '../store/outbox';
import { findPaymentStatus, recordCharge, recordRefund } from '../store/payments';
import type { Pool } from '../store/pool';
import type { PaymentGateway } from './providers/types';
import { runCompensation, runStep, type StepCall } from './step-runner';

export function createPaymentActivities({ pool, gateway }: { pool: Pool; gateway: PaymentGateway }) {
  return {
    /**
     * Charges through the gateway (idempotent by key on the gateway's side), then records
     * the outcome. A decline is recorded (DECLINED, PaymentDeclined) and returned; it is
     * never retried.
     */
    chargePayment: (
      call: StepCall & { amountCents: number; currency: string; paymentToken: string },
    ): Promise<StepOutcome> =>
      runStep(pool, {
        call,
        step: 'chargePayment',
        next: 'createShipment',
        provider: (signal) =>
          gateway.charge({
            idempotencyKey: call.idempotencyKey,
            amountCents: call.amountCents,
            currency: call.currency,
            paymentToken: call.paymentToken,
            signal,
          }),
        commit: async (tx, charge) => {
          const { orderId, amountCents, currency } = call;
          if (charge.status === 'declined') {
            await recordCharge(tx, orderId, { status: 'DECLINED', amountCents, reference: null });
            await appendEvent(tx, { orderId, type: 'PaymentDeclined', data: { reason: charge.reason } });
            return { ok: false, reason: 'payment_declined' };
          }
          await recordCharge(tx, orderId, { status: 'CAPTURED', amountCents, reference: charge.reference });
          await appendEvent(tx, {
            orderId,
            type: 'PaymentCaptured',
            data: { amountCents, currency, reference: charge.reference },
          });
          return { ok: true };
        },
      }),

    /**
     * Refunds the charge made under `chargeKey`. Asks the gateway even when no payment is
     * recorded, because a charge attempt that timed out may still have gone through; the
     * gateway then refuses the charge key for good (refunded, or voided when nothing was
     * captured), and the fence keeps a late charge attempt from recording anything. A
     * capture learned only from its refund is announced first (PaymentCaptured, then
     * PaymentRefunded), so the stream never refunds a payment it did not show captured.
     */
    refundPayment: (call: StepCall & { chargeKey: string }): Promise<void> =>
      runCompensation(pool, {
        call,
        name: 'refundPayment',
        undoes: 'chargePayment',
        provider: {
          find: async (tx) => {
            const status = await findPaymentStatus(tx, call.orderId);
            return status === 'DECLINED' || status === 'REFUNDED' ? null : call.chargeKey;
          },
          call: (chargeKey, signal) =>
            gateway.refund({ idempotencyKey: call.idempotencyKey, chargeKey, signal }),
        },
        undo: async (tx, _chargeKey, refund, chargeRecorded) => {
          if (refund?.status !== 'refunded') return false;
          const refunded = await recordRefund(tx, call.orderId, refund.reference);
          if (refunded === undefined) return false;
          const { amountCents, currency } = refunded;
          if (!chargeRecorded) {
            await appendEvent(tx, {
              orderId: call.orderId,
              type: 'PaymentCaptured',
              data: { amountCents, currency, reference: refund.chargeReference },
            });
          }
          await appendEvent(tx, {
            orderId: call.orderId,
            type: 'PaymentRefunded',
            data: { amountCents, reference: refund.reference },
          });
          return true;
        },
      }),
  };
}
