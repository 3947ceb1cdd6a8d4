import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];

/** One step a run executed, as its history shows it: a scheduled activity or a local activity's marker. */
export interface RecordedStep {
  activity: string;
  local: boolean;
  /** The task queue of a scheduled activity (local activities run on the workflow's worker). */
  taskQueue?: string;
  /** The summary shown in the Web UI. */
  summary?: string;
}

/** The core SDK's marker for a local activity; its `data` detail names the activity type. */
const LOCAL_ACTIVITY_MARKER = 'core_local_activity';

const decode = <T>(payload: Payload | null | undefined): T | undefined =>
  payload ? defaultPayloadConverter.fromPayload<T>(payload) : undefined;

/** The activities and local activities of a history, in the order they were recorded. */
export function recordedSteps(events: readonly HistoryEvent[]): RecordedStep[] {
  const steps: RecordedStep[] = [];
  for (const event of events) {
    const summary = decode<string>(event.userMetadata?.summary);
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      steps.push({
        activity: scheduled.activityType?.name ?? '?',
        local: false,
        ...(scheduled.taskQueue?.name ? { taskQueue: scheduled.taskQueue.name } : {}),
        ...(summary !== undefined ? { summary } : {}),
      });
    }
    const marker = event.markerRecordedEventAttributes;
    if (marker?.markerName === LOCAL_ACTIVITY_MARKER) {
      const data = decode<{ activity_type?: string }>(marker.details?.data?.payloads?.[0]);
      steps.push({
        activity: data?.activity_type ?? '?',
        local: true,
        ...(summary !== undefined ? { summary } : {}),
      });
    }
  }
  return steps;
}
