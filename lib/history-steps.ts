/**
 * The steps a workflow run executed, read from its history: each activity it scheduled and
 * each local activity, which leaves a marker instead. Pure; used by the bench (the saga's
 * shape) and the tests (what the saga ran, and its Web UI summaries).
 */
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils';

type HistoryEvent = NonNullable<History['events']>[number];

/** Core SDK's marker name for a local activity's result. */
export const LOCAL_ACTIVITY_MARKER = 'core_local_activity';

export interface HistoryStep {
  /** The activity type; undefined where a local activity's marker could not be read. */
  activity: string | undefined;
  /** A local activity: run inside the workflow task, recorded as a marker (its type and result, not its arguments). */
  local: boolean;
  /** A scheduled activity's task queue. */
  taskQueue?: string;
  /** A scheduled activity's arguments, decoded. */
  args?: unknown[];
  /** The summary the Web UI shows for the step. */
  summary?: string;
  /** A local activity attempt that failed and backed off: its retry leaves another marker. */
  backedOff?: boolean;
}

const decode = (payloads: Payload[] | null | undefined): unknown[] =>
  (payloads ?? []).map((payload) => defaultPayloadConverter.fromPayload(payload));

/** The activities and local activities of a history, in the order they were recorded. */
export function historySteps(events: readonly HistoryEvent[]): HistoryStep[] {
  const steps: HistoryStep[] = [];
  for (const event of events) {
    const summary = event.userMetadata?.summary ? decode([event.userMetadata.summary])[0] : undefined;
    const described = typeof summary === 'string' ? { summary } : {};
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      steps.push({
        activity: scheduled.activityType?.name ?? '?',
        local: false,
        taskQueue: scheduled.taskQueue?.name ?? '?',
        args: decode(scheduled.input?.payloads),
        ...described,
      });
    }
    const marker = event.markerRecordedEventAttributes;
    if (marker?.markerName === LOCAL_ACTIVITY_MARKER) {
      const data = readMarkerData(marker.details?.data?.payloads);
      steps.push({
        activity: data?.activity_type,
        local: true,
        ...(data?.backoff != null ? { backedOff: true } : {}),
        ...described,
      });
    }
  }
  return steps;
}

/** Core SDK's data of a local activity marker (its own JSON; read defensively). */
function readMarkerData(
  payloads: Payload[] | null | undefined,
): { activity_type?: string; backoff?: unknown } | undefined {
  try {
    const [data] = decode(payloads);
    return typeof data === 'object' && data !== null ? data : undefined;
  } catch {
    return undefined;
  }
}
