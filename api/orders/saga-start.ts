import { isGrpcServiceError, WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
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

/** gRPC status NOT_FOUND: no workflow has this id. */
const GRPC_NOT_FOUND = 5;

/** How long the API waits for Temporal to accept a start before answering 503. */
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
): Promise<void> {
  const workflowId = workflowIdFor(input.orderId);
  try {
    await temporal.connection.withDeadline(Date.now() + START_DEADLINE_MS, () =>
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

/**
 * The input of the saga already started for this order, or undefined when none was.
 * An Idempotency-Key retry that takes over from a dead attempt asks this first: that
 * attempt may have started the saga at prices since changed (or with a sku since removed),
 * and the saga, which charges its own input, is the truth the response and the order row
 * must show. Reads only the first history event, decoded with the client's converter
 * (payload codecs included, in reverse order of encoding).
 */
export async function findStartedSagaInput(
  temporal: Client,
  orderId: string,
): Promise<OrderSagaInput | undefined> {
  let payloads;
  try {
    const response = await temporal.connection.withDeadline(Date.now() + START_DEADLINE_MS, () =>
      temporal.workflowService.getWorkflowExecutionHistory({
        namespace: temporal.options.namespace,
        execution: { workflowId: workflowIdFor(orderId) },
        maximumPageSize: 1,
      }),
    );
    payloads = response.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
  } catch (error) {
    if (isGrpcServiceError(error) && (error.code as number) === GRPC_NOT_FOUND) return undefined;
    throw error;
  }
  if (!payloads || payloads.length === 0) return undefined;
  const { payloadConverter, payloadCodecs } = temporal.options.loadedDataConverter;
  for (const codec of [...payloadCodecs].reverse()) payloads = await codec.decode(payloads);
  return payloadConverter.fromPayload<OrderSagaInput>(payloads[0]!);
}
