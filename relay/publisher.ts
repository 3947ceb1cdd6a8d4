import { JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import type { PendingOutboxRow } from '../store/outbox';
import { STREAM_NAME } from '../contracts/index';
import { describeError } from './describe-error';
import type { NatsConnection } from './stream';

/** NATS could not take messages at all (disconnected, timed out, JetStream missing). */
export class NatsUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`NATS unavailable: ${describeError(cause)}`, { cause });
    this.name = 'NatsUnavailableError';
  }
}

export interface PublishOptions {
  /** Orders published concurrently. */
  publishConcurrency: number;
  /** How long to wait for one PubAck. */
  publishTimeoutMs: number;
}

export interface FailedRow {
  row: PendingOutboxRow;
  error: unknown;
}

/** What the relay already knows about some rows of a batch before it publishes them. */
export interface BatchPlan {
  /** Rows found on the stream (a lost PubAck): count as published without sending. */
  onStream: ReadonlySet<string>;
  /** Rows not to send in this batch (their lookup failed); their orders' later rows wait. */
  held: ReadonlySet<string>;
  /**
   * Rows whose earlier attempt the duplicate window still covers, with the moment
   * (performance.now()) after which it no longer safely does: past it the row is not sent
   * but left for the next batch, which looks it up on the stream first.
   */
  sendBefore: ReadonlyMap<string, number>;
  /**
   * Whether this relay still holds the lease of a partition, asked right before each send:
   * once it does not, that partition's rows are not sent (relay/partitions.ts, fencing).
   */
  holds: (partition: number) => boolean;
}

export interface PublishOutcome {
  /** Rows JetStream acknowledged (duplicates included) or already held. */
  published: PendingOutboxRow[];
  /** How many of those JetStream had already stored (re-sends after a crash before marking). */
  duplicates: number;
  /** performance.now() of each sent row's PubAck, by id. */
  ackedAt: Map<string, number>;
  /** Rows JetStream refused: each counts as a failed attempt of that event. */
  failed: FailedRow[];
  /** Rows sent whose PubAck never came (the outage): they may be on the stream. */
  uncertain: PendingOutboxRow[];
  /** Set when NATS could not take messages at all; nothing more was sent after it. */
  outage: { error: unknown } | undefined;
  /** Rows not sent: held, their window ran out, or their lease lapsed while the batch was under way. */
  deferred: number;
  /** The highest stream sequence a PubAck named (0 if none): the stream's last is no lower. */
  highestSeq: number;
}

/**
 * Publishes different orders concurrently and each order's events one by one, each after
 * the PubAck of the one before (or after finding it on the stream). After a failure or a
 * deferral (held back, window run out, lease lost) the order's later events are not sent;
 * after an outage nothing more is sent.
 */
export async function publishRows(
  js: JetStreamClient,
  nats: NatsConnection,
  rows: PendingOutboxRow[],
  plan: BatchPlan,
  options: PublishOptions,
): Promise<PublishOutcome> {
  const outcome: PublishOutcome = {
    published: [],
    ackedAt: new Map(),
    duplicates: 0,
    failed: [],
    uncertain: [],
    outage: undefined,
    deferred: 0,
    highestSeq: 0,
  };
  await forEachConcurrently(groupByOrder(rows), options.publishConcurrency, async (events) => {
    for (const [index, row] of events.entries()) {
      if (outcome.outage !== undefined) return;
      if (plan.onStream.has(row.id)) {
        outcome.published.push(row);
        continue;
      }
      const sendBefore = plan.sendBefore.get(row.id);
      if (
        plan.held.has(row.id) ||
        (sendBefore !== undefined && performance.now() >= sendBefore) ||
        !plan.holds(row.partition)
      ) {
        outcome.deferred += events.length - index; // the order's later events wait behind it
        return;
      }
      try {
        const ack = await js.publish(row.subject, row.body, {
          msgID: row.id,
          timeout: options.publishTimeoutMs,
          expect: { streamName: STREAM_NAME },
        });
        if (ack.duplicate) outcome.duplicates++;
        outcome.highestSeq = Math.max(outcome.highestSeq, ack.seq);
        outcome.ackedAt.set(row.id, performance.now());
        outcome.published.push(row);
      } catch (error) {
        if (isNatsUnavailable(error, nats)) {
          outcome.outage ??= { error };
          outcome.uncertain.push(row);
        } else outcome.failed.push({ row, error });
        return;
      }
    }
  });
  return outcome;
}

/** Each order's rows in sequence order; orders in the order of their first row. */
function groupByOrder(rows: PendingOutboxRow[]): PendingOutboxRow[][] {
  const byOrder = new Map<string, PendingOutboxRow[]>();
  for (const row of rows) {
    const events = byOrder.get(row.aggregate_id);
    if (events) events.push(row);
    else byOrder.set(row.aggregate_id, [row]);
  }
  return [...byOrder.values()].map((events) => events.sort((a, b) => a.sequence - b.sequence));
}

const UNAVAILABLE_ERRORS = new Set([
  'TimeoutError',
  'RequestError',
  'NoResponders',
  'JetStreamNotEnabled',
  'ConnectionError',
  'ClosedConnectionError',
  'DrainingConnectionError',
  'ProtocolError',
]);

/**
 * Transport trouble says nothing about the event, so it must not count toward parking
 * it: an hour-long NATS outage would otherwise park every pending event. Only errors
 * where JetStream answered and refused this message count as the event's failures.
 */
export function isNatsUnavailable(error: unknown, nats: NatsConnection): boolean {
  if (nats.isClosed() || nats.isDraining()) return true;
  if (error instanceof JetStreamApiError) return error.status === 503;
  return error instanceof Error && UNAVAILABLE_ERRORS.has(error.name);
}

async function forEachConcurrently<T>(
  items: T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
