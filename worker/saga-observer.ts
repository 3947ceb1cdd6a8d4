/**
 * What the worker sees of the saga, from the outside: an activity interceptor that watches
 * the saga's steps go by and turns them into metrics and log lines, without the workflow or
 * the activities knowing. It works with any workflow bundle (a workflow interceptor would
 * have to be bundled in).
 *
 * - completeOrder succeeding ends a saga COMPLETED; cancelOrder succeeding ends it with the
 *   outcome and failureReason the workflow passes it (it is the saga's last compensation).
 * - cancelOrder, releaseInventory, refundPayment and cancelShipment are compensations.
 *
 * A step that succeeded and is run again is seen twice: its completion was lost with a
 * crashed worker, an attempt outlived its timeout, or (local activities: createOrder,
 * reserveInventory, completeOrder) the workflow task that would have recorded it was lost.
 * Counts are at least once when that happens, exact otherwise.
 */
import type { Context } from '@temporalio/activity';
import type {
  ActivityExecuteInput,
  ActivityInboundCallsInterceptor,
  ActivityInterceptorsFactory,
  ActivityOutboundCallsInterceptor,
  GetLogAttributesInput,
  Next,
} from '@temporalio/worker';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Activities } from '../activities';
import { secondsSinceAccepted } from '../store/order-views';
import type { Pool } from '../store/pool';
import type { FailureReason, StepOutcome } from '../contracts/index';

export interface SagaMetrics {
  finished: Counter<'status' | 'failure_reason'>;
  duration: Histogram<'status'>;
  compensations: Counter<'compensation' | 'outcome'>;
}

/** The saga metrics, registered in `registry` (served on WORKER_METRICS_PORT). */
export function createSagaMetrics(registry: Registry): SagaMetrics {
  return {
    finished: new Counter({
      name: 'order_sagas_finished_total',
      help: 'Order sagas finished, by final status and failure reason (none unless FAILED)',
      labelNames: ['status', 'failure_reason'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'order_saga_duration_seconds',
      help: 'From the order being accepted to its saga finishing, by final status',
      labelNames: ['status'] as const,
      // Seconds for the usual path, up to a day for orders that wait for approval.
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1_800, 3_600, 21_600, 86_400],
      registers: [registry],
    }),
    compensations: new Counter({
      name: 'order_saga_compensations_total',
      help: 'Compensation activities run, by compensation and outcome (succeeded, failed: retried by the saga)',
      labelNames: ['compensation', 'outcome'] as const,
      registers: [registry],
    }),
  };
}

const COMPENSATIONS: ReadonlySet<string> = new Set([
  'cancelOrder',
  'releaseInventory',
  'refundPayment',
  'cancelShipment',
] satisfies (keyof Activities)[]);
const COMPLETE_ORDER: keyof Activities = 'completeOrder';
const CANCEL_ORDER: keyof Activities = 'cancelOrder';

/** The first argument of every saga activity: at least the order id. */
interface StepCall {
  orderId?: unknown;
  outcome?: unknown;
  failureReason?: unknown;
}

interface SagaEnding {
  status: 'COMPLETED' | 'FAILED' | 'CANCELLED';
  failureReason: FailureReason | null;
}

/** How the saga ended, when `activityType` succeeding with `result` ends it. */
export function sagaEnding(activityType: string, call: StepCall, result: unknown): SagaEnding | undefined {
  if (activityType === COMPLETE_ORDER && (result as StepOutcome | undefined)?.ok === true) {
    return { status: 'COMPLETED', failureReason: null };
  }
  if (activityType === CANCEL_ORDER && (call.outcome === 'FAILED' || call.outcome === 'CANCELLED')) {
    return {
      status: call.outcome,
      failureReason:
        call.outcome === 'FAILED' ? ((call.failureReason as FailureReason | null) ?? null) : null,
    };
  }
  return undefined;
}

export interface SagaObserverOptions {
  /** Reads when the order was accepted, for the saga's duration. */
  pool: Pool;
  /** Metrics to record; without them only log lines are written. */
  metrics?: SagaMetrics;
}

/**
 * The activity interceptors: every log line of a saga activity carries its orderId (the
 * SDK adds workflowId, activityType, attempt); each step logs its input at debug (payment
 * tokens redacted by the logger); a finished saga logs one info line and is counted.
 */
export function sagaObserver({ pool, metrics }: SagaObserverOptions): ActivityInterceptorsFactory {
  return (ctx: Context) => {
    let orderId: string | undefined;

    const finished = async (ending: SagaEnding): Promise<void> => {
      let seconds: number | undefined;
      if (metrics && orderId) {
        seconds = await secondsSinceAccepted(pool, orderId);
        if (seconds !== undefined) metrics.duration.observe({ status: ending.status }, seconds);
      }
      ctx.log.info('saga finished', {
        status: ending.status,
        failureReason: ending.failureReason,
        ...(seconds !== undefined ? { durationSeconds: Math.round(seconds * 1000) / 1000 } : {}),
      });
    };

    const inbound: ActivityInboundCallsInterceptor = {
      async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>) {
        const type = ctx.info.activityType;
        const call = (input.args[0] ?? {}) as StepCall;
        if (typeof call.orderId === 'string') orderId = call.orderId;
        ctx.log.debug('saga step started', { input: call });
        const compensation = COMPENSATIONS.has(type);
        let result: unknown;
        try {
          result = await next(input);
        } catch (error) {
          if (compensation) metrics?.compensations.inc({ compensation: type, outcome: 'failed' });
          throw error;
        }
        if (compensation) metrics?.compensations.inc({ compensation: type, outcome: 'succeeded' });
        const ending = sagaEnding(type, call, result);
        if (ending) {
          metrics?.finished.inc({ status: ending.status, failure_reason: ending.failureReason ?? 'none' });
          // Not awaited: the step's result goes back to Temporal at once; a lost duration
          // sample is only logged.
          finished(ending).catch((error: unknown) => {
            ctx.log.warn('saga duration not recorded', { error: String(error) });
          });
        }
        return result;
      },
    };

    const outbound: ActivityOutboundCallsInterceptor = {
      getLogAttributes(
        input: GetLogAttributesInput,
        next: Next<ActivityOutboundCallsInterceptor, 'getLogAttributes'>,
      ): Record<string, unknown> {
        const attributes: Record<string, unknown> = next(orderId ? { ...input, orderId } : input);
        return attributes;
      },
    };
    return { inbound, outbound };
  };
}
