/**
 * A history with every payload decoded by the given codecs (lib/payload-codec.ts), for
 * code that reads payloads straight from a fetched history (the bench's saga template, the
 * tests). Any object shaped like a payload (`metadata` and `data`) is decoded; the codec
 * leaves payloads it did not encrypt (search attributes, headers, old histories) as they are.
 */
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils';

const isPayload = (value: object): value is Payload =>
  'metadata' in value && 'data' in value && typeof value.metadata === 'object' && value.metadata !== null;

async function decodeTree(value: unknown, codecs: readonly PayloadCodec[]): Promise<unknown> {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return Promise.all(value.map((item) => decodeTree(item, codecs)));
  if (isPayload(value)) {
    let payloads = [value];
    for (const codec of [...codecs].reverse()) payloads = await codec.decode(payloads);
    return payloads[0];
  }
  const entries = await Promise.all(
    Object.entries(value).map(async ([key, item]) => [key, await decodeTree(item, codecs)] as const),
  );
  return Object.fromEntries(entries);
}

export async function decodeHistory(history: History, codecs: readonly PayloadCodec[]): Promise<History> {
  if (codecs.length === 0) return history;
  return (await decodeTree(history, codecs)) as History;
}
