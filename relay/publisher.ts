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

export interface PublishOutcome {
  /** Rows JetStream acknowledged, duplicates included. */
  published: PendingOutboxRow[];
  /** How many of those JetStream had already stored (re-sends after a crash before marking). */
  duplicates: number;
  /** Rows JetStream refused: each counts as a failed attempt of that event. */
  failed: FailedRow[];
  /** Set when NATS could not take messages at all; nothing more was sent after it. */
  outage: { error: unknown } | undefined;
}

/**
 * Publishes different orders concurrently and each order's events one by one, each after
 * the PubAck of the one before. After a failure the order's later events are not sent;
 * after an outage nothing more is sent.
 */
export async function publishRows(
  js: JetStreamClient,
  nats: NatsConnection,
  rows: PendingOutboxRow[],
  options: PublishOptions,
): Promise<PublishOutcome> {
  const outcome: PublishOutcome = { published: [], duplicates: 0, failed: [], outage: undefined };
  await forEachConcurrently(groupByOrder(rows), options.publishConcurrency, async (events) => {
    for (const row of events) {
      if (outcome.outage !== undefined) return;
      try {
        const ack = await js.publish(row.subject, row.body, {
          msgID: row.id,
          timeout: options.publishTimeoutMs,
          expect: { streamName: STREAM_NAME },
        });
        if (ack.duplicate) outcome.duplicates++;
        outcome.published.push(row);
      } catch (error) {
        if (isNatsUnavailable(error, nats)) outcome.outage ??= { error };
        else outcome.failed.push({ row, error });
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
function isNatsUnavailable(error: unknown, nats: NatsConnection): boolean {
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
