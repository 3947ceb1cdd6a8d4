import { workflowIdFor, type OrderSagaInput } from '../../contracts/index';
import { KeyLostError, recordResponse, type HeldKey } from '../../store/idempotency-keys';
import { orderCreatedData, insertOrderIfAbsent, orderExists } from '../../store/orders';
import { appendEvent } from '../../store/outbox';
import type { Pool } from '../../store/pool';
import { priceList } from '../../store/products';
import { requestSagaStart } from '../../store/saga-starts';
import { withTransaction } from '../../store/tx';
import type { ApiConfig } from '../config';
import { problems } from '../problems';
import type { CreateOrderBody, OrderAccepted } from '../schemas/orders';
import { buildSagaInput } from './saga-start';
import type { SagaStarter } from './saga-starter';
import { orderPath, temporalUiLink } from './view';

/** How long an accepting request waits for its saga's start before answering anyway. */
export const START_WAIT_MS = 500;

export interface AcceptOrder {
  body: CreateOrderBody;
  orderId: string;
  correlationId: string;
  /** The Idempotency-Key this request holds; its response commits with the order. */
  idempotency?: HeldKey;
}

/** The answer, and whether the saga waits for approval (decided here, once, for metrics too). */
export interface AcceptedOrder {
  response: OrderAccepted;
  requiresApproval: boolean;
}

/**
 * Accepts an order in Postgres first: the order, its OrderCreated event, the Idempotency-Key's
 * response and the saga's start request commit in one transaction. Only then is the saga
 * started (idempotent by workflow id), without waiting long for Temporal: what this attempt
 * does not start, the starter does. So a 4xx or 5xx means nothing was written and no saga
 * will ever run, and a 202 comes back whatever Temporal's state.
 */
export async function acceptOrder(
  { pool, config, starter }: { pool: Pool; config: ApiConfig; starter: SagaStarter },
  { body, orderId, correlationId, idempotency }: AcceptOrder,
): Promise<AcceptedOrder> {
  const skus = body.items.map((item) => item.sku);
  const prices = await priceList(pool, skus);
  const unknown = skus.filter((sku) => !prices.has(sku));
  if (unknown.length > 0) throw problems.unknownSku(unknown);
  const input = buildSagaInput(body, prices, { orderId, correlationId, config });

  const workflowId = workflowIdFor(orderId);
  const response: OrderAccepted = {
    orderId,
    status: 'PENDING',
    workflowId,
    totalCents: input.totalCents,
    currency: input.currency,
    links: { self: orderPath(orderId), temporalUi: temporalUiLink(config, workflowId) },
  };
  await commitAcceptance(pool, input, response, idempotency, starter.graceMs);
  // Waits a moment for the start, so a client acting on the 202 at once (cancel, Web UI link)
  // normally finds the run; never longer, whatever Temporal's state: the starter has the rest.
  await starter.startSoon(input, START_WAIT_MS);
  return { response, requiresApproval: input.requiresApproval };
}

async function commitAcceptance(
  pool: Pool,
  input: OrderSagaInput,
  response: OrderAccepted,
  idempotency: HeldKey | undefined,
  graceMs: number,
): Promise<void> {
  try {
    await withTransaction(pool, async (tx) => {
      await insertOrderIfAbsent(tx, input);
      await appendEvent(tx, {
        orderId: input.orderId,
        type: 'OrderCreated',
        data: { ...orderCreatedData(input) },
      });
      await requestSagaStart(tx, input, graceMs);
      if (idempotency) await recordResponse(tx, idempotency, 202, response);
    });
  } catch (error) {
    if (error instanceof KeyLostError) throw problems.idempotencyKeyInUse();
    // A connection lost during COMMIT leaves its outcome unknown: if the order is there, it
    // was accepted (and its saga will start), so the answer must be 202, not a 5xx.
    if (await orderExists(pool, input.orderId).catch(() => false)) return;
    throw error;
  }
}
