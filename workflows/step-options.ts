/**
 * How the saga calls its activities: timeouts and retries, one option set per kind of call,
 * and the proxies built from them. Forward steps budget retries by time, so a database
 * outage shorter than the budget costs no order; business refusals are returned, never
 * retried. WAIT_CANCELLATION_COMPLETED everywhere a cancel can land: a step is never
 * reported cancelled while it may still commit.
 */
import {
  ActivityCancellationType,
  proxyActivities,
  proxyLocalActivities,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities';

const BACKOFF = { initialInterval: '200ms', backoffCoefficient: 2 } as const;
const WAIT = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;

/** Forward steps: 2 minutes of retries (longer than a Postgres restart), then step_timeout. */
export const STEP_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '2m',
  retry: { ...BACKOFF, maximumInterval: '5s' },
  cancellationType: WAIT,
};
/** Payment: heartbeats carry the cancel to the gateway call; a gateway down for a minute fails the order rather than hold its stock. */
export const PAYMENT_OPTIONS: ActivityOptions = {
  ...STEP_OPTIONS,
  startToCloseTimeout: '3s',
  scheduleToCloseTimeout: '1m',
  heartbeatTimeout: '2s',
};
/** After the point of no return the step must finish however long the database is away: no budget. */
export const PIVOT_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10s',
  retry: { ...BACKOFF, maximumInterval: '10s' },
  cancellationType: WAIT,
};
/**
 * One attempt per call: the saga helper retries compensations itself, forever, counting
 * failures for REQUIRES_ATTENTION. Compensations heartbeat throughout and wait out a database
 * outage for 40 s (activities/step-runner.ts), so only a dead worker (heartbeat) or a real
 * failure ends an attempt, never a stall.
 */
export const COMPENSATION_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '1m',
  heartbeatTimeout: '5s',
  retry: { maximumAttempts: 1 },
};
/** Status bookkeeping retries until it succeeds. */
export const BOOKKEEPING_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10s',
  retry: { ...BACKOFF, maximumInterval: '10s' },
};

/** Backoffs past this wait on a workflow timer, so a failing local step does not hold a workflow-task slot. */
const LOCAL_RETRY_THRESHOLD = '2s';
/** The database steps as local activities (v3): run inside the workflow task, same budget as STEP_OPTIONS. */
export const LOCAL_STEP_OPTIONS: LocalActivityOptions = {
  startToCloseTimeout: STEP_OPTIONS.startToCloseTimeout,
  scheduleToCloseTimeout: STEP_OPTIONS.scheduleToCloseTimeout,
  retry: STEP_OPTIONS.retry,
  localRetryThreshold: LOCAL_RETRY_THRESHOLD,
  cancellationType: WAIT,
};
/** The pivot as a local activity: no budget, like PIVOT_OPTIONS. */
export const LOCAL_PIVOT_OPTIONS: LocalActivityOptions = {
  startToCloseTimeout: PIVOT_OPTIONS.startToCloseTimeout,
  retry: PIVOT_OPTIONS.retry,
  localRetryThreshold: LOCAL_RETRY_THRESHOLD,
  cancellationType: WAIT,
};

// Each proxy carries its option set; executeWithOptions deep-merges per-call options into
// it, so the pivot has a proxy of its own rather than inheriting the forward steps' budget.
export const steps = proxyActivities<Activities>(STEP_OPTIONS);
export const localSteps = proxyLocalActivities<Activities>(LOCAL_STEP_OPTIONS);
export const localPivot = proxyLocalActivities<Activities>(LOCAL_PIVOT_OPTIONS);
export const compensations = proxyActivities<Activities>(COMPENSATION_OPTIONS);
export const bookkeeping = proxyActivities<Activities>(BOOKKEEPING_OPTIONS);
