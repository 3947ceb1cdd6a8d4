import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { ErrorTypes } from '../contracts/index';
import { ProviderUnavailableError } from './providers/circuit-breaker';
import { TransientProviderError } from './providers/types';

/** Who is running: the workflow id and the attempt, from Temporal's activity context. */
export function currentStep(): { workflowId: string; attempt: number; signal: AbortSignal } {
  const context = Context.current();
  const workflowId = context.info.workflowExecution?.workflowId;
  if (!workflowId) throw new Error('saga activities run only inside a workflow');
  return {
    workflowId,
    attempt: context.info.attempt,
    signal: context.cancellationSignal,
  };
}

/**
 * Runs a provider call while heartbeating, so a long call notices cancellation and a
 * dead worker is detected by the heartbeat timeout. Transient provider errors and calls
 * refused by an open circuit breaker become retryable failures with an explicit type
 * string (TransientProviderError, ProviderUnavailable): the saga's retry policy backs off.
 */
export async function callProvider<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const context = Context.current();
  const beat = setInterval(() => context.heartbeat(), 500);
  try {
    return await reportCancellation(() => call(context.cancellationSignal));
  } catch (error) {
    if (error instanceof TransientProviderError) {
      throw ApplicationFailure.retryable(error.message, ErrorTypes.TransientProviderError);
    }
    if (error instanceof ProviderUnavailableError) {
      throw ApplicationFailure.retryable(error.message, ErrorTypes.ProviderUnavailable);
    }
    throw error;
  } finally {
    clearInterval(beat);
  }
}

/**
 * Runs a step's work; a failure after the workflow cancelled the step (heartbeat, or a local
 * activity's cancel) is reported as that cancellation, not as a failure, so the step is not
 * retried and the saga unwinds as CANCELLED at once.
 */
export async function reportCancellation<T>(work: () => Promise<T>): Promise<T> {
  const { cancellationSignal } = Context.current();
  try {
    return await work();
  } catch (error) {
    if (cancellationSignal.aborted) throw new CancelledFailure('activity cancelled');
    throw error;
  }
}
