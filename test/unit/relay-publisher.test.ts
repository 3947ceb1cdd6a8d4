import type { JetStreamClient } from '@nats-io/jetstream';
import type { PendingOutboxRow } from '../../store/outbox';
import { publishRows, type BatchPlan } from '../../relay/publisher';
import type { NatsConnection } from '../../relay/stream';

/**
 * How the publisher follows a batch's plan (relay/relay.ts, point 4): rows found on the
 * stream count as published without being sent, and a row whose duplicate window ran out
 * is not sent, nor is anything of its order after it; nor is a row of a partition whose
 * lease this relay no longer holds. JetStream is a fake that acks all.
 */

const nats = { isClosed: () => false, isDraining: () => false } as unknown as NatsConnection;
const options = { publishConcurrency: 4, publishTimeoutMs: 1_000 };

function fakeJetStream() {
  const sent: string[] = [];
  let seq = 100;
  const js = {
    publish: (_subject: string, _body: string, opts: { msgID: string }) => {
      sent.push(opts.msgID);
      return Promise.resolve({ stream: 'ORDERS', seq: ++seq, duplicate: false });
    },
  } as unknown as JetStreamClient;
  return { js, sent };
}

function row(orderId: string, sequence: number, partition = 0): PendingOutboxRow {
  return {
    id: `${orderId}-${sequence}`,
    partition,
    aggregate_id: orderId,
    sequence,
    type: 'OrderCreated',
    subject: 'orders.events.OrderCreated',
    body: '{}',
    attempts: 0,
    age_ms: 0,
    attempt_age_ms: null,
    publish_floor_seq: null,
    selected_at: new Date(0),
  };
}

const plan = (parts: Partial<BatchPlan> = {}): BatchPlan => ({
  onStream: new Set(),
  held: new Set(),
  sendBefore: new Map(),
  holds: () => true,
  ...parts,
});

test('when an event was found on the stream, then it counts as published without being sent, and its order continues after it', async () => {
  const { js, sent } = fakeJetStream();
  const rows = [row('a', 1), row('a', 2), row('a', 3)];

  const outcome = await publishRows(js, nats, rows, plan({ onStream: new Set(['a-1']) }), options);

  expect(sent).toEqual(['a-2', 'a-3']);
  expect(outcome.published.map((published) => published.id)).toEqual(['a-1', 'a-2', 'a-3']);
  expect(outcome).toMatchObject({ deferred: 0, failed: [], outage: undefined, highestSeq: 102 });
});

test("when an event's duplicate window ran out before it could be sent, then neither it nor its order's later events are sent, and other orders go on", async () => {
  const { js, sent } = fakeJetStream();
  const rows = [row('a', 1), row('a', 2), row('a', 3), row('b', 1)];
  const now = performance.now();

  const outcome = await publishRows(
    js,
    nats,
    rows,
    plan({
      sendBefore: new Map([
        ['a-2', now - 1],
        ['b-1', now + 60_000],
      ]),
    }),
    options,
  );

  expect(sent.sort()).toEqual(['a-1', 'b-1']);
  expect(outcome.published.map((published) => published.id).sort()).toEqual(['a-1', 'b-1']);
  expect(outcome.deferred).toBe(2);
});

test('when an event is held back (its lookup failed), then neither it nor its order’s later events are sent', async () => {
  const { js, sent } = fakeJetStream();
  const rows = [row('a', 1), row('a', 2), row('b', 1)];

  const outcome = await publishRows(js, nats, rows, plan({ held: new Set(['a-1']) }), options);

  expect(sent).toEqual(['b-1']);
  expect(outcome.deferred).toBe(2);
});

test("when this relay's lease of a partition lapses while a batch is under way, then nothing more of that partition is sent, and other partitions go on", async () => {
  const { js, sent } = fakeJetStream();
  const rows = [row('a', 1, 3), row('a', 2, 3), row('b', 1, 5), row('b', 2, 5)];
  // The lease of partition 3 lapses right after its first send (a heartbeat came too late).
  const holds = (partition: number): boolean => partition !== 3 || !sent.includes('a-1');

  const outcome = await publishRows(js, nats, rows, plan({ holds }), { ...options, publishConcurrency: 1 });

  expect(sent).toEqual(['a-1', 'b-1', 'b-2']);
  expect(outcome.published.map((published) => published.id)).toEqual(['a-1', 'b-1', 'b-2']);
  expect(outcome.deferred).toBe(1);
});
