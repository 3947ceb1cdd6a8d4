/**
 * A workflow interceptor module, bundled with the saga for the bench's replay only (never
 * into the worker's bundle): it reports every activity and local activity the workflow
 * schedules, with its arguments and task queue, through the benchSteps sink. A history
 * has the arguments of activities but not of local activities (their markers hold only
 * the result), so the bench reads both here, as the workflow code produces them.
 * Runs in the workflow sandbox: @temporalio/workflow and types only.
 */
import {
  proxySinks,
  type ActivityInput,
  type LocalActivityInput,
  type Next,
  type Sinks,
  type WorkflowInterceptorsFactory,
  type WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';
import type { RecordedCall } from './lib/saga-shape';

export interface StepRecorderSinks extends Sinks {
  benchSteps: { scheduled(call: RecordedCall): void };
}

const { benchSteps } = proxySinks<StepRecorderSinks>();

class StepRecorder implements WorkflowOutboundCallsInterceptor {
  scheduleActivity(
    input: ActivityInput,
    next: Next<WorkflowOutboundCallsInterceptor, 'scheduleActivity'>,
  ): Promise<unknown> {
    benchSteps.scheduled({
      activity: input.activityType,
      args: input.args,
      local: false,
      taskQueue: input.options.taskQueue ?? null,
    });
    return next(input);
  }

  scheduleLocalActivity(
    input: LocalActivityInput,
    next: Next<WorkflowOutboundCallsInterceptor, 'scheduleLocalActivity'>,
  ): Promise<unknown> {
    // A local activity that backed off longer than the local retry threshold is scheduled
    // again (attempt > 1): still the same step.
    if (input.attempt === 1) {
      benchSteps.scheduled({ activity: input.activityType, args: input.args, local: true, taskQueue: null });
    }
    return next(input);
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ outbound: [new StepRecorder()] });
