import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/nats-core';
import { STREAM_NAME } from '../contracts/index';

/**
 * Asking stream ORDERS whether an event is already on it, for the events whose earlier
 * publish may have landed but which the duplicate window no longer covers (relay/relay.ts,
 * point 4). Subjects are per event type (CONTRACT §5), so the question is answered by
 * reading that subject's messages after the stream sequence recorded before the first
 * attempt, headers only, and matching `Nats-Msg-Id`.
 */

export interface StreamPosition {
  /** The stream's last sequence now: anything published later is stored above it. */
  lastSeq: number;
  /** The stream's duplicate window as configured on the stream. */
  duplicateWindowMs: number;
}

export async function readStreamPosition(jsm: JetStreamManager): Promise<StreamPosition> {
  const info = await jsm.streams.info(STREAM_NAME);
  return { lastSeq: info.state.last_seq, duplicateWindowMs: info.config.duplicate_window / 1_000_000 };
}

export interface LookupRow {
  id: string;
  subject: string;
  /** The stream's last sequence before the row's first unverified attempt. */
  floorSeq: number;
}

/**
 * The ids among `rows` that are stored on the stream. One scan per subject, from the lowest
 * floor of that subject's rows to the subject's last message now (a copy sent by the
 * attempts in question was stored long before this call). Rejects if the scan cannot
 * finish within `timeoutMs` per fetch: the caller then publishes nothing of those rows.
 */
export async function findOnStream(
  js: JetStreamClient,
  jsm: JetStreamManager,
  rows: LookupRow[],
  timeoutMs: number,
): Promise<Set<string>> {
  const found = new Set<string>();
  const bySubject = new Map<string, LookupRow[]>();
  for (const row of rows) bySubject.set(row.subject, [...(bySubject.get(row.subject) ?? []), row]);
  for (const [subject, wanted] of bySubject) {
    const ids = new Set(wanted.map((row) => row.id));
    const floorSeq = Math.min(...wanted.map((row) => row.floorSeq));
    const last = await jsm.streams.getMessage(STREAM_NAME, { last_by_subj: subject });
    if (last === null || last.seq <= floorSeq) continue; // nothing on the subject since
    const consumer = await js.consumers.get(STREAM_NAME, {
      filter_subjects: [subject],
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: floorSeq + 1,
      headers_only: true,
    });
    try {
      let done = false;
      while (!done) {
        let received = 0;
        const messages = await consumer.fetch({ max_messages: 1_000, expires: timeoutMs });
        for await (const message of messages) {
          received++;
          // JsMsg's header type does not resolve here (see relay/stream.ts); it is MsgHdrs.
          const msgId = (message.headers as MsgHdrs | undefined)?.get('Nats-Msg-Id');
          if (msgId !== undefined && ids.delete(msgId)) found.add(msgId);
          if (ids.size === 0 || message.seq >= last.seq || message.info.pending === 0) {
            done = true;
            messages.stop();
            break;
          }
        }
        if (!done && received === 0) {
          throw new Error(`stream lookup on ${subject} stopped short of sequence ${last.seq}`);
        }
      }
    } finally {
      await consumer.delete().catch(() => false); // ephemeral anyway: gone after 5 min idle
    }
  }
  return found;
}
