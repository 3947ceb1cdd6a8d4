import {
  isGrpcServiceError,
  ServiceError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';

// grpc status codes: CANCELLED 1, DEADLINE_EXCEEDED 4, RESOURCE_EXHAUSTED 8, UNAVAILABLE 14.
const GRPC_UNAVAILABLE = new Set([1, 4, 8, 14]);

export function isTemporalUnavailable(error: unknown): boolean {
  if (error instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return true;
  if (isGrpcServiceError(error)) return GRPC_UNAVAILABLE.has(error.code);
  if (error instanceof ServiceError) return isTemporalUnavailable(error.cause);
  return false;
}
