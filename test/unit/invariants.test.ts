import {
  evaluate,
  eventSequenceProblems,
  orderAgreementProblems,
  streamProblems,
  type GatewayRow,
  type InvariantName,
  type OrderRow,
  type OutboxRow,
  type Snapshot,
  type StreamedMessage,
} from '../../tools/chaos/invariants';
import { stepKey, workflowIdFor } from '../../contracts/index';

/**
 * The invariant checker's pure part (tools/chaos/invariants.ts) on hand-made data: consistent
 * snapshots pass, and each way of breaking one is named.
 */

const COMPLETED = [
  'OrderCreated',
  'InventoryReserved',
  'PaymentCaptured',
  'ShipmentCreated',
  'OrderCompleted',
];
const DECLINED = ['OrderCreated', 'InventoryReserved', 'PaymentDeclined', 'InventoryReleased', 'OrderFailed'];
const CARRIER_REFUSED = [
  'OrderCreated',
  'InventoryReserved',
  'PaymentCaptured',
  'PaymentRefunded',
  'InventoryReleased',
  'OrderFailed',
];
const OUT_OF_STOCK = ['OrderCreated', 'OrderFailed'];
const CANCELLED_AWAITING = ['OrderCreated', 'InventoryReserved', 'InventoryReleased', 'OrderCancelled'];
const FRAUD = ['OrderCreated', 'InventoryReserved', 'InventoryReleased', 'OrderFailed'];
const CANCELLED_AFTER_SHIPMENT = [
  'OrderCreated',
  'InventoryReserved',
  'PaymentCaptured',
  'ShipmentCreated',
  'ShipmentCancelled',
  'PaymentRefunded',
  'InventoryReleased',
  'OrderCancelled',
];

describe('event sequences', () => {
  it.each([
    ['completed', COMPLETED],
    ['declined', DECLINED],
    ['carrier refused', CARRIER_REFUSED],
    ['out of stock', OUT_OF_STOCK],
    ['cancelled while awaiting approval', CANCELLED_AWAITING],
    ['fraud suspected', FRAUD],
    ['cancelled after the shipment', CANCELLED_AFTER_SHIPMENT],
    ['cancelled before anything', ['OrderCreated', 'OrderCancelled']],
  ])('the %s path is valid', (_path, types) => {
    expect(eventSequenceProblems(types)).toEqual([]);
  });

  it.each([
    ['no events', [], 'no events'],
    ['not starting with OrderCreated', ['OrderCancelled'], 'starts with OrderCancelled'],
    ['without a terminal event', ['OrderCreated', 'InventoryReserved'], '0 terminal events'],
    ['with two terminal events', ['OrderCreated', 'OrderFailed', 'OrderCancelled'], '2 terminal events'],
    [
      'with an event after the terminal one',
      ['OrderCreated', 'OrderFailed', 'InventoryReserved'],
      'is not the last',
    ],
    [
      'with a repeated event',
      ['OrderCreated', 'InventoryReserved', 'InventoryReserved', 'InventoryReleased', 'OrderFailed'],
      'appears 2 times',
    ],
    [
      'releasing what was never reserved',
      ['OrderCreated', 'InventoryReleased', 'OrderFailed'],
      'InventoryReleased without an earlier InventoryReserved',
    ],
    [
      'refunding before capturing',
      [
        'OrderCreated',
        'InventoryReserved',
        'PaymentRefunded',
        'PaymentCaptured',
        'InventoryReleased',
        'OrderFailed',
      ],
      'PaymentRefunded without an earlier PaymentCaptured',
    ],
    [
      'refunding what was never captured',
      ['OrderCreated', 'InventoryReserved', 'PaymentRefunded', 'InventoryReleased', 'OrderCancelled'],
      'PaymentRefunded without an earlier PaymentCaptured',
    ],
    [
      'capturing and declining',
      [
        'OrderCreated',
        'InventoryReserved',
        'PaymentCaptured',
        'PaymentDeclined',
        'PaymentRefunded',
        'InventoryReleased',
        'OrderFailed',
      ],
      'both PaymentCaptured and PaymentDeclined',
    ],
    [
      'going forward after undoing began',
      [
        'OrderCreated',
        'InventoryReserved',
        'InventoryReleased',
        'PaymentCaptured',
        'PaymentRefunded',
        'OrderFailed',
      ],
      'PaymentCaptured after compensation began',
    ],
    [
      'undoing in the wrong order',
      [
        'OrderCreated',
        'InventoryReserved',
        'PaymentCaptured',
        'InventoryReleased',
        'PaymentRefunded',
        'OrderFailed',
      ],
      'compensations run in reverse',
    ],
    [
      'failing without releasing stock',
      ['OrderCreated', 'InventoryReserved', 'PaymentDeclined', 'OrderFailed'],
      'InventoryReserved was never undone',
    ],
    [
      'cancelling without refunding',
      ['OrderCreated', 'InventoryReserved', 'PaymentCaptured', 'InventoryReleased', 'OrderCancelled'],
      'PaymentCaptured was never undone',
    ],
    [
      'completing without shipping',
      ['OrderCreated', 'InventoryReserved', 'PaymentCaptured', 'OrderCompleted'],
      'OrderCompleted without an earlier ShipmentCreated',
    ],
    [
      'completing after a refund',
      [
        'OrderCreated',
        'InventoryReserved',
        'PaymentCaptured',
        'ShipmentCreated',
        'PaymentRefunded',
        'OrderCompleted',
      ],
      'completed order has PaymentRefunded',
    ],
    ['an unknown type', ['OrderCreated', 'OrderShipped', 'OrderFailed'], 'unknown event type OrderShipped'],
  ])('a sequence %s is refused', (_case, types, problem) => {
    expect(eventSequenceProblems(types).join('\n')).toContain(problem);
  });

  it('when the order row and its events disagree, then a problem is named', () => {
    const order = (status: string, failureReason: string | null): OrderRow => ({
      id: 'o',
      status,
      failureReason,
      totalCents: 1,
      items: [],
    });
    expect(orderAgreementProblems(order('FAILED', 'payment_declined'), DECLINED)).toEqual([]);
    expect(orderAgreementProblems(order('COMPLETED', null), DECLINED)).toEqual([
      'status COMPLETED but the last event is OrderFailed',
    ]);
    expect(orderAgreementProblems(order('FAILED', null), OUT_OF_STOCK)).toContain(
      'FAILED without a failure reason',
    );
    expect(orderAgreementProblems(order('CANCELLED', 'payment_declined'), CANCELLED_AWAITING)).toContain(
      'CANCELLED with failure reason payment_declined',
    );
    expect(orderAgreementProblems(order('FAILED', 'insufficient_stock'), FRAUD)).toContain(
      'failure reason insufficient_stock yet InventoryReserved',
    );
    expect(orderAgreementProblems(order('FAILED', 'shipping_unavailable'), DECLINED)).toContain(
      'failure reason shipping_unavailable without PaymentCaptured',
    );
  });
});

// ---- a consistent world, built from paths ----

interface Spec {
  path: string[];
  status: 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'PENDING';
  reason?: string;
  sku?: string;
  quantity?: number;
}

const PRICE = 1_000;
let counter = 0;
const uuid = (): string => `00000000-0000-4000-8000-${String(++counter).padStart(12, '0')}`;

/** What the database and the stream hold after these orders ran, consistently. */
function world(specs: Spec[], initial = 100): Snapshot {
  const snapshot: Snapshot = {
    acknowledged: [],
    orders: [],
    initialStock: { A: initial },
    products: [],
    reservations: [],
    payments: [],
    shipments: [],
    ledger: [],
    gateway: [],
    outbox: [],
    stream: [],
  };
  const mutable = snapshot as {
    [K in keyof Snapshot]: Snapshot[K] extends readonly (infer T)[] ? T[] : Snapshot[K];
  };
  let available = initial;
  let reserved = 0;
  let streamSequence = 0;
  for (const spec of specs) {
    const id = uuid();
    const sku = spec.sku ?? 'A';
    const quantity = spec.quantity ?? 2;
    const total = quantity * PRICE;
    const has = (type: string) => spec.path.includes(type);
    mutable.acknowledged.push(id);
    mutable.orders.push({
      id,
      status: spec.status,
      failureReason: spec.reason ?? null,
      totalCents: total,
      items: [{ sku, quantity }],
    });
    if (has('InventoryReserved')) {
      const status =
        spec.status === 'COMPLETED' ? 'CONSUMED' : has('InventoryReleased') ? 'RELEASED' : 'RESERVED';
      mutable.reservations.push({ orderId: id, sku, quantity, status });
      if (status === 'CONSUMED') available -= quantity;
      if (status === 'RESERVED') {
        available -= quantity;
        reserved += quantity;
      }
    }
    if (has('PaymentCaptured') || has('PaymentDeclined')) {
      const status = has('PaymentRefunded') ? 'REFUNDED' : has('PaymentCaptured') ? 'CAPTURED' : 'DECLINED';
      mutable.payments.push({ orderId: id, status, amountCents: total });
    }
    if (has('ShipmentCreated')) {
      mutable.shipments.push({ orderId: id, status: has('ShipmentCancelled') ? 'CANCELLED' : 'CREATED' });
    }
    (mutable.gateway as GatewayRow[]).push({
      orderId: id,
      charge: has('PaymentCaptured') ? 'captured' : has('PaymentDeclined') ? 'declined' : null,
      refund: has('PaymentRefunded') ? 'refunded' : null,
    });
    const workflowId = workflowIdFor(id);
    const steps = [
      'createOrder',
      ...(spec.status === 'COMPLETED' ? ['completeOrder'] : []),
      ...(spec.status === 'FAILED' || spec.status === 'CANCELLED' ? ['cancelOrder'] : []),
    ];
    for (const step of steps) {
      mutable.ledger.push({
        idempotencyKey: stepKey(workflowId, step),
        workflowId,
        step,
        resultMissing: false,
        ran: true,
      });
    }
    spec.path.forEach((type, index) => {
      const eventId = `${id.slice(0, -4)}e${String(index).padStart(3, '0')}`;
      mutable.outbox.push({
        id: eventId,
        orderId: id,
        sequence: index + 1,
        type,
        published: true,
        parked: false,
      });
      mutable.stream.push({
        streamSequence: ++streamSequence,
        subject: `orders.events.${type}`,
        msgId: eventId,
        body: { id: eventId, type, aggregateId: id, sequence: index + 1 },
      });
    });
  }
  mutable.products.push({ sku: 'A', available, reserved });
  return snapshot;
}

const EVERY_PATH: Spec[] = [
  { path: COMPLETED, status: 'COMPLETED' },
  { path: COMPLETED, status: 'COMPLETED', quantity: 5 },
  { path: DECLINED, status: 'FAILED', reason: 'payment_declined' },
  { path: CARRIER_REFUSED, status: 'FAILED', reason: 'shipping_unavailable' },
  { path: OUT_OF_STOCK, status: 'FAILED', reason: 'insufficient_stock' },
  { path: CANCELLED_AWAITING, status: 'CANCELLED' },
  { path: FRAUD, status: 'FAILED', reason: 'fraud_suspected' },
  { path: CANCELLED_AFTER_SHIPMENT, status: 'CANCELLED' },
];

const kinds = (snapshot: Snapshot): InvariantName[] => [
  ...new Set(evaluate(snapshot).map((v) => v.invariant)),
];
const details = (snapshot: Snapshot): string =>
  evaluate(snapshot)
    .map((v) => `${v.invariant}: ${v.detail}`)
    .join('\n');

describe('evaluate', () => {
  it('when every path ran cleanly, then nothing is violated', () => {
    expect(evaluate(world(EVERY_PATH))).toEqual([]);
  });

  it('when an accepted order has no row, then it was lost', () => {
    const snapshot = world(EVERY_PATH);
    (snapshot.acknowledged as string[]).push('11111111-1111-4111-8111-111111111111');
    expect(kinds(snapshot)).toEqual(['acknowledged']);
  });

  it('when Temporal runs a saga for an order the API never answered 202 for, then that is a violation', () => {
    const snapshot = world(EVERY_PATH);
    const ghost = '22222222-2222-4222-8222-222222222222';
    expect(kinds({ ...snapshot, sagas: [...snapshot.acknowledged, ghost] })).toEqual(['accepted']);
  });

  it('when every saga run belongs to an accepted order, then the accepted invariant holds', () => {
    const snapshot = world(EVERY_PATH);
    expect(evaluate({ ...snapshot, sagas: [...snapshot.acknowledged] })).toEqual([]);
  });

  it('when a saga is still running, then it is not terminal (and stock at rest is not judged yet)', () => {
    const snapshot = world([
      ...EVERY_PATH,
      { path: ['OrderCreated', 'InventoryReserved'], status: 'PENDING' },
    ]);
    expect(kinds(snapshot)).toEqual(['terminal']);
    expect(details(snapshot)).toContain('still PENDING');
  });

  it('when every saga ended but units are still held, then stock says so', () => {
    const snapshot = world(EVERY_PATH);
    const declined = snapshot.orders[2]!.id;
    (snapshot.reservations.find((r) => r.orderId === declined) as { status: string }).status = 'RESERVED';
    Object.assign(snapshot.products[0]!, { reserved: 2, available: snapshot.products[0]!.available - 2 });
    expect(details(snapshot)).toContain('reserved is 2 at rest');
    expect(details(snapshot)).toContain("FAILED order's reservation of A is RESERVED, not RELEASED");
  });

  it('when a unit goes missing, then stock is not conserved', () => {
    const snapshot = world(EVERY_PATH);
    (snapshot.products[0] as { available: number }).available -= 1;
    expect(kinds(snapshot)).toEqual(['stock']);
    expect(details(snapshot)).toContain('initial 100 − completed 7 = 93, but available 92');
  });

  it('when a failed order kept its reservation, then stock says so', () => {
    const snapshot = world(EVERY_PATH);
    const declined = snapshot.orders[2]!.id;
    (snapshot.reservations.find((r) => r.orderId === declined) as { status: string }).status = 'CONSUMED';
    expect(details(snapshot)).toContain("FAILED order's reservation of A is CONSUMED, not RELEASED");
  });

  it('when a refund is lost, then money is not conserved', () => {
    const snapshot = world(EVERY_PATH);
    const refused = snapshot.orders[3]!.id;
    (snapshot.payments.find((p) => p.orderId === refused) as { status: string }).status = 'CAPTURED';
    expect(kinds(snapshot)).toEqual(['money']);
    expect(details(snapshot)).toContain('FAILED but the payment is still CAPTURED');
    expect(details(snapshot)).toContain('captured 11000 − refunded 2000 = 9000, COMPLETED totals 7000');
  });

  it('when the gateway charged an order that failed, then money is not conserved', () => {
    const snapshot = world(EVERY_PATH);
    const outOfStock = snapshot.orders[4]!.id;
    (snapshot.gateway!.find((g) => g.orderId === outOfStock) as { charge: string }).charge = 'captured';
    expect(details(snapshot)).toContain('the gateway holds 2000');
  });

  it('when a completed order was never captured, then money is not conserved', () => {
    const snapshot = world(EVERY_PATH);
    (snapshot.payments as unknown[]).splice(0, 1);
    expect(details(snapshot)).toContain('COMPLETED with payment NONE');
  });

  it('when a step is in the ledger twice, then it was applied twice', () => {
    const snapshot = world(EVERY_PATH);
    (snapshot.ledger as unknown[]).push({ ...snapshot.ledger[0]! });
    expect(kinds(snapshot)).toEqual(['once']);
  });

  /** EVERY_PATH with a completeOrder ledger row on its cancelled order, fenced (ran false) or not. */
  const cancelledWithCompletion = (ran: boolean) => {
    const snapshot = world(EVERY_PATH);
    const cancelled = snapshot.orders.find((order) => order.status === 'CANCELLED')!;
    const workflowId = workflowIdFor(cancelled.id);
    const step = 'completeOrder';
    (snapshot.ledger as unknown[]).push({
      idempotencyKey: stepKey(workflowId, step),
      workflowId,
      step,
      resultMissing: false,
      ran,
    });
    return snapshot;
  };

  it('when a cancelled order fenced its completion before it ran, then the fence is not a completion', () => {
    expect(evaluate(cancelledWithCompletion(false))).toEqual([]);
  });

  it('when a cancelled order has a completion that ran, then that is named', () => {
    expect(details(cancelledWithCompletion(true))).toContain(
      'CANCELLED but the ledger has completeOrder=true',
    );
  });

  it('when an order has two payment rows, then it was charged twice', () => {
    const snapshot = world(EVERY_PATH);
    (snapshot.payments as unknown[]).push({ ...snapshot.payments[0]! });
    expect(details(snapshot)).toContain('2 payment rows');
  });

  it('when an event was committed but never published, then the stream misses it', () => {
    const snapshot = world(EVERY_PATH);
    (snapshot.outbox[0] as { published: boolean }).published = false;
    (snapshot.stream as unknown[]).splice(0, 1);
    expect(kinds(snapshot)).toEqual(['stream']);
    expect(details(snapshot)).toContain('is not published');
  });

  it('when an event is marked published but the stream lost it, then that is named', () => {
    const snapshot = world(EVERY_PATH);
    (snapshot.stream as unknown[]).splice(1, 1);
    expect(details(snapshot)).toContain('marked published but not on the stream');
  });

  it('when an event reached the stream twice, then that is named', () => {
    const snapshot = world(EVERY_PATH);
    (snapshot.stream as StreamedMessage[]).push({ ...snapshot.stream[4]!, streamSequence: 999 });
    expect(details(snapshot)).toContain('on the stream 2 times');
  });

  it('when events reached the stream out of order, then that is named', () => {
    const snapshot = world(EVERY_PATH);
    const stream = snapshot.stream as StreamedMessage[];
    [stream[1], stream[2]] = [stream[2]!, stream[1]!];
    expect(details(snapshot)).toContain('reached the stream after event');
  });

  it('when a rolled-back event shows up on the stream, then that is named', () => {
    const snapshot = world(EVERY_PATH);
    const ghost = {
      ...snapshot.stream[0]!,
      msgId: 'ghost',
      body: { ...snapshot.stream[0]!.body, id: 'ghost' },
    };
    (snapshot.stream as StreamedMessage[]).push(ghost);
    expect(details(snapshot)).toContain('is no committed outbox event');
  });

  it('when the outbox has a gap, then that is named', () => {
    const snapshot = world(EVERY_PATH);
    (snapshot.outbox[1] as OutboxRow).sequence = 7;
    expect(details(snapshot)).toContain('where 2 was due');
  });

  it('when an event is parked, then it is not on the stream and that is named', () => {
    const snapshot = world(EVERY_PATH);
    Object.assign(snapshot.outbox[0] as OutboxRow, { parked: true, published: false });
    (snapshot.stream as unknown[]).splice(0, 1);
    expect(details(snapshot)).toContain('is parked');
  });
});

describe('stream against outbox', () => {
  const rows: OutboxRow[] = ['OrderCreated', 'OrderFailed'].map((type, i) => ({
    id: `e${i}`,
    orderId: 'o',
    sequence: i + 1,
    type,
    published: true,
    parked: false,
  }));
  const message = (i: number, patch: Partial<StreamedMessage> = {}): StreamedMessage => ({
    streamSequence: i + 10,
    subject: `orders.events.${rows[i]!.type}`,
    msgId: rows[i]!.id,
    body: { id: rows[i]!.id, type: rows[i]!.type, aggregateId: 'o', sequence: i + 1 },
    ...patch,
  });

  it('when each outbox row is on the stream once, in order, then there is no problem', () => {
    expect(streamProblems(rows, [message(0), message(1)])).toEqual([]);
  });

  it('when a message lacks Nats-Msg-Id, has a wrong subject or a body that disagrees, then each is named', () => {
    expect(streamProblems(rows, [message(0, { msgId: undefined }), message(1)])).toContain(
      'stream message 10 has no Nats-Msg-Id',
    );
    expect(streamProblems(rows, [message(0, { subject: 'orders.events.X' }), message(1)]).join()).toContain(
      'subject',
    );
    expect(
      streamProblems(rows, [
        message(0, { body: { id: 'e0', type: 'OrderCreated', aggregateId: 'o', sequence: 2 } }),
        message(1),
      ]).join(),
    ).toContain('sequence 2, outbox says 1');
  });
});
