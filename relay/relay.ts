/**
 * The outbox relay: publishes committed `outbox` rows to JetStream stream ORDERS.
 *
 * Why every committed event reaches the stream once, in order per order
 * ---------------------------------------------------------------------
 * 1. Per-order order. appendEvent (store/outbox.ts) numbers an order's events while holding
 *    that order's row lock, so event n+1 of an order can only be written after the
 *    transaction holding n committed (or rolled back, in which case n+1 takes number n).
 *    The committed events of one order are therefore always a gap-free prefix 1..k, and
 *    within one order `position` grows with `sequence`.
 * 2. Nothing is skipped. The relay does not advance a cursor over `position` (a
 *    transaction that took a small position but commits late would fall behind it);
 *    every batch scans all rows that are still unpublished, in `position` order.
 * 3. Nothing overtakes. A row is only selected when no earlier event of its order is
 *    still unpublished outside the batch (waiting for a retry, or parked). Within a batch
 *    an order's events are published one after another, each after the PubAck of the
 *    previous one, and after a failure that order's later events stay for a later batch.
 *    So event n+1 is only ever sent once event n is on the stream.
 * 4. Once, however long it takes. Each message carries `Nats-Msg-Id` = the row id, and
 *    JetStream drops a re-publish of an id within the stream's duplicate window
 *    (relay/stream.ts). A lost PubAck, or a crash (or lost Postgres connection) between
 *    the PubAck and the UPDATE that marks the rows, only means the batch is published
 *    again, and JetStream acknowledges it as a duplicate, which we count as published.
 *    The window alone has a time limit: after an outage longer than it, a blind re-publish
 *    would be stored as new. So the relay knows, for every row, how long ago its earliest
 *    attempt that nobody marked may have been made, at the most, and the stream's last
 *    sequence before it (`publish_floor_seq`; a copy stored later gets a higher one): from
 *    the row's own record (`publish_attempted_at`), else its partition's checkpoint (point
 *    6), without a write before each publish. A row whose attempt may be older than the
 *    window minus a margin is not re-published blind: the relay first reads the row's
 *    subject after that sequence, headers only, for its `Nats-Msg-Id`
 *    (relay/stream-lookup.ts). Found: marked published, not sent. Not found: no attempt
 *    landed, and the row is published. A row whose window runs out while its batch is
 *    under way is left for the next batch (publisher.ts, `sendBefore`). Both ages are
 *    measured on the database's clock; the window is the shorter of the relay's setting
 *    and the stream's own.
 * 5. Partitions, one relay each at a time. The outbox is split into 16 partitions by order
 *    (migrations/0007), so all of an order's events are in one partition. Relays find each
 *    other through the database (`relay_members`, a heartbeat each) and share the
 *    partitions (relay/shares.ts): each holds the leases of about 16 / n of them
 *    (`outbox_partitions`), renewed every RELAY_HEARTBEAT_INTERVAL (0.5 s) for
 *    RELAY_LEASE_TTL (2.5 s); a relay that dies stops renewing, and a live one takes its
 *    partitions once they expire, within TTL + one heartbeat; shares rebalance the same way
 *    when a relay joins (the others give back their extras) or leaves. A batch reads only
 *    the partitions this relay holds, and every write it makes (tenure, marks, records,
 *    failures) is fenced in SQL by the lease's owner and epoch, so a relay that lost a
 *    partition can mark nothing in it. It also sends nothing of it: a lease counts as held
 *    locally only until TTL minus a margin after the heartbeat that renewed it was sent, on
 *    the monotonic clock, which ends before the database frees the lease; the publisher
 *    asks before every send (relay/partitions.ts). With one partition published in order
 *    by one relay at a time, points 1-4 hold per partition as they did for the one active
 *    relay. Should a send slip through anyway (a process frozen between that check and the
 *    socket write), it is a re-send of a row the new holder publishes too, and the
 *    duplicate window drops whichever copy comes second, as it drops any re-send.
 * 6. Few writes. A relay does not write before it publishes; it settles afterwards, at most
 *    `markDelayMs` (200 ms) later or once a batch's worth waits, in one statement for
 *    all its batches since the last: the rows on the stream are marked published, each
 *    attempt whose outcome it does not know (no PubAck, a refusal) is recorded on its row,
 *    and the checkpoint of each partition involved moves to now and the stream's last
 *    sequence it knows (migrations/0008). The checkpoint says: every attempt in this
 *    partition that is neither marked nor recorded on its row came after it, and so did
 *    any copy it stored. That holds because settling happens only between batches (no
 *    attempt in flight) and covers every attempt so far. Rows waiting to be marked are
 *    left out of the relay's own next batches (they are on the stream). Taking over a
 *    partition, a relay first begins its tenure: it copies the checkpoint the previous
 *    holder left onto the partition's pending rows (what that holder may have sent and
 *    never settled) and starts the checkpoint afresh, in one statement, before it sends
 *    anything. A relay that leaves with everything settled clears the checkpoint, so the
 *    next holder inherits nothing. A crash before settling only means a re-send, as in
 *    point 4.
 * Events of rolled-back transactions are never visible to the relay's queries.
 *
 * This file is the loop; partitions.ts holds the leases (shares.ts says which), listener.ts
 * wakes the loop on new rows, publisher.ts talks to JetStream, metrics.ts reports, and the
 * SQL is in store/outbox.ts and store/relay-lease.ts.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { jetstream } from '@nats-io/jetstream';
import { register as defaultRegistry } from 'prom-client';
import {
  beginTenure,
  deleteExpiredEvents,
  recordPublishFailures,
  selectPendingEvents,
  settlePublished,
  type OutboxFence,
  type PendingOutboxRow,
  type UnmarkedAttempt,
} from '../store/outbox';
import { describeError } from './describe-error';
import { openOutboxListener, type OutboxListener } from './listener';
import { createRelayMetrics } from './metrics';
import { createPartitionKeeper } from './partitions';
import { isNatsUnavailable, NatsUnavailableError, publishRows, type FailedRow } from './publisher';
import { findOnStream, readStreamPosition, type StreamPosition } from './stream-lookup';
import { backoffDelay, sleep, Wakeup } from './timing';
import { DEFAULT_RELAY_OPTIONS, type OutboxRelay, type RelayDeps, type RelayOptions } from './options';

export { NatsUnavailableError } from './publisher';

export {
  DEFAULT_RELAY_OPTIONS,
  retryHorizonMs,
  type OutboxRelay,
  type RelayDeps,
  type RelayOptions,
} from './options';

export function createOutboxRelay(deps: RelayDeps): OutboxRelay {
  const options: RelayOptions = { ...DEFAULT_RELAY_OPTIONS, ...deps.options };
  const { pool, nats } = deps;
  const relayId = deps.relayId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const logger = deps.logger.child({ component: 'outbox-relay', relay: relayId });
  const js = jetstream(nats);
  const wakeup = new Wakeup();
  const exclusive = serialized();
  const keeper = createPartitionKeeper({
    pool,
    logger,
    memberId: relayId,
    options: {
      ttlMs: options.leaseTtlMs,
      heartbeatMs: options.heartbeatIntervalMs,
      marginMs: options.leaseMarginMs,
    },
    onGained: () => wakeup.notify(),
  });
  const metrics = createRelayMetrics(deps.registry ?? defaultRegistry, pool, logger, () => keeper.held());

  let abort = new AbortController();
  let loop: Promise<void> | undefined;

  /**
   * The stream's last sequence as far as this relay knows (a floor for anything it
   * publishes next) and its duplicate window; read from the stream when unknown, i.e. at
   * first and after an outage, and raised by every PubAck. `floorSeq` is the highest ever
   * known, kept through outages (the stream's sequence only grows).
   */
  let position: StreamPosition | undefined;
  let floorSeq = 0;
  async function streamPosition(): Promise<StreamPosition> {
    position ??= await readStreamPosition(await js.jetstreamManager(false));
    floorSeq = Math.max(floorSeq, position.lastSeq);
    return position;
  }

  /** NATS errors outside a publish (position, lookup) mean the same as inside one. */
  async function talkingToNats<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (isNatsUnavailable(error, nats)) throw new NatsUnavailableError(error);
      throw error;
    }
  }

  /**
   * What this relay sent and has not settled yet (point 6): rows on the stream, not marked
   * yet (by id, their partition), and attempts whose outcome it does not know, not recorded
   * yet. Settled together, in one statement, at most `markDelayMs` after the first of them.
   */
  const unmarkedPublished = new Map<string, number>();
  let unrecorded: (UnmarkedAttempt & { partition: number })[] = [];
  let unsettledSince: number | undefined;
  let settleTimer: NodeJS.Timeout | undefined;
  /** The partitions whose tenure this relay began (point 6), with that tenure's epoch. */
  const begun = new Map<number, number>();

  /**
   * Begins the tenure of the partitions taken since the last batch (store/outbox.ts,
   * beginTenure); returns whether a partition's rows may be sent in this batch.
   */
  async function beginTenures(fence: OutboxFence): Promise<(partition: number) => boolean> {
    const epochOf = new Map(fence.partitions.map((partition, index) => [partition, fence.epochs[index]!]));
    const fresh = [...epochOf].filter(([partition, epoch]) => begun.get(partition) !== epoch);
    if (fresh.length > 0) {
      const started = await beginTenure(
        pool,
        {
          owner: fence.owner,
          partitions: fresh.map(([partition]) => partition),
          epochs: fresh.map(([, epoch]) => epoch),
        },
        floorSeq,
      );
      for (const [partition, epoch] of fresh) if (started.has(partition)) begun.set(partition, epoch);
    }
    return (partition) => begun.get(partition) === epochOf.get(partition);
  }

  /**
   * Of `rows` whose earliest unrecorded attempt may be older than the window minus the
   * margin, the ids found on the stream (or, if JetStream refused the lookup, held back as
   * failed attempts); and when the others' windows run out.
   */
  async function planBatch(rows: PendingOutboxRow[], selectedAt: number, window: StreamPosition) {
    const windowMs = Math.min(options.duplicateWindowMs, window.duplicateWindowMs);
    const coveredMs = windowMs - Math.min(options.duplicateWindowMarginMs, windowMs / 2);
    const uncovered: PendingOutboxRow[] = [];
    const sendBefore = new Map<string, number>();
    for (const row of rows) {
      if (row.attempt_age_ms === null) continue;
      if (row.attempt_age_ms >= coveredMs) uncovered.push(row);
      else sendBefore.set(row.id, selectedAt + coveredMs - row.attempt_age_ms);
    }
    const plan = {
      onStream: new Set<string>(),
      held: new Set<string>(),
      sendBefore,
      lookupFailures: [] as FailedRow[],
    };
    if (uncovered.length === 0) return plan;
    try {
      const jsm = await js.jetstreamManager(false);
      const lookups = uncovered.map((row) => ({
        id: row.id,
        subject: row.subject,
        floorSeq: row.publish_floor_seq ?? 0,
      }));
      plan.onStream = await findOnStream(js, jsm, lookups, options.publishTimeoutMs);
    } catch (error) {
      if (isNatsUnavailable(error, nats)) throw new NatsUnavailableError(error);
      // JetStream answered but would not let us look: those rows (and their orders' later
      // events) wait, counted as failed attempts like a refused publish, so the rest of the
      // batch goes on and a lookup that never works ends in a parked event, not a stuck relay.
      plan.held = new Set(uncovered.map((row) => row.id));
      plan.lookupFailures = uncovered.map((row) => ({ row, error }));
      return plan;
    }
    metrics.lookups.inc({ result: 'found' }, plan.onStream.size);
    metrics.lookups.inc({ result: 'absent' }, uncovered.length - plan.onStream.size);
    logger.info(
      { lookedUp: uncovered.length, found: plan.onStream.size, windowMs },
      'looked up events on the stream whose earlier publish the duplicate window no longer covers',
    );
    return plan;
  }

  /**
   * One batch over the partitions held now: select, begin new tenures, look up, publish per
   * order in sequence. What it sent is settled later (settle); its failures now.
   */
  async function relayBatch(): Promise<{ selected: number; published: number }> {
    const fence = keeper.fence();
    // No later than the database measured the rows' ages: deadlines err early.
    const selectedAt = performance.now();
    const rows = await selectPendingEvents(pool, fence, options.batchSize, [...unmarkedPublished.keys()]);
    if (rows.length === 0) return { selected: 0, published: 0 };
    const known = await talkingToNats(streamPosition);
    const mayBegin = await beginTenures(fence);
    const plan = await planBatch(rows, selectedAt, known);
    // Rows of a partition whose tenure the database refused (the lease went) are not sent.
    const held = new Set([...plan.held, ...rows.filter((row) => !mayBegin(row.partition)).map((row) => row.id)]);
    const attempt = { attemptedSince: rows[0]!.selected_at, floorSeq: known.lastSeq };
    const outcome = await publishRows(
      js,
      nats,
      rows,
      { ...plan, held, holds: (partition) => keeper.holds(partition) },
      options,
    );
    known.lastSeq = Math.max(known.lastSeq, outcome.highestSeq);
    floorSeq = Math.max(floorSeq, known.lastSeq);
    metrics.duplicates.inc(outcome.duplicates);
    for (const row of outcome.published) {
      unmarkedPublished.set(row.id, row.partition);
      const ackedAt = outcome.ackedAt.get(row.id);
      if (ackedAt !== undefined) metrics.lag.observe((row.age_ms + ackedAt - selectedAt) / 1000);
    }
    // A refused publish or one without a PubAck may still have landed: recorded at settle.
    for (const row of [...outcome.failed.map(({ row }) => row), ...outcome.uncertain]) {
      unrecorded.push({ id: row.id, partition: row.partition, ...attempt });
    }
    if (unmarkedPublished.size > 0 || unrecorded.length > 0) unsettledSince ??= performance.now();
    const failed = [...plan.lookupFailures, ...outcome.failed];
    if (failed.length > 0) {
      metrics.failures.inc(failed.length);
      await recordFailures(fence, failed);
    }
    if (outcome.outage !== undefined) {
      metrics.failures.inc();
      position = undefined; // read again once NATS is back
      // Record what may have landed now, while the database answers; kept for later if not.
      await settle().catch((error: unknown) =>
        logger.warn({ err: describeError(error) }, 'could not record the attempts of a failed batch yet'),
      );
      throw new NatsUnavailableError(outcome.outage.error);
    }
    return { selected: rows.length, published: outcome.published.length };
  }

  /**
   * Marks what is on the stream, records the attempts whose outcome is unknown and moves
   * the checkpoints, in one statement (store/outbox.ts, settlePublished). Only between
   * batches, so every attempt so far is in it. Rows of partitions no longer held are left
   * to their new holder. Returns how many rows it marked.
   */
  async function settle(): Promise<number> {
    clearTimeout(settleTimer);
    settleTimer = undefined;
    if (unmarkedPublished.size === 0 && unrecorded.length === 0) return 0;
    const fence = keeper.fence();
    const holding = new Set(fence.partitions);
    const publishedIds = [...unmarkedPublished].filter(([, p]) => holding.has(p)).map(([id]) => id);
    const unmarked = unrecorded.filter((attempt) => holding.has(attempt.partition));
    const partitions = [
      ...new Set([...unmarkedPublished.values(), ...unrecorded.map((attempt) => attempt.partition)]),
    ].filter((partition) => holding.has(partition));
    const marked = await settlePublished(pool, fence, {
      publishedIds,
      unmarked,
      partitions,
      floorSeq,
    });
    unmarkedPublished.clear();
    unrecorded = [];
    unsettledSince = undefined;
    metrics.published.inc(marked.length);
    for (const { partition } of marked) metrics.partitionPublished.inc({ partition });
    return marked.length;
  }

  /** Settles now if a batch's worth or something unrecorded waits, or the oldest is due; else later. */
  async function settleIfDue(): Promise<void> {
    if (unsettledSince === undefined) return;
    const waited = performance.now() - unsettledSince;
    if (unrecorded.length > 0 || unmarkedPublished.size >= options.batchSize || waited >= options.markDelayMs) {
      await settle();
      return;
    }
    settleTimer ??= setTimeout(() => {
      settleTimer = undefined;
      void exclusive(settleIfDue).catch((error: unknown) => {
        logger.warn({ err: describeError(error) }, 'could not mark published outbox rows; retrying');
        settleTimer ??= setTimeout(() => void exclusive(settleIfDue).catch(() => undefined), options.pollIntervalMs);
      });
    }, options.markDelayMs - waited);
  }

  /** Batches until less than a full batch is pending, then settles; returns the rows marked. */
  async function drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const batch = await relayBatch();
      if (unmarkedPublished.size >= options.batchSize) total += await settle();
      // A full batch with no progress (all failed, or its leases lost): stop rather than spin.
      if (batch.selected < options.batchSize || batch.published === 0) break;
    }
    return total + (await settle());
  }

  /** A live listener: the one given, or a new one when it is gone (undefined if that fails). */
  async function listening(listener: OutboxListener | undefined): Promise<OutboxListener | undefined> {
    if (listener?.alive) {
      await listener.checkAlive(options.heartbeatIntervalMs * 2);
      if (listener.alive) return listener;
    }
    await listener?.close();
    return openOutboxListener(pool, () => wakeup.notify()).catch((error: unknown) => {
      logger.warn({ err: describeError(error) }, 'could not listen for outbox inserts; polling');
      return undefined;
    });
  }

  /**
   * The loop, while the relay runs: a batch over its partitions, the housekeeping, then
   * (once caught up) a wait for NOTIFY, new partitions, or the poll interval.
   */
  async function work(): Promise<void> {
    let listener: OutboxListener | undefined;
    let failures = 0;
    let lastCleanup = 0;
    try {
      while (!abort.signal.aborted) {
        listener = await listening(listener);
        if (keeper.held().length === 0) {
          await wakeup.wait(options.pollIntervalMs, abort.signal);
          continue;
        }
        let batch: { selected: number; published: number };
        try {
          batch = await exclusive(async () => {
            const done = await relayBatch();
            await settleIfDue();
            return done;
          });
        } catch (error) {
          failures++;
          const level = error instanceof NatsUnavailableError ? 'warn' : 'error';
          logger[level](
            { err: describeError(error), consecutiveFailures: failures },
            'relay batch failed; backing off',
          );
          // A plain sleep, not the wakeup: new rows must not cut an outage backoff short.
          await sleep(
            backoffDelay(failures, options.pollIntervalMs, options.outageBackoffMaxMs),
            abort.signal,
          );
          continue;
        }
        if (failures > 0) logger.info({ after: failures }, 'relay batches succeed again');
        failures = 0;
        // One relay at a time cleans up: the one holding partition 0.
        if (keeper.holds(0) && Date.now() - lastCleanup >= options.cleanupIntervalMs) {
          lastCleanup = Date.now();
          await cleanup();
        }
        const caughtUp = batch.selected < options.batchSize || batch.published === 0;
        if (caughtUp) await wakeup.wait(options.pollIntervalMs, abort.signal);
      }
    } finally {
      await listener?.close();
    }
  }

  /** Counts a failed attempt per row, schedules its retry, and parks it after maxAttempts. */
  async function recordFailures(fence: OutboxFence, failed: FailedRow[]): Promise<void> {
    const recorded = await recordPublishFailures(
      pool,
      fence,
      failed.map(({ row, error }) => ({
        id: row.id,
        error: describeError(error),
        retryDelayMs: backoffDelay(row.attempts + 1, options.retryBaseMs, options.retryMaxMs),
      })),
      options.maxAttempts,
    );
    for (const row of recorded) {
      const fields = {
        eventId: row.id,
        orderId: row.aggregate_id,
        sequence: row.sequence,
        type: row.type,
        attempts: row.attempts,
        err: row.last_error,
      };
      if (row.parked)
        logger.error(fields, "outbox event parked: its order's later events wait until it is released");
      else logger.warn(fields, 'outbox event publish failed; will retry');
    }
  }

  /** Settles before leaving; the partitions it may give back with nothing to inherit. */
  async function settledPartitions(): Promise<number[]> {
    try {
      await settle();
      return keeper.held();
    } catch (error) {
      logger.warn({ err: describeError(error) }, 'could not mark published outbox rows before leaving');
      return [];
    } finally {
      clearTimeout(settleTimer);
      settleTimer = undefined;
    }
  }

  async function cleanup(): Promise<void> {
    try {
      const deleted = await deleteExpiredEvents(pool, options.retentionMs, abort.signal);
      if (deleted > 0) logger.info({ deleted }, 'deleted published outbox rows past retention');
    } catch (error) {
      logger.warn({ err: describeError(error) }, 'outbox cleanup failed');
    }
  }

  return {
    relayId,
    async start() {
      if (loop !== undefined) return;
      abort = new AbortController();
      await keeper.start();
      logger.info({ partitions: keeper.held() }, 'outbox relay joined');
      loop = work().catch((error: unknown) =>
        logger.error({ err: describeError(error) }, 'outbox relay stopped unexpectedly'),
      );
    },
    async stop() {
      if (loop === undefined) return;
      abort.abort();
      await loop;
      loop = undefined;
      // After any drainOnce under way: nothing of this relay's is in flight when it leaves.
      await exclusive(async () => keeper.stop(await settledPartitions()));
      logger.info('outbox relay left');
    },
    async drainOnce() {
      if (loop !== undefined) return exclusive(drain);
      return exclusive(async () => {
        await keeper.start();
        let settled: number[] = [];
        try {
          const marked = await drain();
          settled = keeper.held();
          return marked;
        } finally {
          await keeper.stop(settled);
        }
      });
    },
    heldPartitions: () => keeper.held(),
  };
}

/** Runs calls one at a time, in call order (the loop and drainOnce never overlap batches). */
function serialized(): <T>(work: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(work: () => Promise<T>): Promise<T> => {
    const result = tail.then(work, work);
    tail = result.catch(() => undefined);
    return result;
  };
}
