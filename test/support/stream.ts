import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/nats-core';
import type { OutboxMessage } from '../../store/outbox';
import { STREAM_NAME, SUBJECT_PREFIX } from '../../contracts/index';
import type { NatsConnection } from '../../relay/stream';
import { eventually } from '../../tools/fixtures/eventually';

export interface StreamedEvent {
  subject: string;
  msgId: string | undefined;
  body: OutboxMessage;
}

/**
 * Reads stream ORDERS from `since` up to its last message now, keeping the messages of
 * `orderIds`, in stream order. The stream is shared by every test file.
 */
export async function readStream(
  nats: NatsConnection,
  since: Date,
  orderIds: string[],
): Promise<StreamedEvent[]> {
  const js = jetstream(nats);
  const jsm = await jetstreamManager(nats);
  const wanted = new Set(orderIds);
  const lastSeq = (await jsm.streams.info(STREAM_NAME)).state.last_seq;
  // Right after a cluster node died, the JetStream API may time out while the survivors
  // re-elect its leaders: ask again until it answers (a wait that times out fails).
  const consumer = await eventually(
    'JetStream creates a reading consumer',
    () =>
      js.consumers
        .get(STREAM_NAME, {
          filter_subjects: `${SUBJECT_PREFIX}.>`,
          deliver_policy: DeliverPolicy.StartTime,
          opt_start_time: since.toISOString(),
        })
        .catch((error: unknown) => {
          if (error instanceof Error && error.name === 'TimeoutError') return undefined;
          throw error;
        }),
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  const found: StreamedEvent[] = [];
  for (;;) {
    const messages = await consumer.fetch({ max_messages: 1_000, expires: 2_000 });
    let received = 0;
    for await (const message of messages) {
      received++;
      const body = message.json<OutboxMessage>();
      if (wanted.has(body.aggregateId)) {
        // JsMsg's header type does not resolve here (see relay/stream.ts); it is MsgHdrs.
        const headers = message.headers as MsgHdrs | undefined;
        found.push({ subject: message.subject, msgId: headers?.get('Nats-Msg-Id'), body });
      }
      if (message.seq >= lastSeq) return found; // everything published before the call is read
    }
    if (received === 0) return found;
  }
}
