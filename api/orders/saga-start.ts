import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import {
  CURRENCY,
  WORKFLOW_TYPE,
  workflowIdFor,
  type OrderLine,
  type OrderSagaInput,
} from '../../contracts/index';
import {
  CustomerIdKey,
  OrderIdKey,
  OrderStatusKey,
  OrderTotalCentsKey,
} from '../../workflows/search-attributes';
import type { ApiConfig } from '../config';
import type { CreateOrderBody } from '../schemas/orders';

/** How long a start may wait for Temporal. */
export const START_DEADLINE_MS = 5_000;

/** The saga's input: lines priced from the catalog (`prices` must hold every sku). */
export function buildSagaInput(
  body: CreateOrderBody,
  prices: ReadonlyMap<string, number>,
  context: { orderId: string; correlationId: string; config: ApiConfig },
): OrderSagaInput {
  const items: OrderLine[] = body.items.map(({ sku, quantity }) => ({
    sku,
    quantity,
    unitPriceCents: prices.get(sku)!,
  }));
  const totalCents = items.reduce((sum, line) => sum + line.quantity * line.unitPriceCents, 0);
  return {
    orderId: context.orderId,
    customerId: body.customerId,
    items,
    totalCents,
    currency: CURRENCY,
    paymentToken: body.paymentToken,
    shippingAddress: body.shippingAddress,
    correlationId: context.correlationId,
    requiresApproval: totalCents >= context.config.approvalThresholdCents,
    approvalTimeout: context.config.approvalTimeout,
  };
}

const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: CURRENCY });
export const formatCents = (cents: number): string => usd.format(cents / 100);

/** One line for the Web UI's run list, e.g. "Order 3 items · $25.98 · customer c-42". */
export function sagaSummary(input: OrderSagaInput): string {
  const units = input.items.reduce((sum, line) => sum + line.quantity, 0);
  return `Order ${units} ${units === 1 ? 'item' : 'items'} · ${formatCents(input.totalCents)} · customer ${input.customerId}`;
}

// Skus are client text: keep them from breaking out of a markdown table cell.
const cell = (text: string): string => text.replace(/[\\|`*_[\]<>]/g, (char) => `\\${char}`);

/** Markdown shown on the run's page: the priced lines and what the saga will do. */
export function sagaDetails(input: OrderSagaInput): string {
  const rows = input.items.map(
    (line) =>
      `| ${cell(line.sku)} | ${line.quantity} | ${formatCents(line.unitPriceCents)} | ${formatCents(line.quantity * line.unitPriceCents)} |`,
  );
  return [
    `**Order** \`${input.orderId}\` for customer \`${cell(input.customerId)}\``,
    '',
    '| sku | qty | unit | line total |',
    '| --- | ---: | ---: | ---: |',
    ...rows,
    '',
    `**Total ${formatCents(input.totalCents)}** · ships to ${input.shippingAddress.country}` +
      (input.requiresApproval ? ` · needs approval within ${input.approvalTimeout}` : ''),
    '',
    `Correlation id \`${cell(input.correlationId)}\``,
  ].join('\n');
}

/**
 * Starts the order's saga. The workflow id comes from the order id, so starting twice
 * (a retried request that reuses its order id) reaches the same run: USE_EXISTING while it
 * runs, REJECT_DUPLICATE once it has closed (a second saga for one order is never right).
 */
export async function startSaga(
  temporal: Client,
  config: Pick<ApiConfig, 'taskQueue'>,
  input: OrderSagaInput,
  deadlineMs = START_DEADLINE_MS,
): Promise<void> {
  const workflowId = workflowIdFor(input.orderId);
  try {
    await temporal.connection.withDeadline(Date.now() + deadlineMs, () =>
      temporal.workflow.start(WORKFLOW_TYPE, {
        taskQueue: config.taskQueue,
        workflowId,
        args: [input],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [
          { key: OrderIdKey, value: input.orderId },
          { key: CustomerIdKey, value: input.customerId },
          { key: OrderStatusKey, value: 'PENDING' },
          { key: OrderTotalCentsKey, value: input.totalCents },
        ],
        staticSummary: sagaSummary(input),
        staticDetails: sagaDetails(input),
      }),
    );
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return;
    throw error;
  }
}
