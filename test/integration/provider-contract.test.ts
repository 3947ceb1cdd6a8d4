import { withCircuitBreaker } from '../../activities/providers/circuit-breaker';
import { createSimulatedCarrier, createSimulatedPaymentGateway } from '../../activities/providers/simulated';
import { describeCarrierContract, describeGatewayContract } from '../support/provider-contract';
import { createTestDatabase } from '../support/stack';

/**
 * The simulated gateway and carrier pass the provider contract (test/support/provider-contract.ts),
 * bare and behind the circuit breaker the worker wraps them in. They keep their records in
 * Postgres, so this runs against a database of its own.
 */
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const gatewayFixtures = {
  captured: { amountCents: 3000, currency: 'USD', paymentToken: 'tok_ok' },
  declined: { amountCents: 3000, currency: 'USD', paymentToken: 'tok_declined' },
  unavailable: { amountCents: 3000, currency: 'USD', paymentToken: 'tok_unavailable' },
};
const carrierFixtures = {
  booked: { country: 'US', postalCode: '10001' },
  refused: { country: 'ZZ', postalCode: '00000' },
};

describeGatewayContract(
  'simulated',
  () => createSimulatedPaymentGateway(db.pool, { slowCallMs: 100 }),
  gatewayFixtures,
);
describeGatewayContract(
  'simulated, behind the circuit breaker',
  () =>
    withCircuitBreaker(createSimulatedPaymentGateway(db.pool, { slowCallMs: 100 }), {
      name: 'payment gateway',
    }),
  gatewayFixtures,
);
describeCarrierContract('simulated', () => createSimulatedCarrier(db.pool), carrierFixtures);
describeCarrierContract(
  'simulated, behind the circuit breaker',
  () => withCircuitBreaker(createSimulatedCarrier(db.pool), { name: 'carrier' }),
  carrierFixtures,
);
