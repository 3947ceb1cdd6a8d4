import {
  JetStreamApiCodes,
  JetStreamApiError,
  StorageType,
  type JetStreamManager,
  type StreamInfo,
} from '@nats-io/jetstream';
import { STREAM_NAME, SUBJECT_PREFIX } from '../contracts/index';

/**
 * nats.js's connection type, imported (type only) from the package that defines it:
 * @nats-io/transport-node and @nats-io/jetstream refer to it through a package subpath
 * (`@nats-io/nats-core/internal`) that this repo's "node" module resolution cannot see,
 * which would leave it `any`.
 */
export type { NatsConnection } from '@nats-io/nats-core';

export const ORDERS_SUBJECTS = [`${SUBJECT_PREFIX}.>`];
export const DEFAULT_DUPLICATE_WINDOW_MS = 2 * 60 * 60 * 1_000;

/** JetStream's error code for "stream name already in use with a different configuration". */
const STREAM_NAME_IN_USE = 10058;

export interface OrdersStreamOptions {
  /**
   * How long JetStream remembers a `Nats-Msg-Id` and drops a re-publish of it. The relay
   * relies on it when it re-publishes after a crash between publish and mark; past it, the
   * relay looks the event up on the stream before re-publishing (relay/relay.ts, point 4),
   * so it is a cost, not a correctness setting: keep it longer than the relay's retry
   * horizon and most outages, and lookups stay rare. Default 2 h; tests shorten it.
   */
  duplicateWindowMs?: number;
  /**
   * Replicas in a clustered JetStream: a new stream gets them (default 1), an existing one is
   * brought to them; unset, an existing stream's replicas are left as they are.
   */
  replicas?: number;
}

/**
 * Creates stream ORDERS (file storage, subjects `orders.events.>`) or brings an existing
 * one's subjects and duplicate window to what we expect. Safe to run from several
 * processes at once: a lost creation race falls back to an update.
 */
export async function ensureOrdersStream(
  jsm: JetStreamManager,
  options: OrdersStreamOptions = {},
): Promise<StreamInfo> {
  const duplicateWindow = (options.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS) * 1_000_000; // nanoseconds
  const existing = await findStream(jsm);
  if (existing === undefined) {
    try {
      return await jsm.streams.add({
        name: STREAM_NAME,
        subjects: ORDERS_SUBJECTS,
        storage: StorageType.File,
        duplicate_window: duplicateWindow,
        num_replicas: options.replicas ?? 1,
      });
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === STREAM_NAME_IN_USE)) throw error;
    }
  }
  const current = existing ?? (await jsm.streams.info(STREAM_NAME));
  const { config } = current;
  const upToDate =
    config.duplicate_window === duplicateWindow &&
    config.subjects.length === ORDERS_SUBJECTS.length &&
    ORDERS_SUBJECTS.every((subject) => config.subjects.includes(subject)) &&
    (options.replicas === undefined || config.num_replicas === options.replicas);
  if (upToDate) return current;
  // Storage cannot change on update; everything else we do not manage is kept as it is.
  return jsm.streams.update(STREAM_NAME, {
    ...config,
    subjects: ORDERS_SUBJECTS,
    duplicate_window: duplicateWindow,
    ...(options.replicas !== undefined ? { num_replicas: options.replicas } : {}),
  });
}

async function findStream(jsm: JetStreamManager): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(STREAM_NAME);
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)
      return undefined;
    throw error;
  }
}
