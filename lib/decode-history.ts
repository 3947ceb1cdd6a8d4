/**
 * A history with every payload decoded by the given codecs (lib/payload-codec.ts), for
 * code that reads payloads straight from a fetched history (the bench's saga template, the
 * tests). Any object shaped like a payload (`metadata` and `data`) is decoded; the codec
 * leaves payloads it did not encrypt (search attributes, headers, old histories) as they are.
 * Works on a copy (protobuf messages, Longs and all), so the history given is left alone.
 */
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils';
import { temporal } from '@temporalio/proto';

const isPayload = (value: object): value is Payload =>
  'metadata' in value && 'data' in value && typeof value.metadata === 'object' && value.metadata !== null;

async function decodeInPlace(value: unknown, codecs: readonly PayloadCodec[]): Promise<void> {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return;
  if (Array.isArray(value)) {
    await Promise.all(value.map((item) => decodeInPlace(item, codecs)));
    return;
  }
  if (isPayload(value)) {
    let payloads: Payload[] = [value];
    for (const codec of [...codecs].reverse()) payloads = await codec.decode(payloads);
    value.metadata = payloads[0]!.metadata ?? {};
    value.data = payloads[0]!.data ?? new Uint8Array();
    return;
  }
  await Promise.all(Object.values(value).map((item) => decodeInPlace(item, codecs)));
}

export async function decodeHistory(history: History, codecs: readonly PayloadCodec[]): Promise<History> {
  if (codecs.length === 0) return history;
  const HistoryProto = temporal.api.history.v1.History;
  const copy = HistoryProto.decode(HistoryProto.encode(history).finish());
  await decodeInPlace(copy, codecs);
  return copy;
}
