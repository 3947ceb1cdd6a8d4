import { createHash } from 'node:crypto';
import type { Pool } from '../../store/pool';
import {
  TransientProviderError,
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
 * simulated_provider_requests): the same key always gets the same answer, so a charge
 * or refund is never applied twice, whatever the retries.
 */

const SUCCESSFUL_TOKENS = new Set(['tok_ok', 'tok_flaky', 'tok_slow', 'tok_refund_flaky']);
/** What a charge key answers once a refund voided it before any charge was captured. */
const VOIDED: ChargeResult = { status: 'declined', reason: 'voided' };

export interface SimulatedProviderOptions {
  /** How long tok_slow's first call hangs; longer than the payment activity timeout. */
  slowCallMs: number;
}

const reference = (prefix: string, key: string): string =>
  `${prefix}_${createHash('sha256').update(key).digest('hex').slice(0, 20)}`;

/** Counts the call and returns the stored answer for this key, if any. */
async function recordCall<T>(
  pool: Pool,
  provider: string,
  key: string,
  request: Record<string, unknown> = {},
): Promise<{ calls: number; response: T | null }> {
  const { rows } = await pool.query<{ calls: number; response: T | null }>(
    `INSERT INTO simulated_provider_requests (provider, idempotency_key, calls, request) VALUES ($1, $2, 1, $3)
     ON CONFLICT (provider, idempotency_key)
       DO UPDATE SET calls = simulated_provider_requests.calls + 1
     RETURNING calls, response`,
    [provider, key, JSON.stringify(request)],
  );
  return rows[0]!;
}

/** Stores the answer unless another call stored one first; returns the one that stands. */
async function storeResponse<T>(pool: Pool, provider: string, key: string, response: T): Promise<T> {
  const { rows } = await pool.query<{ response: T }>(
    `UPDATE simulated_provider_requests SET response = COALESCE(response, $3::jsonb)
      WHERE provider = $1 AND idempotency_key = $2
      RETURNING response`,
    [provider, key, JSON.stringify(response)],
  );
  return rows[0]!.response;
}

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

export function createSimulatedPaymentGateway(pool: Pool, options: SimulatedProviderOptions): PaymentGateway {
  return {
    async charge({ idempotencyKey, paymentToken, signal }) {
      const { calls, response } = await recordCall<ChargeResult>(pool, 'payment', idempotencyKey, {
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
      const result: ChargeResult = SUCCESSFUL_TOKENS.has(paymentToken)
        ? { status: 'captured', reference: reference('ch', idempotencyKey) }
        : { status: 'declined', reason: paymentToken === 'tok_declined' ? 'card_declined' : 'unknown_token' };
      return storeResponse(pool, 'payment', idempotencyKey, result);
    },

    async refund({ idempotencyKey, chargeKey }) {
      const { calls, response } = await recordCall<RefundResult>(pool, 'refund', idempotencyKey);
      if (response) return response;
      // Void the charge key unless it has an answer, as a real gateway voids an authorisation:
      // a charge attempt still on its way (one that outlived its timeout) then gets this
      // answer instead of capturing money after the refund found nothing to refund.
      const { rows } = await pool.query<{ response: ChargeResult | null; token: string | null }>(
        `INSERT INTO simulated_provider_requests (provider, idempotency_key, calls, request, response)
         VALUES ('payment', $1, 0, '{}', $2)
         ON CONFLICT (provider, idempotency_key)
           DO UPDATE SET response = COALESCE(simulated_provider_requests.response, EXCLUDED.response)
         RETURNING response, request->>'token' AS token`,
        [chargeKey, JSON.stringify(VOIDED)],
      );
      const charge = rows[0];
      if (charge?.response?.status !== 'captured') {
        return storeResponse<RefundResult>(pool, 'refund', idempotencyKey, { status: 'nothing_to_refund' });
      }
      if (charge.token === 'tok_refund_flaky' && calls <= 3) {
        throw new TransientProviderError(
          `refund failed for this charge (simulated, call ${calls})`,
          'request',
        );
      }
      return storeResponse<RefundResult>(pool, 'refund', idempotencyKey, {
        status: 'refunded',
        reference: reference('re', idempotencyKey),
      });
    },
  };
}

export function createSimulatedCarrier(pool: Pool): Carrier {
  return {
    async createShipment({ idempotencyKey, country }) {
      const { response } = await recordCall<ShipmentResult>(pool, 'carrier', idempotencyKey);
      if (response) return response;
      const result: ShipmentResult =
        country === 'ZZ'
          ? { status: 'refused', reason: 'destination not served' }
          : {
              status: 'created',
              carrier: 'SimPost',
              trackingNumber: reference('TRK', idempotencyKey).toUpperCase(),
            };
      return storeResponse(pool, 'carrier', idempotencyKey, result);
    },
    async cancelShipment({ idempotencyKey }) {
      await recordCall(pool, 'carrier-cancel', idempotencyKey);
    },
  };
}
