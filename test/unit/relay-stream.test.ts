import type { JetStreamManager, StreamConfig, StreamInfo } from '@nats-io/jetstream';
import { DEFAULT_DUPLICATE_WINDOW_MS, ensureOrdersStream, ORDERS_SUBJECTS } from '../../relay/stream';

/**
 * ensureOrdersStream's replicas (NATS_STREAM_REPLICAS): a new stream gets them, an existing
 * one is brought to them, and without them an existing stream's replicas stay as they are.
 * JetStream is a fake holding one stream (a single-node server refuses replicas > 1, so the
 * integration band cannot show this).
 */

function fakeJetStreamManager(existing?: Partial<StreamConfig>) {
  const calls: { add: Partial<StreamConfig>[]; update: Partial<StreamConfig>[] } = { add: [], update: [] };
  const info = (config: Partial<StreamConfig>) => ({ config }) as unknown as StreamInfo;
  const notFound = Object.assign(new Error('stream not found'), { code: 10059 });
  const jsm = {
    streams: {
      info: () => (existing ? Promise.resolve(info(existing)) : Promise.reject(notFound)),
      add: (config: Partial<StreamConfig>) => {
        calls.add.push(config);
        return Promise.resolve(info(config));
      },
      update: (_name: string, config: Partial<StreamConfig>) => {
        calls.update.push(config);
        return Promise.resolve(info(config));
      },
    },
  } as unknown as JetStreamManager;
  return { jsm, calls };
}

const upToDate = {
  name: 'ORDERS',
  subjects: ORDERS_SUBJECTS,
  duplicate_window: DEFAULT_DUPLICATE_WINDOW_MS * 1_000_000,
  num_replicas: 1,
};

test('when an existing stream has fewer replicas than asked for, then it is updated to them, keeping the rest', async () => {
  const { jsm, calls } = fakeJetStreamManager(upToDate);
  await ensureOrdersStream(jsm, { replicas: 3 });
  expect(calls.update).toEqual([{ ...upToDate, num_replicas: 3 }]);
});

test('when no replicas are asked for, then an existing stream keeps its own', async () => {
  const { jsm, calls } = fakeJetStreamManager({ ...upToDate, num_replicas: 3 });
  await ensureOrdersStream(jsm);
  expect(calls.update).toEqual([]);
});

test('when the existing stream already has the replicas asked for, then nothing changes', async () => {
  const { jsm, calls } = fakeJetStreamManager({ ...upToDate, num_replicas: 3 });
  await ensureOrdersStream(jsm, { replicas: 3 });
  expect(calls.update).toEqual([]);
});
