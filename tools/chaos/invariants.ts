/**
 * The service's promise — nothing acknowledged is lost, nothing is applied twice — as
 * checks over the database and stream ORDERS, run once the sagas are at rest.
 *
 *   gatherSnapshot()  SQL and one read of the stream → a plain Snapshot (I/O)
 *   evaluate()        Snapshot → Violation[] (pure; test/unit/invariants.test.ts)
 *   checkInvariants() waits until the orders are at rest, then both.
 *
 * The valid event sequences are derived from rules rather than listed (CONTRACT §3, §5):
 * an order's events start with OrderCreated and end with exactly one terminal event; a
 * resource is undone only after it was acquired; nothing goes forward once undoing began;
 * undoing runs in reverse; a failed or cancelled order undoes everything it acquired; a
 * completed one undoes nothing. No event type repeats within one order.
 */
import { answerWithin, eventually } from '../fixtures/eventually';
import { DeliverPolicy, JetStreamError, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { MsgHdrs, NatsConnection } from '@nats-io/nats-core';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../store/pool';
import { isNatsUnavailable } from '../../relay/publisher';
import {
  EVENT_TYPES,
  STEP_ABANDONED,
  STREAM_NAME,
  SUBJECT_PREFIX,
  TERMINAL_STATUSES,
  WORKFLOW_TYPE,
  stepKey,
  workflowIdFor,
} from '../../contracts/index';
import { CustomerIdKey } from '../../workflows/search-attributes';

// ---------------------------------------------------------------------------------------
// Shapes

export type InvariantName =
  | 'acknowledged' // every order the API accepted exists
  | 'accepted' // no saga runs for an order the API did not answer 202 for
  | 'terminal' // every saga ended COMPLETED, FAILED or CANCELLED
  | 'stock' // units conserved per sku, nothing held at rest, never negative
  | 'money' // captured − refunded = totals of COMPLETED orders (our rows and the gateway's)
  | 'once' // one payment/shipment row per order, one ledger row per step, no repeated event type
  | 'events' // each order's event sequence is a valid path and agrees with its row
  | 'stream'; // every committed outbox event on stream ORDERS once, in sequence order

export interface Violation {
  invariant: InvariantName;
  /** What it is about: an order id, a sku, or `*` for a total. */
  subject: string;
  detail: string;
}

export interface OrderRow {
  id: string;
  status: string;
  failureReason: string | null;
  totalCents: number;
  items: Array<{ sku: string; quantity: number }>;
}
export interface ProductRow {
  sku: string;
  available: number;
  reserved: number;
}
export interface ReservationRow {
  orderId: string;
  sku: string;
  quantity: number;
  status: string;
}
export interface PaymentRow {
  orderId: string;
  status: string;
  amountCents: number;
}
export interface ShipmentRow {
  orderId: string;
  status: string;
}
export interface LedgerRow {
  idempotencyKey: string;
  workflowId: string;
  step: string;
  /** The step's transaction committed without a result (never at rest). */
  resultMissing: boolean;
  /** False for a step that was fenced before it ran (its key holds the abandoned outcome). */
  ran: boolean;
}
/** The simulated gateway's own records (table simulated_provider_requests), per order. */
export interface GatewayRow {
  orderId: string;
  /** The stored answer to the charge: 'captured', 'declined', or null (no answer yet). */
  charge: string | null;
  /** The stored answer to the refund: 'refunded', 'nothing_to_refund', or null. */
  refund: string | null;
}
export interface OutboxRow {
  id: string;
  orderId: string;
  sequence: number;
  type: string;
  published: boolean;
  parked: boolean;
}
export interface StreamedMessage {
  /** Position in the stream. */
  streamSequence: number;
  subject: string;
  msgId: string | undefined;
  body: { id?: unknown; type?: unknown; aggregateId?: unknown; sequence?: unknown };
}

export interface Snapshot {
  /** Order ids the API answered 202 for: each must exist. */
  acknowledged: readonly string[];
  orders: readonly OrderRow[];
  /** Initial `available` per sku, for the skus whose stock is checked. */
  initialStock: Readonly<Record<string, number>>;
  products: readonly ProductRow[];
  reservations: readonly ReservationRow[];
  payments: readonly PaymentRow[];
  shipments: readonly ShipmentRow[];
  ledger: readonly LedgerRow[];
  /** Undefined when there is no simulated gateway table (a real provider). */
  gateway: readonly GatewayRow[] | undefined;
  outbox: readonly OutboxRow[];
  /** Messages of the orders in scope, in stream order. */
  stream: readonly StreamedMessage[];
  /** Order ids of the saga runs Temporal has for the drill's customers (when it was asked). */
  sagas?: readonly string[];
}

const TERMINAL = new Set<string>(TERMINAL_STATUSES);
const TERMINAL_EVENTS = ['OrderCompleted', 'OrderFailed', 'OrderCancelled'] as const;
const TERMINAL_EVENT_OF: Record<string, string> = {
  COMPLETED: 'OrderCompleted',
  FAILED: 'OrderFailed',
  CANCELLED: 'OrderCancelled',
};
const KNOWN_EVENTS = new Set<string>(EVENT_TYPES);

const groupBy = <T>(rows: readonly T[], key: (row: T) => string): Map<string, T[]> => {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const k = key(row);
    const group = groups.get(k);
    if (group) group.push(row);
    else groups.set(k, [row]);
  }
  return groups;
};

// ---------------------------------------------------------------------------------------
// Event sequences

/** A step's event and the event that must come before it. */
const NEEDS_EARLIER: ReadonlyArray<readonly [string, string]> = [
  ['InventoryReserved', 'OrderCreated'],
  ['InventoryReleased', 'InventoryReserved'],
  ['PaymentCaptured', 'InventoryReserved'],
  ['PaymentDeclined', 'InventoryReserved'],
  ['PaymentRefunded', 'PaymentCaptured'],
  ['ShipmentCreated', 'PaymentCaptured'],
  ['ShipmentCancelled', 'ShipmentCreated'],
  ['OrderCompleted', 'ShipmentCreated'],
];
const FORWARD = ['InventoryReserved', 'PaymentCaptured', 'PaymentDeclined', 'ShipmentCreated'];
/** Undo events, in the order an unwind emits them (reverse of the steps). */
const UNDO_ORDER = ['ShipmentCancelled', 'PaymentRefunded', 'InventoryReleased'];
/** What a failed or cancelled order must have undone. */
const MUST_UNDO: ReadonlyArray<readonly [string, string]> = [
  ['InventoryReserved', 'InventoryReleased'],
  ['PaymentCaptured', 'PaymentRefunded'],
  ['ShipmentCreated', 'ShipmentCancelled'],
];

/** Why an order's complete event sequence is not a valid saga path; empty when it is. */
export function eventSequenceProblems(types: readonly string[]): string[] {
  const problems: string[] = [];
  if (types.length === 0) return ['no events'];
  const first = (type: string): number => types.indexOf(type);
  const has = (type: string): boolean => types.includes(type);

  for (const type of new Set(types)) {
    if (!KNOWN_EVENTS.has(type)) problems.push(`unknown event type ${type}`);
    const count = types.filter((t) => t === type).length;
    if (count > 1) problems.push(`${type} appears ${count} times`);
  }
  if (types[0] !== 'OrderCreated') problems.push(`starts with ${types[0]}, not OrderCreated`);

  const terminals = types.filter((t) => (TERMINAL_EVENTS as readonly string[]).includes(t));
  const last = types[types.length - 1]!;
  if (terminals.length !== 1) {
    problems.push(`has ${terminals.length} terminal events (${terminals.join(', ') || 'none'}), not one`);
  } else if (!(TERMINAL_EVENTS as readonly string[]).includes(last)) {
    problems.push(`${terminals[0]} is not the last event (${last} follows)`);
  }

  for (const [event, earlier] of NEEDS_EARLIER) {
    if (has(event) && !(has(earlier) && first(earlier) < first(event))) {
      problems.push(`${event} without an earlier ${earlier}`);
    }
  }
  if (has('PaymentCaptured') && has('PaymentDeclined'))
    problems.push('both PaymentCaptured and PaymentDeclined');

  const undoStarts = Math.min(...UNDO_ORDER.filter(has).map(first));
  for (const event of FORWARD) {
    if (has(event) && first(event) > undoStarts) problems.push(`${event} after compensation began`);
  }
  const undone = UNDO_ORDER.filter(has);
  for (let i = 1; i < undone.length; i++) {
    if (first(undone[i - 1]!) > first(undone[i]!)) {
      problems.push(`${undone[i]} before ${undone[i - 1]} (compensations run in reverse)`);
    }
  }

  if (last === 'OrderCompleted') {
    for (const event of [...UNDO_ORDER, 'PaymentDeclined']) {
      if (has(event)) problems.push(`completed order has ${event}`);
    }
  }
  if (last === 'OrderFailed' || last === 'OrderCancelled') {
    for (const [done, undo] of MUST_UNDO) {
      if (has(done) && !has(undo)) problems.push(`${last} but ${done} was never undone (no ${undo})`);
    }
  }
  return problems;
}

/** Whether the row's status and failure reason tell the same story as its events. */
export function orderAgreementProblems(order: OrderRow, types: readonly string[]): string[] {
  const problems: string[] = [];
  const expected = TERMINAL_EVENT_OF[order.status];
  const last = types[types.length - 1];
  if (expected !== undefined && last !== expected) {
    problems.push(`status ${order.status} but the last event is ${last ?? 'none'}`);
  }
  if (order.status === 'FAILED' && order.failureReason === null)
    problems.push('FAILED without a failure reason');
  if (order.status !== 'FAILED' && order.failureReason !== null) {
    problems.push(`${order.status} with failure reason ${order.failureReason}`);
  }
  const has = (type: string): boolean => types.includes(type);
  const reasonNeeds: Record<string, { present?: string[]; absent?: string[] }> = {
    insufficient_stock: { absent: ['InventoryReserved'] },
    payment_declined: { present: ['PaymentDeclined'] },
    shipping_unavailable: { present: ['PaymentCaptured'], absent: ['ShipmentCreated'] },
    approval_rejected: { present: ['InventoryReserved'], absent: ['PaymentCaptured', 'PaymentDeclined'] },
    approval_timeout: { present: ['InventoryReserved'], absent: ['PaymentCaptured', 'PaymentDeclined'] },
    fraud_suspected: { present: ['InventoryReserved'], absent: ['PaymentCaptured', 'PaymentDeclined'] },
  };
  const rule = order.failureReason === null ? undefined : reasonNeeds[order.failureReason];
  for (const type of rule?.present ?? []) {
    if (!has(type)) problems.push(`failure reason ${order.failureReason} without ${type}`);
  }
  for (const type of rule?.absent ?? []) {
    if (has(type)) problems.push(`failure reason ${order.failureReason} yet ${type}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------
// Outbox against the stream

/**
 * One order's committed outbox rows against what stream ORDERS holds for it: each row
 * published (not parked), on the stream exactly once under Nats-Msg-Id = its id, with the
 * same type, subject and sequence, in sequence order; nothing on the stream that is not
 * a committed row.
 */
export function streamProblems(outbox: readonly OutboxRow[], streamed: readonly StreamedMessage[]): string[] {
  const problems: string[] = [];
  const rows = [...outbox].sort((a, b) => a.sequence - b.sequence);
  rows.forEach((row, index) => {
    if (row.sequence !== index + 1)
      problems.push(`outbox sequence ${row.sequence} where ${index + 1} was due`);
    if (row.parked) problems.push(`outbox event ${row.sequence} ${row.type} is parked`);
    else if (!row.published) problems.push(`outbox event ${row.sequence} ${row.type} is not published`);
  });
  const byId = new Map(rows.map((row) => [row.id, row]));
  const seen = new Map<string, number>();
  let lastSequence = 0;
  for (const message of streamed) {
    const id = message.msgId;
    if (id === undefined) {
      problems.push(`stream message ${message.streamSequence} has no Nats-Msg-Id`);
      continue;
    }
    seen.set(id, (seen.get(id) ?? 0) + 1);
    const row = byId.get(id);
    if (!row) {
      problems.push(
        `stream message ${message.streamSequence} (${String(message.body.type)}) is no committed outbox event`,
      );
      continue;
    }
    if (message.body.id !== id)
      problems.push(`stream message ${message.streamSequence}: body id differs from Nats-Msg-Id`);
    if (message.body.type !== row.type)
      problems.push(
        `stream message ${message.streamSequence}: type ${String(message.body.type)}, outbox says ${row.type}`,
      );
    if (message.subject !== `${SUBJECT_PREFIX}.${row.type}`)
      problems.push(`stream message ${message.streamSequence}: subject ${message.subject}`);
    if (message.body.sequence !== row.sequence) {
      problems.push(
        `stream message ${message.streamSequence}: sequence ${String(message.body.sequence)}, outbox says ${row.sequence}`,
      );
    }
    if (row.sequence <= lastSequence) {
      problems.push(`event ${row.sequence} ${row.type} reached the stream after event ${lastSequence}`);
    }
    lastSequence = Math.max(lastSequence, row.sequence);
  }
  for (const row of rows) {
    const count = seen.get(row.id) ?? 0;
    if (count === 0 && row.published)
      problems.push(`event ${row.sequence} ${row.type} is marked published but not on the stream`);
    if (count > 1) problems.push(`event ${row.sequence} ${row.type} is on the stream ${count} times`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------
// The whole snapshot

export function evaluate(snapshot: Snapshot): Violation[] {
  const violations: Violation[] = [];
  const add = (invariant: InvariantName, subject: string, detail: string): void => {
    violations.push({ invariant, subject, detail });
  };
  const ordersById = new Map(snapshot.orders.map((order) => [order.id, order]));

  for (const id of snapshot.acknowledged) {
    if (!ordersById.has(id)) add('acknowledged', id, 'accepted with 202 but no order row exists');
  }
  const acknowledged = new Set(snapshot.acknowledged);
  for (const id of snapshot.sagas ?? []) {
    if (!acknowledged.has(id)) add('accepted', id, 'a saga runs for an order the API never answered 202 for');
  }
  const atRest = snapshot.orders.filter((order) => TERMINAL.has(order.status));
  for (const order of snapshot.orders) {
    if (!TERMINAL.has(order.status)) add('terminal', order.id, `still ${order.status}`);
  }

  checkStock(snapshot, add);
  checkMoney(snapshot, atRest, add);
  checkOnce(snapshot, add);

  const outboxByOrder = groupBy(snapshot.outbox, (row) => row.orderId);
  const streamByOrder = groupBy(snapshot.stream, (message) =>
    typeof message.body.aggregateId === 'string' ? message.body.aggregateId : '?',
  );
  for (const order of atRest) {
    const rows = [...(outboxByOrder.get(order.id) ?? [])].sort((a, b) => a.sequence - b.sequence);
    const types = rows.map((row) => row.type);
    for (const problem of [...eventSequenceProblems(types), ...orderAgreementProblems(order, types)]) {
      add('events', order.id, `${problem} [${types.join(', ')}]`);
    }
    for (const problem of streamProblems(rows, streamByOrder.get(order.id) ?? []))
      add('stream', order.id, problem);
  }
  for (const aggregateId of streamByOrder.keys()) {
    if (!ordersById.has(aggregateId))
      add('stream', aggregateId, 'events on the stream for an order with no row');
  }
  return violations;
}

type Add = (invariant: InvariantName, subject: string, detail: string) => void;

function checkStock(snapshot: Snapshot, add: Add): void {
  const reservationsBySku = groupBy(snapshot.reservations, (row) => row.sku);
  const ordersById = new Map(snapshot.orders.map((order) => [order.id, order]));
  const allAtRest = snapshot.orders.every((order) => TERMINAL.has(order.status));
  for (const product of snapshot.products) {
    if (product.available < 0) add('stock', product.sku, `available is ${product.available}`);
    if (product.reserved < 0) add('stock', product.sku, `reserved is ${product.reserved}`);
    const held = (reservationsBySku.get(product.sku) ?? [])
      .filter((row) => row.status === 'RESERVED')
      .reduce((sum, row) => sum + row.quantity, 0);
    if (held !== product.reserved) {
      add('stock', product.sku, `reserved is ${product.reserved} but RESERVED reservations hold ${held}`);
    }
    if (allAtRest && product.reserved !== 0)
      add('stock', product.sku, `reserved is ${product.reserved} at rest`);
    const initial = snapshot.initialStock[product.sku];
    if (initial === undefined) continue;
    const sold = snapshot.orders
      .filter((order) => order.status === 'COMPLETED')
      .flatMap((order) => order.items)
      .filter((item) => item.sku === product.sku)
      .reduce((sum, item) => sum + item.quantity, 0);
    if (initial - sold !== product.available + product.reserved) {
      add(
        'stock',
        product.sku,
        `initial ${initial} − completed ${sold} = ${initial - sold}, but available ${product.available} + reserved ${product.reserved} = ${product.available + product.reserved}`,
      );
    }
  }
  for (const sku of Object.keys(snapshot.initialStock)) {
    if (!snapshot.products.some((product) => product.sku === sku)) add('stock', sku, 'product row missing');
  }
  // Each order's reservations match how it ended.
  for (const [orderId, rows] of groupBy(snapshot.reservations, (row) => row.orderId)) {
    const order = ordersById.get(orderId);
    if (!order || !TERMINAL.has(order.status)) continue;
    for (const row of rows) {
      const expected = order.status === 'COMPLETED' ? 'CONSUMED' : 'RELEASED';
      if (row.status !== expected) {
        add(
          'stock',
          orderId,
          `${order.status} order's reservation of ${row.sku} is ${row.status}, not ${expected}`,
        );
      }
      const line = order.items.find((item) => item.sku === row.sku);
      if (line?.quantity !== row.quantity) {
        add('stock', orderId, `reservation of ${row.quantity} × ${row.sku} does not match the order line`);
      }
    }
    if (order.status === 'COMPLETED' && rows.length !== order.items.length) {
      add('stock', orderId, `COMPLETED with ${rows.length} reservations for ${order.items.length} lines`);
    }
  }
}

function checkMoney(snapshot: Snapshot, atRest: readonly OrderRow[], add: Add): void {
  const payments = groupBy(snapshot.payments, (row) => row.orderId);
  const shipments = groupBy(snapshot.shipments, (row) => row.orderId);
  let captured = 0;
  let refunded = 0;
  let completedTotal = 0;
  for (const order of snapshot.orders) {
    const payment = payments.get(order.id)?.[0];
    if (payment && (payment.status === 'CAPTURED' || payment.status === 'REFUNDED'))
      captured += payment.amountCents;
    if (payment?.status === 'REFUNDED') refunded += payment.amountCents;
    if (order.status === 'COMPLETED') completedTotal += order.totalCents;
  }
  const allAtRest = atRest.length === snapshot.orders.length;
  if (allAtRest && captured - refunded !== completedTotal) {
    add(
      'money',
      '*',
      `captured ${captured} − refunded ${refunded} = ${captured - refunded}, COMPLETED totals ${completedTotal}`,
    );
  }
  for (const order of atRest) {
    const payment = payments.get(order.id)?.[0];
    const shipment = shipments.get(order.id)?.[0];
    if (order.status === 'COMPLETED') {
      if (payment?.status !== 'CAPTURED')
        add('money', order.id, `COMPLETED with payment ${payment?.status ?? 'NONE'}`);
      else if (payment.amountCents !== order.totalCents) {
        add('money', order.id, `captured ${payment.amountCents}, total is ${order.totalCents}`);
      }
      if (shipment?.status !== 'CREATED')
        add('money', order.id, `COMPLETED with shipment ${shipment?.status ?? 'NONE'}`);
    } else {
      if (payment?.status === 'CAPTURED')
        add('money', order.id, `${order.status} but the payment is still CAPTURED`);
      if (shipment?.status === 'CREATED')
        add('money', order.id, `${order.status} but the shipment is still CREATED`);
      if (payment?.status === 'DECLINED' && order.failureReason !== 'payment_declined') {
        add(
          'money',
          order.id,
          `payment DECLINED but the order is ${order.status}/${order.failureReason ?? '-'}`,
        );
      }
    }
  }
  if (!snapshot.gateway) return;
  // The gateway's view: what it captured minus what it refunded, per order.
  const gateway = new Map(snapshot.gateway.map((row) => [row.orderId, row]));
  for (const order of atRest) {
    const row = gateway.get(order.id);
    const charged = row?.charge === 'captured' ? 1 : 0;
    const returned = row?.refund === 'refunded' ? 1 : 0;
    const net = (charged - returned) * order.totalCents;
    const due = order.status === 'COMPLETED' ? order.totalCents : 0;
    if (returned && !charged) add('money', order.id, 'the gateway refunded a charge it never captured');
    if (net !== due) {
      add(
        'money',
        order.id,
        `the gateway holds ${net} (charge ${row?.charge ?? 'none'}, refund ${row?.refund ?? 'none'}) for a ${order.status} order of ${order.totalCents}`,
      );
    }
  }
}

function checkOnce(snapshot: Snapshot, add: Add): void {
  for (const [orderId, rows] of groupBy(snapshot.payments, (row) => row.orderId)) {
    if (rows.length > 1) add('once', orderId, `${rows.length} payment rows`);
  }
  for (const [orderId, rows] of groupBy(snapshot.shipments, (row) => row.orderId)) {
    if (rows.length > 1) add('once', orderId, `${rows.length} shipment rows`);
  }
  const byWorkflow = groupBy(snapshot.ledger, (row) => row.workflowId);
  const seenKeys = new Map<string, number>();
  for (const row of snapshot.ledger)
    seenKeys.set(row.idempotencyKey, (seenKeys.get(row.idempotencyKey) ?? 0) + 1);
  for (const [key, count] of seenKeys) if (count > 1) add('once', key, `ledger key recorded ${count} times`);
  for (const order of snapshot.orders) {
    if (!TERMINAL.has(order.status)) continue;
    const workflowId = workflowIdFor(order.id);
    const rows = byWorkflow.get(workflowId) ?? [];
    const steps = groupBy(rows, (row) => row.step);
    for (const [step, stepRows] of steps) {
      if (stepRows.length > 1) add('once', order.id, `ledger has step ${step} ${stepRows.length} times`);
      for (const row of stepRows) {
        if (row.idempotencyKey !== stepKey(workflowId, step)) {
          add('once', order.id, `ledger key ${row.idempotencyKey} is not ${stepKey(workflowId, step)}`);
        }
        if (row.resultMissing) add('once', order.id, `ledger step ${step} has no result at rest`);
      }
    }
    // A completeOrder fenced by a cancel that won the race (saga v4) never ran.
    const completed = (steps.get('completeOrder') ?? []).some((row) => row.ran);
    const unwound = steps.has('cancelOrder');
    if (order.status === 'COMPLETED' && (!completed || unwound)) {
      add(
        'once',
        order.id,
        `COMPLETED but the ledger has completeOrder=${completed}, cancelOrder=${unwound}`,
      );
    }
    if (order.status !== 'COMPLETED' && (completed || !unwound)) {
      add(
        'once',
        order.id,
        `${order.status} but the ledger has completeOrder=${completed}, cancelOrder=${unwound}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------
// I/O: waiting for rest, reading the database and the stream

export interface CheckOptions {
  pool: Pool;
  nats: NatsConnection;
  /** Stream messages before this are not read; without orderIds, orders created since are checked. */
  since: Date;
  /** Orders the API accepted (each must exist); with them, only these (plus initialStock's skus' orders) are checked. */
  orderIds?: readonly string[];
  /** Initial `available` per sku: stock conservation is checked for these, over every order holding them. */
  initialStock?: Readonly<Record<string, number>>;
  /** How long to wait for the orders to be at rest before checking anyway (default 120 s). */
  settleTimeoutMs?: number;
  /** Where to look for saga runs without a 202: Temporal, and the customer id prefix of the orders in scope. */
  temporal?: { client: Client; customerPrefix: string };
}

export interface SettleResult {
  settled: boolean;
  waitedMs: number;
  orders: number;
  notTerminal: number;
  unpublished: number;
}

/** Ids of the orders in scope: the given ones (or those created since), plus every order of the skus. */
async function scopeIds(pool: Pool, options: CheckOptions): Promise<string[]> {
  const skus = Object.keys(options.initialStock ?? {});
  const { rows } = await pool.query<{ id: string }>(
    `SELECT o.id FROM orders o
      WHERE o.id = ANY($1::uuid[])
         OR ($2::boolean AND o.created_at >= $3)
         OR EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id AND i.sku = ANY($4::text[]))`,
    [options.orderIds ?? [], options.orderIds === undefined, options.since, skus],
  );
  return rows.map((row) => row.id);
}

/**
 * Polls until every order in scope is terminal and all their outbox events are published
 * (or parked), or the timeout passes. The time it took is the drill's time to recover.
 */
export async function waitUntilSettled(options: CheckOptions & { pollMs?: number }): Promise<SettleResult> {
  const started = Date.now();
  let last: SettleResult | undefined;
  const settled = await answerWithin(
    'the orders in scope at rest',
    async () => {
      const ids = await scopeIds(options.pool, options);
      const { rows } = await options.pool.query<{ not_terminal: number; unpublished: number }>(
        `SELECT (SELECT count(*)::int FROM orders WHERE id = ANY($1::uuid[]) AND status <> ALL($2::text[])) AS not_terminal,
                (SELECT count(*)::int FROM outbox WHERE aggregate_id = ANY($1::uuid[])
                    AND published_at IS NULL AND parked_at IS NULL) AS unpublished`,
        [ids, [...TERMINAL_STATUSES]],
      );
      const { not_terminal: notTerminal, unpublished } = rows[0]!;
      const missing =
        (options.orderIds ?? []).length > 0 ? await countMissing(options.pool, options.orderIds!) : 0;
      const atRest = notTerminal === 0 && unpublished === 0 && missing === 0;
      last = {
        settled: atRest,
        waitedMs: Date.now() - started,
        orders: ids.length,
        notTerminal,
        unpublished,
      };
      return atRest ? last : undefined;
    },
    { timeoutMs: options.settleTimeoutMs ?? 120_000, intervalMs: options.pollMs ?? 250 },
  );
  // Not at rest in time: the last look says how far it got (the drill reports it).
  return settled ?? last!;
}

async function countMissing(pool: Pool, orderIds: readonly string[]): Promise<number> {
  const { rows } = await pool.query<{ missing: number }>(
    `SELECT count(*)::int AS missing FROM unnest($1::uuid[]) AS a(id)
      WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = a.id)`,
    [orderIds],
  );
  return rows[0]!.missing;
}

/** Reads everything the checks need, in a few queries and one pass over the stream. */
/** Order ids of the saga runs started since `since` for customers whose id starts with the prefix. */
async function sagaRunsOf(temporal: NonNullable<CheckOptions['temporal']>, since: Date): Promise<string[]> {
  const ids: string[] = [];
  const query = `WorkflowType = '${WORKFLOW_TYPE}' AND StartTime >= '${since.toISOString()}'`;
  for await (const run of temporal.client.workflow.list({ query })) {
    const customerId = run.typedSearchAttributes.get(CustomerIdKey);
    if (customerId?.startsWith(temporal.customerPrefix) && run.workflowId.startsWith('order-')) {
      ids.push(run.workflowId.slice('order-'.length));
    }
  }
  return ids;
}

export async function gatherSnapshot(options: CheckOptions): Promise<Snapshot> {
  const { pool } = options;
  const ids = await scopeIds(pool, options);
  const skus = Object.keys(options.initialStock ?? {});
  const workflowIds = ids.map(workflowIdFor);

  const [orders, items, products, reservations, payments, shipments, ledger, outbox, gateway] =
    await Promise.all([
      pool.query<{ id: string; status: string; failure_reason: string | null; total_cents: number }>(
        'SELECT id, status, failure_reason, total_cents FROM orders WHERE id = ANY($1::uuid[])',
        [ids],
      ),
      pool.query<{ order_id: string; sku: string; quantity: number }>(
        'SELECT order_id, sku, quantity FROM order_items WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, line',
        [ids],
      ),
      // Every product that went negative, wherever, plus the skus under check.
      pool.query<{ sku: string; available: number; reserved: number }>(
        'SELECT sku, available, reserved FROM products WHERE sku = ANY($1::text[]) OR available < 0 OR reserved < 0',
        [skus],
      ),
      pool.query<{ order_id: string; sku: string; quantity: number; status: string }>(
        `SELECT order_id, sku, quantity, status FROM inventory_reservations
        WHERE order_id = ANY($1::uuid[]) OR sku = ANY($2::text[])`,
        [ids, skus],
      ),
      pool.query<{ order_id: string; status: string; amount_cents: number }>(
        'SELECT order_id, status, amount_cents FROM payments WHERE order_id = ANY($1::uuid[])',
        [ids],
      ),
      pool.query<{ order_id: string; status: string }>(
        'SELECT order_id, status FROM shipments WHERE order_id = ANY($1::uuid[])',
        [ids],
      ),
      pool.query<{
        idempotency_key: string;
        workflow_id: string;
        step: string;
        result_missing: boolean;
        ran: boolean;
      }>(
        `SELECT idempotency_key, workflow_id, step, result IS NULL AS result_missing,
                result IS DISTINCT FROM $2::jsonb AS ran
         FROM activity_ledger WHERE workflow_id = ANY($1::text[])`,
        [workflowIds, JSON.stringify(STEP_ABANDONED)],
      ),
      pool.query<{
        id: string;
        aggregate_id: string;
        sequence: number;
        type: string;
        published: boolean;
        parked: boolean;
      }>(
        `SELECT id, aggregate_id, sequence, type, published_at IS NOT NULL AS published, parked_at IS NOT NULL AS parked
         FROM outbox WHERE aggregate_id = ANY($1::uuid[])`,
        [ids],
      ),
      readGateway(pool, ids),
    ]);
  const itemsByOrder = groupBy(items.rows, (row) => row.order_id);
  const sagas = options.temporal ? await sagaRunsOf(options.temporal, options.since) : undefined;
  return {
    ...(sagas ? { sagas } : {}),
    acknowledged: options.orderIds ?? [],
    orders: orders.rows.map((row) => ({
      id: row.id,
      status: row.status,
      failureReason: row.failure_reason,
      totalCents: row.total_cents,
      items: (itemsByOrder.get(row.id) ?? []).map(({ sku, quantity }) => ({ sku, quantity })),
    })),
    initialStock: options.initialStock ?? {},
    products: products.rows,
    reservations: reservations.rows.map((row) => ({
      orderId: row.order_id,
      sku: row.sku,
      quantity: row.quantity,
      status: row.status,
    })),
    payments: payments.rows.map((row) => ({
      orderId: row.order_id,
      status: row.status,
      amountCents: row.amount_cents,
    })),
    shipments: shipments.rows.map((row) => ({ orderId: row.order_id, status: row.status })),
    ledger: ledger.rows.map((row) => ({
      idempotencyKey: row.idempotency_key,
      workflowId: row.workflow_id,
      step: row.step,
      resultMissing: row.result_missing,
      ran: row.ran,
    })),
    gateway,
    outbox: outbox.rows.map((row) => ({
      id: row.id,
      orderId: row.aggregate_id,
      sequence: row.sequence,
      type: row.type,
      published: row.published,
      parked: row.parked,
    })),
    stream: await readOrdersStreamPatiently(options.nats, options.since, new Set(ids)),
  };
}

async function readGateway(pool: Pool, orderIds: readonly string[]): Promise<GatewayRow[] | undefined> {
  const chargeKeys = orderIds.map((id) => stepKey(workflowIdFor(id), 'chargePayment'));
  const refundKeys = orderIds.map((id) => stepKey(workflowIdFor(id), 'refundPayment'));
  try {
    const { rows } = await pool.query<{ provider: string; idempotency_key: string; answer: string | null }>(
      `SELECT provider, idempotency_key, response->>'status' AS answer FROM simulated_provider_requests
        WHERE (provider = 'payment' AND idempotency_key = ANY($1::text[]))
           OR (provider = 'refund' AND idempotency_key = ANY($2::text[]))`,
      [chargeKeys, refundKeys],
    );
    const answers = new Map(rows.map((row) => [`${row.provider}/${row.idempotency_key}`, row.answer]));
    return orderIds.map((id, i) => ({
      orderId: id,
      charge: answers.get(`payment/${chargeKeys[i]!}`) ?? null,
      refund: answers.get(`refund/${refundKeys[i]!}`) ?? null,
    }));
  } catch (error) {
    if ((error as { code?: string }).code === '42P01') return undefined; // no simulated gateway here
    throw error;
  }
}

/** How long the final read of the stream waits out a cluster that cannot answer yet. */
const STREAM_READ_PATIENCE_MS = 30_000;

/**
 * readOrdersStream, read again from the start while JetStream cannot answer: right after a
 * drill killed nodes of a cluster, a request can meet "no responders" (status 503) while
 * the stream's leader is being chosen. Any other error, or one lasting longer than
 * STREAM_READ_PATIENCE_MS, fails the check.
 */
async function readOrdersStreamPatiently(
  nats: NatsConnection,
  since: Date,
  orderIds: ReadonlySet<string>,
): Promise<StreamedMessage[]> {
  let lastError = '';
  return eventually(
    'stream ORDERS readable',
    async () => {
      try {
        return await readOrdersStream(nats, since, orderIds);
      } catch (error) {
        const transient =
          // JetStreamError: a status JetStream answered with (JetStreamStatusError, not exported).
          (error instanceof JetStreamError && (error as { code?: unknown }).code === 503) ||
          isNatsUnavailable(error, nats);
        if (!transient) throw error;
        lastError = String(error);
        return undefined;
      }
    },
    { timeoutMs: STREAM_READ_PATIENCE_MS, intervalMs: 500, detail: () => `last error: ${lastError}` },
  );
}

/**
 * Stream ORDERS from `since` up to its last message now (an ordered consumer), keeping
 * the messages of `orderIds`, in stream order.
 */
export async function readOrdersStream(
  nats: NatsConnection,
  since: Date,
  orderIds: ReadonlySet<string>,
): Promise<StreamedMessage[]> {
  const jsm = await jetstreamManager(nats);
  const lastSeq = (await jsm.streams.info(STREAM_NAME)).state.last_seq;
  const found: StreamedMessage[] = [];
  if (lastSeq === 0) return found;
  const consumer = await jetstream(nats).consumers.get(STREAM_NAME, {
    filter_subjects: `${SUBJECT_PREFIX}.>`,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: since.toISOString(),
  });
  for (;;) {
    const messages = await consumer.fetch({ max_messages: 1_000, expires: 2_000 });
    let received = 0;
    for await (const message of messages) {
      received++;
      const body = message.json<StreamedMessage['body']>();
      if (typeof body.aggregateId === 'string' && orderIds.has(body.aggregateId)) {
        const headers = message.headers as MsgHdrs | undefined;
        found.push({
          streamSequence: message.seq,
          subject: message.subject,
          msgId: headers?.get('Nats-Msg-Id') || undefined,
          body,
        });
      }
      if (message.seq >= lastSeq) return found;
    }
    if (received === 0) return found;
  }
}

/**
 * Waits until the orders in scope are at rest (up to settleTimeoutMs), then checks every
 * invariant. An empty list means every one holds.
 */
export async function checkInvariants(options: CheckOptions): Promise<Violation[]> {
  await waitUntilSettled(options);
  return evaluate(await gatherSnapshot(options));
}
