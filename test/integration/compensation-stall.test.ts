import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { createSimulatedCarrier, createSimulatedPaymentGateway } from '../../activities/providers/simulated';
import { stepKey, workflowIdFor, type OrderSagaInput } from '../../contracts/index';
import { migrate } from '../../store/migrate';
import { insertOrderIfAbsent } from '../../store/orders';
import { createPool, type Pool } from '../../store/pool';
import { resetProduct } from '../../store/products';
import { withTransaction } from '../../store/tx';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-servers';

/**
 * A compensation during a 10 s database stall (every Postgres process SIGSTOPped) is alive,
 * not failed: it heartbeats throughout and finishes once the database answers, so the saga
 * counts no failure and never flags the order REQUIRES_ATTENTION for a stall.
 */
const STALL_MS = 10_000;
jest.setTimeout(120_000);

let dir: string;
let postgres: PrivatePostgres;
let pool: Pool;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-stall-'));
  postgres = await startPrivatePostgres(dir);
  pool = createPool(postgres.urlFor('postgres'), { max: 4 });
  await migrate(pool);
});
afterAll(async () => {
  await pool?.end();
  await postgres?.stop();
  await rm(dir, { recursive: true, force: true });
});

it('when the database stalls for 10 s during releaseInventory, then the compensation heartbeats through it and completes', async () => {
  const activities = createActivities({
    pool,
    gateway: createSimulatedPaymentGateway(pool, { slowCallMs: 100 }),
    carrier: createSimulatedCarrier(pool),
  });
  const sku = `STALL-${randomUUID().slice(0, 8)}`;
  await resetProduct(pool, sku, { name: sku, priceCents: 100, available: 5 });
  const orderId = randomUUID();
  const input: OrderSagaInput = {
    orderId,
    customerId: 'c-stall',
    items: [{ sku, quantity: 2, unitPriceCents: 100 }],
    totalCents: 200,
    currency: 'USD',
    paymentToken: 'tok_ok',
    shippingAddress: { name: 'A', line1: 'B', city: 'C', postalCode: '1', country: 'US' },
    correlationId: randomUUID(),
    requiresApproval: false,
    approvalTimeout: '24h',
  };
  await withTransaction(pool, (tx) => insertOrderIfAbsent(tx, input));
  const workflowId = workflowIdFor(orderId);
  const env = new MockActivityEnvironment({ workflowExecution: { workflowId, runId: randomUUID() } });
  const call = (step: string) => ({ orderId, idempotencyKey: stepKey(workflowId, step) });
  await env.run(activities.reserveInventory, { ...call('reserveInventory'), items: input.items });

  let heartbeatsWhileStalled = 0;
  let stalled = false;
  env.on('heartbeat', () => {
    if (stalled) heartbeatsWhileStalled++;
  });
  postgres.pause();
  stalled = true;
  const released = env.run(activities.releaseInventory, call('releaseInventory'));
  await new Promise((resolve) => setTimeout(resolve, STALL_MS));
  stalled = false;
  postgres.resume();

  await expect(released).resolves.toBeUndefined();
  const { rows } = await pool.query('SELECT available, reserved FROM products WHERE sku = $1', [sku]);
  expect([rows[0], heartbeatsWhileStalled > 0]).toEqual([{ available: 5, reserved: 0 }, true]);
});
