import type { Client } from '@temporalio/client';
import { insertOrderIfAbsent } from '../../store/orders';
import type { Pool } from '../../store/pool';
import { withTransaction } from '../../store/tx';
import { workflowIdFor, type OrderSagaInput } from '../../contracts/index';
import type { ApiConfig } from '../config';
import { problems } from '../problems';
import { recordResponse, type KeyRef } from '../../store/idempotency-keys';
import { priceList } from '../../store/products';
import type { CreateOrderBody, OrderAccepted } from '../schemas/orders';
import { buildSagaInput, findStartedSagaInput, startSaga } from './saga-start';
import { orderPath, temporalUiLink } from './view';

export interface AcceptOrder {
  body: CreateOrderBody;
  orderId: string;
  correlationId: string;
  /** The Idempotency-Key this request holds; its response is stored with the order. */
  idempotency?: { ref: KeyRef; resumed: boolean };
}

/**
 * Prices the order from the catalog, starts its saga, then writes it. Saga first: if the
 * process dies between the two, the saga's createOrder writes the very same row.
 *
 * A retry that took its Idempotency-Key over from a dead attempt (`resumed`) first looks
 * for the saga that attempt may have started: if there is one, its input (prices, total,
 * correlation id) is the order, whatever the catalog says now, because that saga charges
 * what its input says; the order row and the response must say the same.
 */
/** The answer, and whether the saga waits for approval (decided here, once, for metrics too). */
export interface AcceptedOrder {
  response: OrderAccepted;
  requiresApproval: boolean;
}

export async function acceptOrder(
  { pool, temporal, config }: { pool: Pool; temporal: Client; config: ApiConfig },
  { body, orderId, correlationId, idempotency }: AcceptOrder,
): Promise<AcceptedOrder> {
  const started = idempotency?.resumed ? await findStartedSagaInput(temporal, orderId) : undefined;
  let input: OrderSagaInput;
  if (started) {
    input = started;
  } else {
    const skus = body.items.map((item) => item.sku);
    const prices = await priceList(pool, skus);
    const unknown = skus.filter((sku) => !prices.has(sku));
    if (unknown.length > 0) throw problems.unknownSku(unknown);
    input = buildSagaInput(body, prices, { orderId, correlationId, config });
    await startSaga(temporal, config, input);
  }

  const workflowId = workflowIdFor(orderId);
  const response: OrderAccepted = {
    orderId,
    status: 'PENDING',
    workflowId,
    totalCents: input.totalCents,
    currency: input.currency,
    links: { self: orderPath(orderId), temporalUi: temporalUiLink(config, workflowId) },
  };
  return withTransaction(pool, async (tx) => {
    // Written from the saga's own input, so whichever of this and createOrder runs first
    // writes the same row.
    await insertOrderIfAbsent(tx, input);
    if (idempotency) await recordResponse(tx, idempotency.ref, 202, response);
    return { response, requiresApproval: input.requiresApproval };
  });
}
