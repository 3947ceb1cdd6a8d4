import { createHash } from 'node:crypto';
import type { Pool } from '../../store/pool';
import {
  answerProviderCall,
  recordProviderCall,
  storeProviderResponse,
  voidProviderKey,
} from '../../store/simulated-provider-requests';
import {
  TransientProviderError,
  VOIDED_REASON,
  type CancelShipmentResult,
  type Carrier,
  type ChargeResult,
  type PaymentGateway,
  type RefundResult,
  type ShipmentResult,
} from './types';

/**
 * Built-in simulated payment gateway and carrier, driven by the order's input so that
 * every saga path can be reached on purpose (CONTRACT §3):
 *   tok_ok pays · tok_declined is declined · tok_flaky fails twice, then pays ·
 *   tok_slow hangs past the activity timeout once, then pays ·
 *   tok_refund_flaky pays, and its refund fails three times before it succeeds ·
 *   tok_unavailable: every charge fails transiently (the gateway is down for it), so the
 *   step exhausts its retries (step_timeout); nothing is charged, so its refund is a no-op ·
 *   any other token is declined (card not recognised) · country ZZ: the carrier refuses.
 * Like a real provider they keep their own idempotency records (table
 * simulated_provider_requests, through store/simulated-provider-requests.ts): the same key
 * always gets the same answer, so a charge, refund, booking or cancel is never applied
 * twice, whatever the retries; a refund or cancel that finds nothing voids the forward key
 * (the guarantees in ./types.ts).
 */

const SUCCESSFUL_TOKENS = new Set(['tok_ok', 'tok_flaky', 'tok_slow', 'tok_refund_flaky']);
/** What a charge key answers once a refund voided it before any charge was captured. */
const VOIDED_CHARGE: ChargeResult = { status: 'declined', reason: VOIDED_REASON };
/** What a booking key answers once a cancel voided it before anything was booked. */
const VOIDED_BOOKING: ShipmentResult = { status: 'refused', reason: VOIDED_REASON };
const CARRIER_NAME = 'SimPost';

export interface SimulatedProviderOptions {
  /** How long tok_slow's first call hangs; longer than the payment activity timeout. */
  slowCallMs: number;
}

const reference = (prefix: string, key: string): string =>
  `${prefix}_${createHash('sha256').update(key).digest('hex').slice(0, 20)}`;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new TransientProviderError('call aborted'));
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(new TransientProviderError('call aborted'));
      },
      { once: true },
    );
  });
}

/** Cards whose answer depends on how many calls reached their key before. */
const CALL_COUNTING_TOKENS = new Set(['tok_unavailable', 'tok_flaky', 'tok_slow']);

const chargeAnswer = (paymentToken: string, idempotencyKey: string): ChargeResult =>
  SUCCESSFUL_TOKENS.has(paymentToken)
    ? { status: 'captured', reference: reference('ch', idempotencyKey) }
    : { status: 'declined', reason: paymentToken === 'tok_declined' ? 'card_declined' : 'unknown_token' };

export function createSimulatedPaymentGateway(pool: Pool, options: SimulatedProviderOptions): PaymentGateway {
  return {
    async charge({ idempotencyKey, paymentToken, signal }) {
      // Most cards answer the same whatever came before: one statement counts and answers.
      if (!CALL_COUNTING_TOKENS.has(paymentToken)) {
        return answerProviderCall(
          pool,
          'payment',
          idempotencyKey,
          { token: paymentToken },
          chargeAnswer(paymentToken, idempotencyKey),
        );
      }
      const { calls, response } = await recordProviderCall<ChargeResult>(pool, 'payment', idempotencyKey, {
        token: paymentToken,
      });
      if (response) return response;
      if (paymentToken === 'tok_unavailable') {
        throw new TransientProviderError(`gateway unavailable (simulated, call ${calls})`);
      }
      if (paymentToken === 'tok_flaky' && calls <= 2) {
        // This card's issuer, not the gateway: other orders' charges go through meanwhile.
        throw new TransientProviderError(
          `processing error for this card (simulated, call ${calls})`,
          'request',
        );
      }
      if (paymentToken === 'tok_slow' && calls === 1) {
        await sleep(options.slowCallMs, signal);
        throw new TransientProviderError('gateway timed out (simulated)');
      }
      return storeProviderResponse(
        pool,
        'payment',
        idempotencyKey,
        chargeAnswer(paymentToken, idempotencyKey),
      );
    },

    async refund({ idempotencyKey, chargeKey }) {
      const { calls, response } = await recordProviderCall<RefundResult>(pool, 'refund', idempotencyKey);
      if (response) return response;
      // Void the charge key unless it has an answer, as a real gateway voids an authorisation:
      // a charge attempt still on its way (one that outlived its timeout) then gets this
      // answer instead of capturing money after the refund found nothing to refund.
      const charge = await voidProviderKey(pool, 'payment', chargeKey, VOIDED_CHARGE);
      if (charge.response.status !== 'captured') {
        return storeProviderResponse<RefundResult>(pool, 'refund', idempotencyKey, {
          status: 'nothing_to_refund',
        });
      }
      if (charge.request.token === 'tok_refund_flaky' && calls <= 3) {
        throw new TransientProviderError(
          `refund failed for this charge (simulated, call ${calls})`,
          'request',
        );
      }
      return storeProviderResponse<RefundResult>(pool, 'refund', idempotencyKey, {
        status: 'refunded',
        reference: reference('re', idempotencyKey),
        chargeReference: charge.response.reference,
      });
    },
  };
}

export function createSimulatedCarrier(pool: Pool): Carrier {
  return {
    async createShipment({ idempotencyKey, country }) {
      const result: ShipmentResult =
        country === 'ZZ'
          ? { status: 'refused', reason: 'destination not served' }
          : {
              status: 'created',
              carrier: CARRIER_NAME,
              trackingNumber: reference('TRK', idempotencyKey).toUpperCase(),
            };
      return answerProviderCall(pool, 'carrier', idempotencyKey, {}, result);
    },

    async cancelShipment({ idempotencyKey, bookingKey }) {
      const { response } = await recordProviderCall<CancelShipmentResult>(
        pool,
        'carrier-cancel',
        idempotencyKey,
        { bookingKey },
      );
      if (response) return response;
      // Void the booking key unless it has an answer, as the gateway voids a charge key: a
      // booking attempt still on its way (one that outlived its timeout) is then refused
      // instead of booking a shipment after the cancel found nothing to cancel.
      const booking = await voidProviderKey(pool, 'carrier', bookingKey, VOIDED_BOOKING);
      const result: CancelShipmentResult =
        booking.response.status === 'created'
          ? {
              status: 'cancelled',
              carrier: booking.response.carrier,
              trackingNumber: booking.response.trackingNumber,
            }
          : { status: 'nothing_to_cancel' };
      return storeProviderResponse(pool, 'carrier-cancel', idempotencyKey, result);
    },
  };
}
