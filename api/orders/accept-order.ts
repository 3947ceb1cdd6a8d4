import type { Client } from '@temporalio/client';
import { insertOrderIfAbsent } from '../../db/orders';
import type { Pool } from '../../db/pool';
import { withTransaction } from '../../db/tx';
import { workflowIdFor } from '../../workflows/contracts';
import type { ApiConfig } from '../config';
import { problems } from '../problems';
import { recordResponse, type KeyRef } from '../queries/idempotency-keys';
import { priceList } from '../queries/products';
import type { CreateOrderBody, OrderAccepted } from '../schemas/orders';
import { buildSagaInput, startSaga } from './saga-start';
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
 */
export async function acceptOrder(
  { pool, temporal, config }: { pool: Pool; temporal: Client; config: ApiConfig },
  { body, orderId, correlationId, idempotency }: AcceptOrder,
): Promise<OrderAccepted> {
  const skus = body.items.map((item) => item.sku);
  const prices = await priceList(pool, skus);
  const unknown = skus.filter((sku) => !prices.has(sku));
  if (unknown.length > 0) throw problems.unknownSku(unknown);

  const input = buildSagaInput(body, prices, { orderId, correlationId, config });
  await startSaga(temporal, config, input);

  const workflowId = workflowIdFor(orderId);
  const accepted = (totalCents: number): OrderAccepted => ({
    orderId,
    status: 'PENDING',
    workflowId,
    totalCents,
    currency: input.currency,
    links: { self: orderPath(orderId), temporalUi: temporalUiLink(config, workflowId) },
  });
  return withTransaction(pool, async (tx) => {
    const created = await insertOrderIfAbsent(tx, input);
    let response = accepted(input.totalCents);
    if (!created && idempotency?.resumed) {
      // A dead earlier attempt got this order written, perhaps at prices since changed:
      // the stored order (which its saga charges) is the truth.
      const { rows } = await tx.query<{ total_cents: number }>(
        'SELECT total_cents FROM orders WHERE id = $1',
        [orderId],
      );
      response = accepted(rows[0]?.total_cents ?? input.totalCents);
    }
    if (idempotency) await recordResponse(tx, idempotency.ref, 202, response);
    return response;
  });
}
