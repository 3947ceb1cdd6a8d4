/**
 * Adapters to the outside world. Every call carries an idempotency key derived from
 * (workflow id, step), so a retried call is applied once by the provider.
 */

export type ChargeResult = { status: 'captured'; reference: string } | { status: 'declined'; reason: string };
export type RefundResult = { status: 'refunded'; reference: string } | { status: 'nothing_to_refund' };

export interface PaymentGateway {
  charge(request: {
    idempotencyKey: string;
    amountCents: number;
    currency: string;
    paymentToken: string;
    signal?: AbortSignal;
  }): Promise<ChargeResult>;
  /** Refunds the charge made under `chargeKey`, if there is one. */
  refund(request: { idempotencyKey: string; chargeKey: string; signal?: AbortSignal }): Promise<RefundResult>;
}

export type ShipmentResult =
  { status: 'created'; carrier: string; trackingNumber: string } | { status: 'refused'; reason: string };

export interface Carrier {
  createShipment(request: {
    idempotencyKey: string;
    country: string;
    postalCode: string;
  }): Promise<ShipmentResult>;
  cancelShipment(request: { idempotencyKey: string; trackingNumber: string }): Promise<void>;
}

/**
 * A failure worth retrying (timeouts, 5xx). Anything a provider refuses is a result instead.
 * `scope` says what failed: 'provider' (unreachable, 5xx, overloaded: every call may fail;
 * it counts toward the provider's circuit breaker) or 'request' (only this request, such as
 * an issuer's processing error for one card: retried, but it says nothing about the
 * provider's health, so the breaker ignores it).
 */
export class TransientProviderError extends Error {
  override readonly name = 'TransientProviderError';
  constructor(
    message: string,
    readonly scope: 'provider' | 'request' = 'provider',
  ) {
    super(message);
  }
}
