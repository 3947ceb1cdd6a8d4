/**
 * Adapters to the outside world, and what any adapter must guarantee. The saga's safety
 * rests on these guarantees, not on one adapter's behaviour: test/support/provider-contract.ts
 * is the suite every adapter must pass (the simulated ones do, in the integration band).
 *
 * For every operation below:
 * - **Idempotent by key.** Every call carries an idempotency key decided by the workflow
 *   (`<workflowId>:<step>`). The provider applies a key's effect at most once, however often
 *   and however concurrently the key is sent, and once a key has an answer, every later call
 *   under it gets the same answer (other fields of the request do not change it).
 * - **Transient failures throw TransientProviderError** (timeouts, 5xx, overload; scope
 *   'provider' or 'request'): the call may or may not have reached the provider, and the
 *   saga retries it under the same key. Nothing else is thrown for a provider's trouble.
 * - **Business refusals are results**, never thrown (`declined`, `refused`): final for that
 *   key, never retried.
 * - An aborted `signal` may end the call early with a TransientProviderError; the key's
 *   outcome is then whatever the provider did, and a retry under the key learns it.
 *
 * And the undo of each forward operation is by the forward call's key, not by anything
 * the forward call returned: the compensation runs when the forward attempt's answer may
 * have been lost (it timed out, or its recording was fenced off), so it cannot rely on our
 * own records. Undoing a key that got nothing yet **voids** it: the forward operation under
 * that key is refused from then on, so an attempt still on its way (one that outlived its
 * timeout) cannot take money or book goods after the undo found nothing to undo.
 */

export type ChargeResult = { status: 'captured'; reference: string } | { status: 'declined'; reason: string };
export type RefundResult =
  /** `chargeReference`: the capture refunded (what `charge` answered under the charge key). */
  { status: 'refunded'; reference: string; chargeReference: string } | { status: 'nothing_to_refund' };

export interface PaymentGateway {
  /**
   * Captures `amountCents` under `idempotencyKey`: at most one capture per key, and the same
   * answer for every call under it. A card the gateway will not charge is `declined` (a
   * result). A key voided by `refund` before any capture answers `declined` with reason
   * `voided` and captures nothing, whenever the charge arrives.
   */
  charge(request: {
    idempotencyKey: string;
    amountCents: number;
    currency: string;
    paymentToken: string;
    signal?: AbortSignal;
  }): Promise<ChargeResult>;
  /**
   * Undoes the charge made under `chargeKey`, idempotent by its own `idempotencyKey`:
   * - `chargeKey` captured: refunds it in full, once (`refunded`, with a reference and the
   *   captured charge's reference); a refund is never applied twice, whatever the retries.
   * - `chargeKey` declined, or never seen: `nothing_to_refund`, and the charge key is void
   *   for good (see `charge`). The void is atomic with the gateway's own record of the key:
   *   a charge racing the refund either captured first (and is refunded) or is refused.
   * Must be called even when we recorded no charge: only the gateway knows whether one
   * went through.
   */
  refund(request: { idempotencyKey: string; chargeKey: string; signal?: AbortSignal }): Promise<RefundResult>;
}

export type ShipmentResult =
  { status: 'created'; carrier: string; trackingNumber: string } | { status: 'refused'; reason: string };
export type CancelShipmentResult =
  { status: 'cancelled'; carrier: string; trackingNumber: string } | { status: 'nothing_to_cancel' };

export interface Carrier {
  /**
   * Books a shipment under `idempotencyKey`: at most one booking per key, and the same answer
   * for every call under it. A destination the carrier will not serve is `refused` (a
   * result). A key voided by `cancelShipment` before any booking answers `refused` with
   * reason `voided` and books nothing, whenever the booking arrives.
   */
  createShipment(request: {
    idempotencyKey: string;
    country: string;
    postalCode: string;
    signal?: AbortSignal;
  }): Promise<ShipmentResult>;
  /**
   * Undoes the booking made under `bookingKey`, idempotent by its own `idempotencyKey`:
   * - `bookingKey` booked: cancels that booking, once (`cancelled`, with its carrier and
   *   tracking number, which we may never have recorded).
   * - `bookingKey` refused, or never seen: `nothing_to_cancel`, and the booking key is void
   *   for good (see `createShipment`). The void is atomic with the carrier's own record of
   *   the key: a booking racing the cancel either booked first (and is cancelled) or is
   *   refused.
   * Must be called even when we recorded no booking: only the carrier knows whether one
   * went through.
   */
  cancelShipment(request: {
    idempotencyKey: string;
    bookingKey: string;
    signal?: AbortSignal;
  }): Promise<CancelShipmentResult>;
}

/** The reason a voided key's forward call is refused with (`declined` charge, `refused` booking). */
export const VOIDED_REASON = 'voided';

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
