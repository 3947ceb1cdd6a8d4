import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import {
  DENIED_CUSTOMER,
  startSagaHarness,
  type OrderOptions,
  type SagaHarness,
  type StartedOrder,
} from '../support/saga-harness';
import { decodedHistory } from '../support/encryption';

/**
 * `npm run histories:record`: runs every saga path against a real dev server and writes
 * each run's event history to test/histories/<path>.<version>.json. The replay band
 * (test/replay) replays them against the current workflow code, so a change that would
 * break sagas already running fails CI. Bump WORKFLOW_VERSION when the saga changes.
 */
const WORKFLOW_VERSION = 'v4'; // v4: two workflow tasks (fraud screening local, charge + shipment one activity); v3: database steps as local activities
const OUT_DIR = path.resolve(__dirname, '..', 'histories');

type Drive = (saga: SagaHarness, order: StartedOrder) => Promise<void>;
const untilAwaiting: Drive = (saga, order) =>
  saga.waitForStatus(order.orderId, ['AWAITING_APPROVAL']).then(() => undefined);

const PATHS: Array<{ name: string; order: OrderOptions; expect: string; drive?: Drive }> = [
  { name: 'completed', expect: 'COMPLETED', order: { paymentToken: 'tok_ok' } },
  { name: 'payment-declined', expect: 'FAILED/payment_declined', order: { paymentToken: 'tok_declined' } },
  {
    name: 'out-of-stock',
    expect: 'FAILED/insufficient_stock',
    order: { items: [{ sku: 'SKU-NONE', quantity: 1 }] },
  },
  { name: 'fraud-suspected', expect: 'FAILED/fraud_suspected', order: { customerId: DENIED_CUSTOMER } },
  { name: 'carrier-refused', expect: 'FAILED/shipping_unavailable', order: { country: 'ZZ' } },
  { name: 'payment-flaky', expect: 'COMPLETED', order: { paymentToken: 'tok_flaky' } },
  { name: 'payment-slow', expect: 'COMPLETED', order: { paymentToken: 'tok_slow' } },
  {
    name: 'refund-flaky',
    expect: 'FAILED/shipping_unavailable',
    order: { paymentToken: 'tok_refund_flaky', country: 'ZZ' },
  },
  {
    name: 'approved',
    expect: 'COMPLETED',
    order: { requiresApproval: true },
    drive: async (saga, order) => {
      await untilAwaiting(saga, order);
      await order.handle.executeUpdate('approve');
    },
  },
  {
    name: 'rejected',
    expect: 'FAILED/approval_rejected',
    order: { requiresApproval: true },
    drive: async (saga, order) => {
      await untilAwaiting(saga, order);
      await order.handle.executeUpdate('reject');
    },
  },
  {
    name: 'approval-timeout',
    expect: 'FAILED/approval_timeout',
    order: { requiresApproval: true, approvalTimeout: '1s' },
  },
  {
    name: 'cancelled-awaiting-approval',
    expect: 'CANCELLED',
    order: { requiresApproval: true },
    drive: async (saga, order) => {
      await untilAwaiting(saga, order);
      await order.handle.cancel();
    },
  },
  {
    name: 'cancelled-before-reservation',
    expect: 'CANCELLED',
    order: {},
    drive: async (_saga, order) => {
      await order.handle.cancel();
    },
  },
  {
    name: 'cancelled-during-payment',
    expect: 'CANCELLED',
    order: { paymentToken: 'tok_slow' },
    drive: async (saga, order) => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const { rows } = await saga.pool.query<{ status: string }>(
          `SELECT status FROM order_steps WHERE order_id = $1 AND name = 'chargePayment'`,
          [order.orderId],
        );
        if (rows[0]?.status === 'RUNNING' || Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await order.handle.cancel();
    },
  },
];

let saga: SagaHarness;
beforeAll(async () => {
  saga = await startSagaHarness();
  await saga.putProduct('SKU-NONE', 100, 0);
  await mkdir(OUT_DIR, { recursive: true });
});
afterAll(() => saga?.close());

test.each(PATHS)('records the $name path', async ({ name, order, drive, expect: outcome }) => {
  const started = await saga.startOrder(order);
  await drive?.(saga, started);
  const result = await started.result();
  expect([result.status, result.failureReason].filter(Boolean).join('/')).toBe(outcome);
  const history = await decodedHistory(started.handle);
  const file = path.join(OUT_DIR, `${name}.${WORKFLOW_VERSION}.json`);
  await writeFile(file, JSON.stringify(JSON.parse(historyToJSON(history)), null, 1) + '\n');
});
