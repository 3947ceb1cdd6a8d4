import { activitiesOver, newActivityOrder } from '../support/activity-order';
import { createSimulatedPaymentGateway } from '../../activities/providers/simulated';
import { createTestDatabase } from '../support/stack';

/**
 * refundPayment when the gateway captured but our records never showed it: a charge attempt
 * whose answer was lost (its worker died after the gateway answered, or its recording was
 * fenced off). The refund learns of the capture from the gateway and the stream shows both,
 * capture then refund, so no consumer sees a refund of a payment it never saw captured.
 * Against the real database and the simulated gateway (its records are in Postgres).
 */
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function events(orderId: string) {
  const { rows } = await db.pool.query<{ type: string; data: unknown }>(
    `SELECT type, body->'data' AS data FROM outbox WHERE aggregate_id = $1 ORDER BY sequence`,
    [orderId],
  );
  return rows;
}

describe('refundPayment of a capture that was never recorded', () => {
  it('when the gateway captured under the charge key but no payment was recorded, then the refund announces the capture, then the refund', async () => {
    const { orderId, input, env, call } = await newActivityOrder(db.pool, { customerId: 'c-payment-void' });
    const chargeKey = call('chargePayment').idempotencyKey;
    const charge = await createSimulatedPaymentGateway(db.pool, { slowCallMs: 100 }).charge({
      idempotencyKey: chargeKey,
      amountCents: input.totalCents,
      currency: input.currency,
      paymentToken: 'tok_ok',
    });
    expect(charge.status).toBe('captured');
    const chargeReference = charge.status === 'captured' ? charge.reference : undefined;

    await env().run(activitiesOver(db.pool).refundPayment, { ...call('refundPayment'), chargeKey });

    expect(await events(orderId)).toEqual([
      {
        type: 'PaymentCaptured',
        data: { amountCents: input.totalCents, currency: input.currency, reference: chargeReference },
      },
      { type: 'PaymentRefunded', data: { amountCents: input.totalCents, reference: expect.any(String) } },
    ]);
  });
});
