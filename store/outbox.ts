import { randomUUID } from 'node:crypto';
import { subjectFor, type EventType } from '../contracts/index';
import type { PoolClient } from './pool';

export const SCHEMA_VERSION = 1;

export interface DomainEvent {
  orderId: string;
  type: EventType;
  data: Record<string, unknown>;
}

export interface OutboxMessage {
  id: string;
  type: EventType;
  schemaVersion: number;
  aggregateType: 'order';
  aggregateId: string;
  sequence: number;
  occurredAt: string;
  workflowId: string;
  correlationId: string | null;
  data: Record<string, unknown>;
}

/**
 * Appends a domain event to the outbox inside the caller's transaction (a client, never
 * the pool, so the business change and its event commit or roll back together).
 * The order row's lock numbers the order's events 1, 2, 3, … without gaps.
 */
export async function appendEvent(tx: PoolClient, event: DomainEvent): Promise<OutboxMessage> {
  const { rows } = await tx.query<{
    sequence: number;
    workflow_id: string;
    correlation_id: string | null;
    now: Date;
  }>(
    `UPDATE orders SET event_seq = event_seq + 1, updated_at = now()
      WHERE id = $1
      RETURNING event_seq AS sequence, workflow_id, correlation_id, now() AS now`,
    [event.orderId],
  );
  const row = rows[0];
  if (!row) throw new Error(`appendEvent: order ${event.orderId} does not exist`);
  const message: OutboxMessage = {
    id: randomUUID(),
    type: event.type,
    schemaVersion: SCHEMA_VERSION,
    aggregateType: 'order',
    aggregateId: event.orderId,
    sequence: row.sequence,
    occurredAt: row.now.toISOString(),
    workflowId: row.workflow_id,
    correlationId: row.correlation_id,
    data: event.data,
  };
  await tx.query(
    `INSERT INTO outbox (id, aggregate_type, aggregate_id, sequence, type, subject, body, occurred_at)
     VALUES ($1, 'order', $2, $3, $4, $5, $6, $7)`,
    [
      message.id,
      message.aggregateId,
      message.sequence,
      message.type,
      subjectFor(message.type),
      JSON.stringify(message),
      row.now,
    ],
  );
  return message;
}
