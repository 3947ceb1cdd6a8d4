import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { NativeConnection, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import type { Pool } from '../../store/pool';
import { withTransaction } from '../../store/tx';
import { insertOrderIfAbsent } from '../../store/orders';
import {
  WORKFLOW_TYPE,
  workflowIdFor,
  type OrderSagaInput,
  type OrderSagaResult,
  type OrderStatus,
} from '../../contracts/index';
import { startSaga } from '../../api/orders/saga-start';
import { createSagaWorkers } from '../../worker/create-worker';
import { createOutboxRelay } from '../../relay/relay';
import { ensureOrdersStream, type NatsConnection } from '../../relay/stream';
import { createLogger } from '../../lib/logger';
import { eventually } from '../../tools/fixtures/eventually';
import { sagaInput } from '../../tools/fixtures/order';
import { testDataConverter, testEncryptionKeys } from './encryption';
import { createTestDatabase, stackEnv, uniqueTaskQueue } from './stack';
import { readStream } from './stream';

/**
 * A real saga worker on a unique task queue over a fresh database: what the integration
 * tests of the saga need. Orders are started the way the API starts them.
 */
export interface SagaHarness {
  pool: Pool;
  databaseUrl: string;
  client: Client;
  taskQueue: string;
  putProduct(sku: string, priceCents: number, available: number): Promise<void>;
  startOrder(options?: OrderOptions): Promise<StartedOrder>;
  waitForStatus(orderId: string, statuses: OrderStatus[], timeoutMs?: number): Promise<OrderStatus>;
  /**
   * The order's events as published on stream ORDERS, once every committed event of the
   * order is published; throws unless they match the outbox exactly (same events, in
   * sequence order 1..n, Nats-Msg-Id = outbox id, subject orders.events.<Type>).
   */
  eventTypes(orderId: string): Promise<string[]>;
  stock(sku: string): Promise<{ available: number; reserved: number }>;
  close(): Promise<void>;
}

export interface OrderOptions {
  customerId?: string;
  paymentToken?: string;
  country?: string;
  items?: Array<{ sku: string; quantity: number }>;
  requiresApproval?: boolean;
  approvalTimeout?: string;
  /**
   * Runs before the saga starts, with its input (e.g. to leave effects under its step keys,
   * as a run whose workflow task was lost would have).
   */
  beforeStart?: (input: OrderSagaInput) => Promise<void>;
  /** Delays the saga's first workflow task (Temporal's start delay), e.g. to cancel before it. */
  startDelay?: Duration;
}

export interface StartedOrder {
  orderId: string;
  workflowId: string;
  sku: string;
  handle: WorkflowHandle;
  result(): Promise<OrderSagaResult>;
}

let runtimeInstalled = false;

/** A customer the harness worker's fraud screening refuses (FRAUD_DENY_LIST). */
export const DENIED_CUSTOMER = 'c-fraudster';

export async function startSagaHarness(options: { slowPaymentMs?: number } = {}): Promise<SagaHarness> {
  const env = stackEnv();
  if (!runtimeInstalled) {
    // Keep the Rust core quiet in test output; Runtime can be installed once per process.
    Runtime.install({
      telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
    });
    runtimeInstalled = true;
  }
  const db = await createTestDatabase();
  const taskQueue = uniqueTaskQueue('saga');
  const nativeConnection = await NativeConnection.connect({ address: env.temporalAddress });
  const worker = await createSagaWorkers({
    connection: nativeConnection,
    namespace: 'default',
    taskQueue,
    pool: db.pool,
    workflowBundlePath: env.workflowBundle,
    slowPaymentMs: options.slowPaymentMs ?? 4_000,
    fraudDenyList: new Set([DENIED_CUSTOMER]),
    encryptionKeys: testEncryptionKeys,
  });
  const running = worker.run();
  const startedAt = new Date(Date.now() - 1_000);
  const nats = (await connect({ servers: env.natsUrl })) as NatsConnection;
  await ensureOrdersStream(await jetstreamManager(nats));
  const relay = createOutboxRelay({
    pool: db.pool,
    nats,
    logger: createLogger('relay', 'silent'),
    options: { pollIntervalMs: 100 },
    registry: new Registry(),
  });
  await relay.start();
  const connection = await Connection.connect({ address: env.temporalAddress });
  const client = new Client({ connection, namespace: 'default', dataConverter: testDataConverter });

  const harness: SagaHarness = {
    pool: db.pool,
    databaseUrl: db.url,
    client,
    taskQueue,

    async putProduct(sku, priceCents, available) {
      await db.pool.query(
        `INSERT INTO products (sku, name, price_cents, available) VALUES ($1, $1, $2, $3)
         ON CONFLICT (sku) DO UPDATE SET price_cents = $2, available = $3`,
        [sku, priceCents, available],
      );
    },

    async startOrder(order = {}) {
      const sku = `SKU-${randomUUID().slice(0, 8)}`;
      const items = order.items ?? [{ sku, quantity: 2 }];
      if (!order.items) await harness.putProduct(sku, 1299, 10);
      const { rows } = await db.pool.query<{ sku: string; price_cents: number }>(
        'SELECT sku, price_cents FROM products WHERE sku = ANY($1)',
        [items.map((i) => i.sku)],
      );
      const price = new Map(rows.map((r) => [r.sku, r.price_cents]));
      const lines = items.map((i) => ({ ...i, unitPriceCents: price.get(i.sku)! }));
      const input = sagaInput({
        customerId: order.customerId ?? 'c-test',
        items: lines,
        paymentToken: order.paymentToken,
        country: order.country,
        requiresApproval: order.requiresApproval,
        approvalTimeout: order.approvalTimeout,
      });
      const { orderId } = input;
      const workflowId = workflowIdFor(orderId);
      const writeOrder = () => withTransaction(db.pool, (tx) => insertOrderIfAbsent(tx, input));
      if (order.beforeStart) {
        await writeOrder();
        await order.beforeStart(input);
      }
      if (order.startDelay) {
        await client.workflow.start(WORKFLOW_TYPE, {
          taskQueue,
          workflowId,
          args: [input],
          startDelay: order.startDelay,
        });
      } else {
        // Started exactly as the API starts it (search attributes, summary, conflict policy).
        await startSaga(client, { taskQueue }, input);
      }
      const handle = client.workflow.getHandle(workflowId);
      await writeOrder(); // after the start, as the API does (a no-op if written above)
      return {
        orderId,
        workflowId,
        sku: items[0]!.sku,
        handle,
        result: () => handle.result() as Promise<OrderSagaResult>,
      };
    },

    async waitForStatus(orderId, statuses, timeoutMs = 30_000) {
      let last: OrderStatus | undefined;
      return eventually(
        `order ${orderId} ${statuses.join('|')}`,
        async () => {
          const { rows } = await db.pool.query<{ status: OrderStatus }>(
            'SELECT status FROM orders WHERE id = $1',
            [orderId],
          );
          last = rows[0]?.status;
          return last && statuses.includes(last) ? last : undefined;
        },
        { timeoutMs, detail: () => `last status: ${last ?? 'none'}` },
      );
    },

    async eventTypes(orderId) {
      const { rows: outbox } = await db.pool.query<{ id: string; type: string; sequence: number }>(
        'SELECT id, type, sequence FROM outbox WHERE aggregate_id = $1 ORDER BY sequence',
        [orderId],
      );
      await eventually(
        `every event of ${orderId} published`,
        async () => {
          const { rows } = await db.pool.query<{ pending: number }>(
            'SELECT count(*)::int AS pending FROM outbox WHERE aggregate_id = $1 AND published_at IS NULL',
            [orderId],
          );
          return rows[0]!.pending === 0;
        },
        10_000,
      );
      const streamed = await readStream(nats, startedAt, [orderId]);
      const seen = streamed.map((e) => ({ id: e.msgId, type: e.body.type, sequence: e.body.sequence }));
      const expected = outbox.map((row, i) => ({ id: row.id, type: row.type, sequence: i + 1 }));
      if (JSON.stringify(seen) !== JSON.stringify(expected)) {
        throw new Error(
          `stream differs from outbox:\n  stream ${JSON.stringify(seen)}\n  outbox ${JSON.stringify(expected)}`,
        );
      }
      for (const event of streamed) {
        if (event.subject !== `orders.events.${event.body.type}` || event.body.id !== event.msgId) {
          throw new Error(`bad message ${JSON.stringify(event)}`);
        }
      }
      return streamed.map((e) => e.body.type);
    },

    async stock(sku) {
      const { rows } = await db.pool.query<{ available: number; reserved: number }>(
        'SELECT available, reserved FROM products WHERE sku = $1',
        [sku],
      );
      return rows[0]!;
    },

    async close() {
      worker.shutdown();
      await running;
      await relay.stop();
      await nats.drain();
      await nativeConnection.close();
      await connection.close();
      await db.drop();
    },
  };
  return harness;
}
