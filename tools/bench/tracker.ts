/**
 * Follows each order to its end without polling the API: the bench consumes stream ORDERS
 * like any other consumer and matches events to orders by aggregateId. The terminal event
 * (OrderCompleted, OrderFailed, OrderCancelled) gives when the saga ended (its occurredAt)
 * and every event gives the outbox lag (stream timestamp − occurredAt).
 */
import { DeliverPolicy, jetstream, type ConsumerMessages } from '@nats-io/jetstream';
import { answerWithin } from '../fixtures/eventually';
import type { OutboxMessage } from '../../store/outbox';
import { STREAM_NAME, SUBJECT_PREFIX } from '../../contracts/index';
import type { NatsConnection } from '../../relay/stream';
import type { OrderSample, TerminalStatus } from './lib/step';

const TERMINAL_EVENTS: Readonly<Record<string, TerminalStatus>> = {
  OrderCompleted: 'COMPLETED',
  OrderFailed: 'FAILED',
  OrderCancelled: 'CANCELLED',
};

/** What arrived for an id before the request that created it returned. */
interface EarlyNews {
  status?: TerminalStatus;
  doneAtMs?: number;
  publishedAtMs?: number;
  lagsMs: number[];
}

export class Tracker {
  /** Accepted orders that have not finished yet, by id. */
  private readonly open = new Map<string, OrderSample>();
  private readonly early = new Map<string, EarlyNews>();
  /**
   * While false, news of unknown ids is dropped (the direct baseline and the drain test
   * write events the bench never asked for); while true it is kept until its id arrives.
   */
  capturing = false;

  /** An accepted request: from now on its news goes to `sample`. */
  add(id: string, sample: OrderSample): void {
    const news = this.early.get(id);
    this.early.delete(id);
    if (news !== undefined) {
      sample.lagsMs.push(...news.lagsMs);
      if (news.status !== undefined) {
        sample.status = news.status;
        sample.doneAtMs = news.doneAtMs;
        sample.publishedAtMs = news.publishedAtMs;
        return;
      }
    }
    this.open.set(id, sample);
  }

  /** The id reached a terminal state at `doneAtMs` (first report wins: duplicates are ignored). */
  finish(id: string, status: TerminalStatus, doneAtMs: number, publishedAtMs: number): void {
    const target = this.open.get(id) ?? this.earlyFor(id);
    if (target === undefined || target.status !== undefined) return;
    target.status = status;
    target.doneAtMs = doneAtMs;
    target.publishedAtMs = publishedAtMs;
    this.open.delete(id);
  }

  lag(id: string, lagMs: number): void {
    (this.open.get(id) ?? this.earlyFor(id))?.lagsMs.push(lagMs);
  }

  /** Accepted orders (of any step) still running: the backlog the bench itself left. */
  outstanding(): number {
    return this.open.size;
  }

  /** Stops waiting for every open order (e.g. bare runs whose worker was stopped). */
  abandon(): number {
    const count = this.open.size;
    this.open.clear();
    return count;
  }

  /** Drops news of ids that never showed up (requests that failed after their saga started). */
  clearEarly(): void {
    this.early.clear();
  }

  /** Resolves once every accepted sample has finished, or at the deadline (false). */
  async waitUntilFinished(
    samples: readonly OrderSample[],
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<boolean> {
    return this.waitFor(
      () => samples.some((sample) => sample.acceptedAtMs !== undefined && sample.status === undefined),
      timeoutMs,
      signal,
    );
  }

  /** Resolves once no accepted order of any step is running, or at the deadline (false). */
  async waitUntilIdle(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    return this.waitFor(() => this.open.size > 0, timeoutMs, signal);
  }

  /** True once `busy` is false; false at the deadline (the caller reports what is unfinished). */
  private async waitFor(busy: () => boolean, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const idle = await answerWithin('the tracked orders finished', () => !busy(), {
      timeoutMs,
      intervalMs: 50,
      signal,
    });
    return idle === true;
  }

  private earlyFor(id: string): EarlyNews | undefined {
    if (!this.capturing) return undefined;
    let news = this.early.get(id);
    if (news === undefined) {
      news = { lagsMs: [] };
      this.early.set(id, news);
    }
    return news;
  }
}

export interface StreamFollower {
  /** Messages that could not be read as an outbox event. */
  readonly malformed: number;
  stop(): Promise<void>;
}

/**
 * An ordered (ephemeral, flow-controlled) consumer of every new event on ORDERS, feeding
 * the tracker. Publish time is the message's stream timestamp, i.e. when JetStream stored
 * it, which is just before the relay's PubAck.
 */
export async function followStream(nats: NatsConnection, tracker: Tracker): Promise<StreamFollower> {
  const consumer = await jetstream(nats).consumers.get(STREAM_NAME, {
    filter_subjects: [`${SUBJECT_PREFIX}.>`],
    deliver_policy: DeliverPolicy.New,
  });
  const messages: ConsumerMessages = await consumer.consume();
  let malformed = 0;
  const loop = (async () => {
    for await (const message of messages) {
      let event: OutboxMessage;
      try {
        event = message.json<OutboxMessage>();
      } catch {
        malformed++;
        continue;
      }
      const occurredAtMs = Date.parse(event.occurredAt);
      const publishedAtMs = Number(message.timestampNanos / 1_000n) / 1_000;
      if (typeof event.aggregateId !== 'string' || !Number.isFinite(occurredAtMs)) {
        malformed++;
        continue;
      }
      tracker.lag(event.aggregateId, publishedAtMs - occurredAtMs);
      const status = TERMINAL_EVENTS[event.type];
      if (status !== undefined) tracker.finish(event.aggregateId, status, occurredAtMs, publishedAtMs);
    }
  })();
  return {
    get malformed() {
      return malformed;
    },
    async stop() {
      messages.stop();
      await loop.catch(() => undefined);
    },
  };
}
