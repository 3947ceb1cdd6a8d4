import type { Logger } from '../lib/logger';
import type { OutboxFence } from '../store/outbox';
import type { Pool } from '../store/pool';
import {
  heartbeat,
  leaveRelayMembers,
  releasePartitions,
  takePartitions,
  type HeldLease,
} from '../store/relay-lease';
import { describeError } from './describe-error';
import { planRebalance } from './shares';
import { sleep } from './timing';

/**
 * This relay's leases on outbox partitions, kept by a heartbeat of its own (relay/relay.ts,
 * point 5). Every `heartbeatMs` it tells the database it is alive and extends the leases it
 * still holds by `ttlMs`, reads who else is alive, and takes or gives back partitions toward
 * its share (relay/shares.ts).
 *
 * Fencing. The database refuses this relay's writes to a partition's rows once its lease
 * expired or changed hands (store/outbox.ts, OutboxFence). Publishing to NATS cannot be
 * fenced by the database, so this relay stops itself first: a lease counts as held here
 * only until `ttlMs - marginMs` after the heartbeat that last extended it was *sent*, which
 * is before the database lets anyone else take it (`ttlMs` after that heartbeat ran). A
 * relay that is paused (GC, SIGSTOP, a slow host) finds its leases lapsed when it resumes,
 * on the monotonic clock, before its next publish. A lease it gives back is dropped here
 * before the database hears of it. This compares time elapsed here with time elapsed on the
 * database's clock: a step of that clock larger than the margin (a badly kept NTP) could
 * let a lease end there before it ends here.
 */
export interface PartitionKeeper {
  readonly memberId: string;
  /** Joins (the first heartbeat, logged if it fails) and keeps the heartbeat going. */
  start(): Promise<void>;
  /**
   * Stops the heartbeat, gives every lease back and leaves, so others take over at once;
   * `settled`: the partitions whose every send is marked or recorded (relay.ts, point 6).
   */
  stop(settled?: readonly number[]): Promise<void>;
  /** The leases held now, for the database to check this relay's statements against. */
  fence(): OutboxFence;
  /** Whether this relay may still send a row of `partition` to NATS right now. */
  holds(partition: number): boolean;
  /** The partitions held now, ascending. */
  held(): number[];
}

export interface PartitionKeeperOptions {
  /** How long a heartbeat keeps a relay alive and its leases held (RELAY_LEASE_TTL). */
  ttlMs: number;
  /** How often the heartbeat runs (RELAY_HEARTBEAT_INTERVAL). */
  heartbeatMs: number;
  /** How much earlier than the database this relay considers its own leases lapsed. */
  marginMs: number;
}

interface Holding {
  epoch: number;
  /** performance.now() after which the lease no longer counts as held here. */
  until: number;
}

export function createPartitionKeeper(deps: {
  pool: Pool;
  logger: Logger;
  memberId: string;
  options: PartitionKeeperOptions;
  /** Called after partitions were taken (so the relay runs a batch for them now). */
  onGained: () => void;
}): PartitionKeeper {
  const { pool, logger, memberId, options } = deps;
  const holdings = new Map<number, Holding>();
  let abort = new AbortController();
  let loop: Promise<void> | undefined;
  let failing = false;
  let lastBeatAt = 0;

  const validFor = (sentAt: number): number => sentAt + options.ttlMs - options.marginMs;
  const current = (): [number, Holding][] =>
    [...holdings].filter(([, holding]) => holding.until > performance.now());

  async function beat(): Promise<void> {
    const sentAt = performance.now();
    const state = await heartbeat(pool, memberId, options.ttlMs);
    const renewed = new Map(state.renewed.map((lease) => [lease.partition, lease.epoch]));
    for (const [partition, holding] of holdings) {
      if (renewed.get(partition) !== holding.epoch) {
        holdings.delete(partition);
        logger.warn({ partition }, 'lost an outbox partition lease (expired before it was renewed)');
      }
    }
    for (const [partition, epoch] of renewed) holdings.set(partition, { epoch, until: validFor(sentAt) });

    const plan = planRebalance(memberId, state.members, state.leases);
    if (plan.release.length > 0) {
      const released: HeldLease[] = plan.release.flatMap((partition) => {
        const holding = holdings.get(partition);
        holdings.delete(partition); // no publish of it from here on, before anyone may take it
        return holding ? [{ partition, epoch: holding.epoch }] : [];
      });
      await releasePartitions(pool, memberId, released);
      logger.info({ released: plan.release, members: state.members.length }, 'gave back outbox partitions');
    }
    if (plan.take.length > 0) {
      const takenAt = performance.now();
      const taken = await takePartitions(pool, memberId, plan.take, options.ttlMs);
      for (const lease of taken)
        holdings.set(lease.partition, { epoch: lease.epoch, until: validFor(takenAt) });
      if (taken.length > 0) {
        logger.info(
          {
            taken: taken.map((lease) => lease.partition),
            held: holdings.size,
            members: state.members.length,
          },
          'took outbox partitions',
        );
        deps.onGained();
      }
    }
  }

  async function beatLogged(): Promise<void> {
    try {
      await beat();
      if (failing) logger.info('relay heartbeat works again');
      failing = false;
    } catch (error) {
      if (!failing) logger.warn({ err: describeError(error) }, 'relay heartbeat failed; retrying');
      failing = true;
    }
  }

  /** One heartbeat every heartbeatMs, counted from the start of the previous one. */
  async function keep(): Promise<void> {
    while (!abort.signal.aborted) {
      await sleep(Math.max(0, options.heartbeatMs - (performance.now() - lastBeatAt)), abort.signal);
      if (abort.signal.aborted) return;
      lastBeatAt = performance.now();
      await beatLogged();
    }
  }

  return {
    memberId,
    async start() {
      if (loop !== undefined) return;
      abort = new AbortController();
      lastBeatAt = performance.now();
      await beatLogged();
      loop = keep();
    },
    async stop(settled = []) {
      if (loop === undefined) return;
      abort.abort();
      await loop;
      loop = undefined;
      const leases = [...holdings].map(([partition, holding]) => ({ partition, epoch: holding.epoch }));
      holdings.clear();
      try {
        await releasePartitions(pool, memberId, leases, settled);
        await leaveRelayMembers(pool, memberId);
        logger.info({ released: leases.map((lease) => lease.partition) }, 'left the relays');
      } catch (error) {
        logger.warn({ err: describeError(error) }, 'could not give the partitions back; they expire instead');
      }
    },
    fence: () => {
      const held = current();
      return {
        owner: memberId,
        epochs: held.map(([, holding]) => holding.epoch),
        partitions: held.map(([partition]) => partition),
      };
    },
    holds: (partition) => (holdings.get(partition)?.until ?? 0) > performance.now(),
    held: () =>
      current()
        .map(([partition]) => partition)
        .sort((a, b) => a - b),
  };
}
