/**
 * The provider contract: what any payment gateway or carrier adapter must do for the saga
 * to be safe (the guarantees written in activities/providers/types.ts). A reusable suite:
 * an adapter's test file calls `describeGatewayContract` / `describeCarrierContract` with a
 * factory for the adapter and requests that reach its outcomes, and sets up whatever the
 * adapter needs (a database, a sandbox account) in its own beforeAll. Every test uses keys
 * of its own, so the suite runs against shared state.
 */
import { randomUUID } from 'node:crypto';
import {
  TransientProviderError,
  VOIDED_REASON,
  type Carrier,
  type PaymentGateway,
} from '../../activities/providers/types';

type Factory<T> = () => T | Promise<T>;

export interface ChargeRequest {
  amountCents: number;
  currency: string;
  paymentToken: string;
}

export interface GatewayFixtures {
  /** A charge the gateway captures. */
  captured: ChargeRequest;
  /** A charge the gateway declines (a card it will not charge). */
  declined: ChargeRequest;
  /** A charge that fails transiently on every call, if the adapter can be made to. */
  unavailable?: ChargeRequest;
}

export interface BookingRequest {
  country: string;
  postalCode: string;
}

export interface CarrierFixtures {
  /** A booking the carrier makes. */
  booked: BookingRequest;
  /** A booking the carrier refuses (a destination it does not serve). */
  refused: BookingRequest;
}

/** Keys as the workflow makes them, `<workflowId>:<step>`, unique to one test. */
function keys(): { workflowId: string; key: (step: string) => string } {
  const workflowId = `contract-${randomUUID()}`;
  return { workflowId, key: (step) => `${workflowId}:${step}` };
}

export function describeGatewayContract(
  name: string,
  makeGateway: Factory<PaymentGateway>,
  fixtures: GatewayFixtures,
): void {
  describe(`payment gateway contract: ${name}`, () => {
    let gateway: PaymentGateway;
    beforeAll(async () => {
      gateway = await makeGateway();
    });

    it('when a charge is sent again under its key, in turn or at once, then it is captured once and every call gets the same answer', async () => {
      const { key } = keys();
      const request = { idempotencyKey: key('chargePayment'), ...fixtures.captured };
      const first = await gateway.charge(request);
      const again = await Promise.all([
        gateway.charge(request),
        gateway.charge(request),
        gateway.charge(request),
      ]);
      expect(first).toEqual({ status: 'captured', reference: expect.any(String) });
      expect(again).toEqual([first, first, first]);
    });

    it('when calls under one key differ in their request, then the first answer stands', async () => {
      const { key } = keys();
      const idempotencyKey = key('chargePayment');
      const first = await gateway.charge({ idempotencyKey, ...fixtures.captured });
      await expect(gateway.charge({ idempotencyKey, ...fixtures.declined })).resolves.toEqual(first);
    });

    it('when a card is declined, then the refusal is a result, not an error, and stays the answer', async () => {
      const { key } = keys();
      const request = { idempotencyKey: key('chargePayment'), ...fixtures.declined };
      const first = await gateway.charge(request);
      expect(first).toEqual({ status: 'declined', reason: expect.any(String) });
      await expect(gateway.charge(request)).resolves.toEqual(first);
    });

    it('when a captured charge is refunded, then it is refunded once and the refund key keeps its answer', async () => {
      const { key } = keys();
      const chargeKey = key('chargePayment');
      const charge = await gateway.charge({ idempotencyKey: chargeKey, ...fixtures.captured });
      const refund = { idempotencyKey: key('refundPayment'), chargeKey };
      const answers = await Promise.all([gateway.refund(refund), gateway.refund(refund)]);
      // It names the capture it refunded: the saga announces a capture it learns of this way.
      expect(charge.status).toBe('captured');
      const chargeReference = charge.status === 'captured' ? charge.reference : undefined;
      expect(answers[0]).toEqual({ status: 'refunded', reference: expect.any(String), chargeReference });
      expect(answers[1]).toEqual(answers[0]);
      await expect(gateway.refund(refund)).resolves.toEqual(answers[0]);
      // The charge key keeps its own answer: a refunded charge is not captured again.
      await expect(gateway.charge({ idempotencyKey: chargeKey, ...fixtures.captured })).resolves.toEqual(
        charge,
      );
    });

    it('when a charge key that was never charged is refunded, then nothing is refunded and a later charge under it is declined as voided', async () => {
      const { key } = keys();
      const chargeKey = key('chargePayment');
      const refund = await gateway.refund({ idempotencyKey: key('refundPayment'), chargeKey });
      expect(refund).toEqual({ status: 'nothing_to_refund' });
      await expect(gateway.charge({ idempotencyKey: chargeKey, ...fixtures.captured })).resolves.toEqual({
        status: 'declined',
        reason: VOIDED_REASON,
      });
    });

    it('when a declined charge is refunded, then nothing is refunded and the charge stays declined', async () => {
      const { key } = keys();
      const chargeKey = key('chargePayment');
      const declined = await gateway.charge({ idempotencyKey: chargeKey, ...fixtures.declined });
      await expect(gateway.refund({ idempotencyKey: key('refundPayment'), chargeKey })).resolves.toEqual({
        status: 'nothing_to_refund',
      });
      await expect(gateway.charge({ idempotencyKey: chargeKey, ...fixtures.captured })).resolves.toEqual(
        declined,
      );
    });

    it('when a charge and the refund of its key race, then money is either captured and refunded, or never captured', async () => {
      for (let round = 0; round < 10; round++) {
        const { key } = keys();
        const chargeKey = key('chargePayment');
        const [charge, refund] = await Promise.all([
          gateway.charge({ idempotencyKey: chargeKey, ...fixtures.captured }),
          gateway.refund({ idempotencyKey: key('refundPayment'), chargeKey }),
        ]);
        if (charge.status === 'captured') {
          expect(refund).toEqual({
            status: 'refunded',
            reference: expect.any(String),
            chargeReference: charge.reference,
          });
        } else {
          expect([charge, refund]).toEqual([
            { status: 'declined', reason: VOIDED_REASON },
            { status: 'nothing_to_refund' },
          ]);
        }
      }
    });

    const { unavailable } = fixtures;
    if (unavailable) {
      it('when the gateway fails transiently, then the call throws TransientProviderError and nothing is captured', async () => {
        const { key } = keys();
        const chargeKey = key('chargePayment');
        await expect(gateway.charge({ idempotencyKey: chargeKey, ...unavailable })).rejects.toBeInstanceOf(
          TransientProviderError,
        );
        await expect(gateway.refund({ idempotencyKey: key('refundPayment'), chargeKey })).resolves.toEqual({
          status: 'nothing_to_refund',
        });
      });
    }
  });
}

export function describeCarrierContract(
  name: string,
  makeCarrier: Factory<Carrier>,
  fixtures: CarrierFixtures,
): void {
  describe(`carrier contract: ${name}`, () => {
    let carrier: Carrier;
    beforeAll(async () => {
      carrier = await makeCarrier();
    });

    it('when a booking is sent again under its key, in turn or at once, then one shipment is booked and every call gets the same answer', async () => {
      const { key } = keys();
      const request = { idempotencyKey: key('createShipment'), ...fixtures.booked };
      const first = await carrier.createShipment(request);
      const again = await Promise.all([
        carrier.createShipment(request),
        carrier.createShipment(request),
        carrier.createShipment(request),
      ]);
      expect(first).toEqual({
        status: 'created',
        carrier: expect.any(String),
        trackingNumber: expect.any(String),
      });
      expect(again).toEqual([first, first, first]);
    });

    it('when calls under one key differ in their request, then the first answer stands', async () => {
      const { key } = keys();
      const idempotencyKey = key('createShipment');
      const first = await carrier.createShipment({ idempotencyKey, ...fixtures.booked });
      await expect(carrier.createShipment({ idempotencyKey, ...fixtures.refused })).resolves.toEqual(first);
    });

    it('when a destination is refused, then the refusal is a result, not an error, and stays the answer', async () => {
      const { key } = keys();
      const request = { idempotencyKey: key('createShipment'), ...fixtures.refused };
      const first = await carrier.createShipment(request);
      expect(first).toEqual({ status: 'refused', reason: expect.any(String) });
      await expect(carrier.createShipment(request)).resolves.toEqual(first);
    });

    it('when a booked shipment is cancelled by its booking key, then that booking is cancelled once and the cancel key keeps its answer', async () => {
      const { key } = keys();
      const bookingKey = key('createShipment');
      const booking = await carrier.createShipment({ idempotencyKey: bookingKey, ...fixtures.booked });
      if (booking.status !== 'created') throw new Error(`the booked fixture was refused: ${booking.reason}`);
      const cancel = { idempotencyKey: key('cancelShipment'), bookingKey };
      const answers = await Promise.all([carrier.cancelShipment(cancel), carrier.cancelShipment(cancel)]);
      expect(answers[0]).toEqual({
        status: 'cancelled',
        carrier: booking.carrier,
        trackingNumber: booking.trackingNumber,
      });
      expect(answers[1]).toEqual(answers[0]);
      await expect(carrier.cancelShipment(cancel)).resolves.toEqual(answers[0]);
      // The booking key keeps its own answer: a cancelled booking is not booked again.
      await expect(
        carrier.createShipment({ idempotencyKey: bookingKey, ...fixtures.booked }),
      ).resolves.toEqual(booking);
    });

    it('when a booking key that was never booked is cancelled, then nothing is cancelled and a later booking under it is refused as voided', async () => {
      const { key } = keys();
      const bookingKey = key('createShipment');
      const cancel = await carrier.cancelShipment({ idempotencyKey: key('cancelShipment'), bookingKey });
      expect(cancel).toEqual({ status: 'nothing_to_cancel' });
      await expect(
        carrier.createShipment({ idempotencyKey: bookingKey, ...fixtures.booked }),
      ).resolves.toEqual({
        status: 'refused',
        reason: VOIDED_REASON,
      });
    });

    it('when a refused booking is cancelled, then nothing is cancelled and the booking stays refused', async () => {
      const { key } = keys();
      const bookingKey = key('createShipment');
      const refused = await carrier.createShipment({ idempotencyKey: bookingKey, ...fixtures.refused });
      await expect(
        carrier.cancelShipment({ idempotencyKey: key('cancelShipment'), bookingKey }),
      ).resolves.toEqual({
        status: 'nothing_to_cancel',
      });
      await expect(
        carrier.createShipment({ idempotencyKey: bookingKey, ...fixtures.booked }),
      ).resolves.toEqual(refused);
    });

    it('when a booking and the cancel of its key race, then a shipment is either booked and cancelled, or never booked', async () => {
      for (let round = 0; round < 10; round++) {
        const { key } = keys();
        const bookingKey = key('createShipment');
        const [booking, cancel] = await Promise.all([
          carrier.createShipment({ idempotencyKey: bookingKey, ...fixtures.booked }),
          carrier.cancelShipment({ idempotencyKey: key('cancelShipment'), bookingKey }),
        ]);
        if (booking.status === 'created') {
          expect(cancel).toEqual({
            status: 'cancelled',
            carrier: booking.carrier,
            trackingNumber: booking.trackingNumber,
          });
        } else {
          expect([booking, cancel]).toEqual([
            { status: 'refused', reason: VOIDED_REASON },
            { status: 'nothing_to_cancel' },
          ]);
        }
      }
    });
  });
}
