import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { defaultPayloadConverter } from '@temporalio/common';
import pino from 'pino';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import { recordDecision } from '../../store/decisions';
import {
  SIGNAL_CANCEL_REQUESTED,
  UPDATE_APPROVE,
  UPDATE_REJECT,
  workflowIdFor,
} from '../../contracts/index';
import { writeApiKeysFile } from '../support/api-keys';
import { decodedHistory, TEST_ENCRYPTION_KEYS } from '../support/encryption';
import { startSagaHarness, type SagaHarness } from '../support/saga-harness';
import { stackEnv } from '../support/stack';
import { orderBody } from '../../tools/fixtures/order';

/**
 * Audited decisions (CONTRACT §2): who approved, rejected or cancelled an order is in the
 * workflow's history (the update's argument; a signal right before the cancellation) and in
 * Postgres, and GET /orders/:id shows it as `decisions`, oldest first.
 */
const KEYS = [
  {
    id: 'storefront',
    token: 'storefront-token-0123456789',
    scopes: ['orders:read' as const, 'orders:write' as const],
  },
  {
    id: 'approver',
    token: 'approver-token-0123456789',
    scopes: ['orders:read' as const, 'orders:approve' as const],
  },
];
const STATIC = 'static-token-0123456789';
const [storefront, approver] = KEYS.map((key) => ({ authorization: `Bearer ${key.token}` }));

let saga: SagaHarness;
let app: App;
let logs = '';

beforeAll(async () => {
  saga = await startSagaHarness();
  app = buildApp({
    pool: saga.pool,
    temporal: saga.client,
    config: loadApiConfig({
      DATABASE_URL: saga.databaseUrl,
      TEMPORAL_ADDRESS: stackEnv().temporalAddress,
      PAYLOAD_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      TEMPORAL_TASK_QUEUE: saga.taskQueue,
      APPROVAL_THRESHOLD_CENTS: '100000',
      API_KEYS_FILE: writeApiKeysFile(KEYS),
      API_TOKENS: STATIC,
    }),
    logger: pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          logs += chunk.toString();
          callback();
        },
      }),
    ),
  });
  await saga.putProduct('BIG', 150_000, 100);
});
afterAll(async () => {
  await app?.close();
  await saga?.close();
});

async function orderAwaitingApproval(): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: '/orders',
    headers: storefront,
    payload: orderBody({ sku: 'BIG', quantity: 1 }),
  });
  expect(response.statusCode).toBe(202);
  const { orderId } = response.json<{ orderId: string }>();
  await saga.waitForStatus(orderId, ['AWAITING_APPROVAL']);
  return orderId;
}

const decisionsOf = async (orderId: string) =>
  (await app.inject({ method: 'GET', url: `/orders/${orderId}`, headers: storefront })).json<{
    decisions: Array<{ action: string; by: string; at: string }>;
  }>().decisions;

/** The decoded history's updates and signals: [name, argument]. */
async function recordedInHistory(orderId: string): Promise<Array<[string, unknown]>> {
  const history = await decodedHistory(saga.client.workflow.getHandle(workflowIdFor(orderId)));
  const recorded: Array<[string, unknown]> = [];
  for (const event of history.events ?? []) {
    const update = event.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input;
    if (update)
      recorded.push([update.name!, defaultPayloadConverter.fromPayload(update.args!.payloads![0]!)]);
    const signal = event.workflowExecutionSignaledEventAttributes;
    if (signal)
      recorded.push([signal.signalName!, defaultPayloadConverter.fromPayload(signal.input!.payloads![0]!)]);
    if (event.workflowExecutionCancelRequestedEventAttributes) recorded.push(['cancel-requested', null]);
  }
  return recorded;
}

describe('decisions', () => {
  it('when an approver approves, then the history, the database and GET /orders/:id name the approver', async () => {
    const orderId = await orderAwaitingApproval();
    const before = Date.now();
    const approved = await app.inject({
      method: 'POST',
      url: `/orders/${orderId}/approve`,
      headers: approver,
    });
    expect(approved.statusCode).toBe(202);
    await saga.waitForStatus(orderId, ['COMPLETED']);

    const decisions = await decisionsOf(orderId);
    expect(decisions).toEqual([{ action: 'approve', by: 'approver', at: expect.any(String) }]);
    expect(Date.parse(decisions[0]!.at)).toBeGreaterThanOrEqual(before - 1_000);
    expect(await recordedInHistory(orderId)).toEqual([[UPDATE_APPROVE, { by: 'approver' }]]);
    expect(logs).toMatch(/"action":"approve","by":"approver"/);
    for (const key of KEYS) expect(logs).not.toContain(key.token);
  });

  it('when the static token rejects, then the decision is by "static"', async () => {
    const orderId = await orderAwaitingApproval();
    const rejected = await app.inject({
      method: 'POST',
      url: `/orders/${orderId}/reject`,
      headers: { authorization: `Bearer ${STATIC}` },
    });
    expect(rejected.statusCode).toBe(202);
    await saga.waitForStatus(orderId, ['FAILED']);
    expect(await decisionsOf(orderId)).toEqual([{ action: 'reject', by: 'static', at: expect.any(String) }]);
    expect(await recordedInHistory(orderId)).toEqual([[UPDATE_REJECT, { by: 'static' }]]);
    expect(logs).not.toContain(STATIC);
  });

  it('when a storefront cancels (the same request retried, then asked again), then each request is recorded once, oldest first, and the history says who before the cancellation', async () => {
    const orderId = await orderAwaitingApproval();
    const requestId = randomUUID();
    for (const headers of [
      { ...storefront, 'x-request-id': requestId },
      { ...storefront, 'x-request-id': requestId },
    ]) {
      expect(
        (await app.inject({ method: 'POST', url: `/orders/${orderId}/cancel`, headers })).statusCode,
      ).toBe(202);
    }
    const again = await app.inject({ method: 'POST', url: `/orders/${orderId}/cancel`, headers: approver });
    // The approver has no orders:write: refused, and not recorded.
    expect(again.statusCode).toBe(403);
    await saga.waitForStatus(orderId, ['CANCELLED']);

    const decisions = await decisionsOf(orderId);
    expect(decisions).toEqual([{ action: 'cancel', by: 'storefront', at: expect.any(String) }]);
    const recorded = await recordedInHistory(orderId);
    expect(recorded[0]).toEqual([SIGNAL_CANCEL_REQUESTED, { by: 'storefront' }]);
    expect(recorded.findIndex(([name]) => name === 'cancel-requested')).toBeGreaterThan(0);
  });

  it('when an order was never decided on, then decisions is empty; once several are recorded, they are listed oldest first', async () => {
    const orderId = await orderAwaitingApproval();
    expect(await decisionsOf(orderId)).toEqual([]);
    // Recorded one after the other (as two requests would be), bypassing Temporal.
    await recordDecision(saga.pool, { orderId, action: 'approve', by: 'approver', requestId: 'r-1' });
    await recordDecision(saga.pool, { orderId, action: 'cancel', by: 'storefront', requestId: 'r-2' });
    const decisions = await decisionsOf(orderId);
    expect(decisions.map(({ action, by }) => [action, by])).toEqual([
      ['approve', 'approver'],
      ['cancel', 'storefront'],
    ]);
    expect(Date.parse(decisions[0]!.at)).toBeLessThanOrEqual(Date.parse(decisions[1]!.at));
    expect(decisions[0]!.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('when an approve is refused (409), then nothing is recorded', async () => {
    const orderId = await orderAwaitingApproval();
    expect(
      (await app.inject({ method: 'POST', url: `/orders/${orderId}/approve`, headers: approver })).statusCode,
    ).toBe(202);
    await saga.waitForStatus(orderId, ['COMPLETED']);
    expect(
      (await app.inject({ method: 'POST', url: `/orders/${orderId}/reject`, headers: approver })).statusCode,
    ).toBe(409);
    expect((await decisionsOf(orderId)).map((d) => d.action)).toEqual(['approve']);
  });
});
