/**
 * The order saga's contract: names, ids and shapes shared by the API, the workflow and
 * the activities. No runtime dependencies, so every side can import it.
 */

export const WORKFLOW_TYPE = 'orderSaga';
export const DEFAULT_TASK_QUEUE = 'orders';
/** Payment activities run on their own task queue (a bulkhead with its own slots and rate). */
export const paymentTaskQueueFor = (taskQueue: string): string => `${taskQueue}-payments`;
export const CURRENCY = 'USD';

export const workflowIdFor = (orderId: string): string => `order-${orderId}`;

/** Each step's idempotency key is decided by the workflow and passed to the activity. */
export const stepKey = (workflowId: string, step: string): string => `${workflowId}:${step}`;

export const ORDER_STATUSES = [
  'PENDING',
  'AWAITING_APPROVAL',
  'COMPENSATING',
  'REQUIRES_ATTENTION',
  'COMPLETED',
  'FAILED',
  'CANCELLED',
] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];
export const TERMINAL_STATUSES: readonly OrderStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];
export const isTerminal = (status: OrderStatus): boolean => TERMINAL_STATUSES.includes(status);

export const FAILURE_REASONS = [
  'insufficient_stock',
  'payment_declined',
  'shipping_unavailable',
  'approval_rejected',
  'approval_timeout',
  'step_timeout',
  'fraud_suspected',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export const STEP_NAMES = [
  'createOrder',
  'reserveInventory',
  'approval',
  'fraudScreening',
  'chargePayment',
  'createShipment',
  'completeOrder',
] as const;
export type StepName = (typeof STEP_NAMES)[number];

export const STEP_STATUSES = [
  'PENDING',
  'RUNNING',
  'COMPLETED',
  'FAILED',
  'COMPENSATING',
  'COMPENSATED',
  'SKIPPED',
] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

export const PAYMENT_STATUSES = ['NONE', 'CAPTURED', 'DECLINED', 'REFUNDED'] as const;
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number];
export const SHIPMENT_STATUSES = ['NONE', 'CREATED', 'CANCELLED'] as const;
export type ShipmentStatus = (typeof SHIPMENT_STATUSES)[number];

export const EVENT_TYPES = [
  'OrderCreated',
  'InventoryReserved',
  'InventoryReleased',
  'PaymentCaptured',
  'PaymentDeclined',
  'PaymentRefunded',
  'ShipmentCreated',
  'ShipmentCancelled',
  'OrderCompleted',
  'OrderFailed',
  'OrderCancelled',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];
export const STREAM_NAME = 'ORDERS';
export const SUBJECT_PREFIX = 'orders.events';
export const subjectFor = (type: EventType): string => `${SUBJECT_PREFIX}.${type}`;

export interface OrderLine {
  sku: string;
  quantity: number;
  unitPriceCents: number;
}

export interface ShippingAddress {
  name: string;
  line1: string;
  line2?: string;
  city: string;
  postalCode: string;
  country: string;
}

/** The saga's input, fixed when the API accepts the order (prices come from the catalog). */
export interface OrderSagaInput {
  orderId: string;
  customerId: string;
  items: OrderLine[];
  totalCents: number;
  currency: string;
  paymentToken: string;
  shippingAddress: ShippingAddress;
  correlationId: string;
  /** Decided by the API from APPROVAL_THRESHOLD_CENTS, so the history records it. */
  requiresApproval: boolean;
  /** Duration string such as '24h' (APPROVAL_TIMEOUT). */
  approvalTimeout: string;
}

export interface StepState {
  name: StepName;
  status: StepStatus;
  attempts: number;
}

export interface OrderSagaState {
  orderId: string;
  status: OrderStatus;
  failureReason: FailureReason | null;
  steps: StepState[];
}

export interface OrderSagaResult {
  orderId: string;
  status: Extract<OrderStatus, 'COMPLETED' | 'FAILED' | 'CANCELLED'>;
  failureReason: FailureReason | null;
}

/** What a forward step reports: business refusals are returned, not thrown. */
export type StepOutcome = { ok: true } | { ok: false; reason: FailureReason };

/**
 * What a step fenced off by its compensation reports to an attempt that comes too late
 * (store/ledger.ts fenceStep): it did not run. The saga has moved on and never reads it.
 */
export const STEP_ABANDONED: StepOutcome = { ok: false, reason: 'step_timeout' };

/** Workflow versioning: each id guards one change with patched() (README, "Changing the saga safely"). */
export const PATCHES = {
  /** v2: payment activities moved to the payments task queue. */
  paymentBulkhead: 'payment-bulkhead',
  /** v2: fraud screening between the approval gate and the charge. */
  fraudScreening: 'fraud-screening',
  /** v3: the short database steps run as local activities, inside the workflow task. */
  localDbSteps: 'local-db-steps',
  /**
   * v4: two workflow tasks per happy saga: the database steps (fraud screening included)
   * local, the charge and the shipment one activity on the payments queue.
   */
  twoTaskSaga: 'two-task-saga',
} as const;

export const QUERY_STATE = 'state';
export const UPDATE_APPROVE = 'approve';
export const UPDATE_REJECT = 'reject';
/** Sent by the API right before it requests cancellation, so the history says who cancelled. */
export const SIGNAL_CANCEL_REQUESTED = 'cancelRequested';

/** Who decided (approve, reject) or cancelled: the API caller's principal, never a token. */
export interface DecidedBy {
  by: string;
}

/** ApplicationFailure type strings (never class names). */
export const ErrorTypes = {
  NotAwaitingApproval: 'NotAwaitingApproval',
  TransientProviderError: 'TransientProviderError',
  ProviderUnavailable: 'ProviderUnavailable',
} as const;

/** Search attributes the saga keeps current (registered on the dev server at start). */
export const SEARCH_ATTRIBUTES = {
  OrderId: 'Keyword',
  CustomerId: 'Keyword',
  OrderStatus: 'Keyword',
  OrderTotalCents: 'Int',
} as const;
