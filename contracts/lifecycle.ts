/**
 * The order's and its steps' lifecycles: which status may follow which. Pure, so the store
 * (every status write, store/lifecycle.ts), the workflow's own view and the tests all read
 * the same table. A status not listed as a successor is refused; terminal statuses have none.
 */
import type { OrderStatus, StepStatus } from './index';

export const ORDER_TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  PENDING: ['AWAITING_APPROVAL', 'COMPENSATING', 'COMPLETED', 'FAILED', 'CANCELLED'],
  AWAITING_APPROVAL: ['PENDING', 'COMPENSATING', 'FAILED', 'CANCELLED'],
  COMPENSATING: ['REQUIRES_ATTENTION', 'FAILED', 'CANCELLED'],
  REQUIRES_ATTENTION: ['COMPENSATING', 'FAILED', 'CANCELLED'],
  COMPLETED: [],
  FAILED: [],
  CANCELLED: [],
};

export const STEP_TRANSITIONS: Readonly<Record<StepStatus, readonly StepStatus[]>> = {
  PENDING: ['RUNNING', 'COMPLETED', 'FAILED', 'SKIPPED'],
  // RUNNING → RUNNING: a retry records its attempt number.
  RUNNING: ['RUNNING', 'COMPLETED', 'FAILED', 'SKIPPED'],
  COMPLETED: ['COMPENSATING', 'COMPENSATED'],
  COMPENSATING: ['COMPENSATED'],
  FAILED: [],
  COMPENSATED: [],
  SKIPPED: [],
};

/** The statuses from which `to` may be reached: what a guarded UPDATE accepts. */
function predecessors<S extends string>(table: Readonly<Record<S, readonly S[]>>, to: S): S[] {
  return (Object.keys(table) as S[]).filter((from) => table[from].includes(to));
}

export const orderStatusesBefore = (to: OrderStatus): OrderStatus[] => predecessors(ORDER_TRANSITIONS, to);
export const stepStatusesBefore = (to: StepStatus): StepStatus[] => predecessors(STEP_TRANSITIONS, to);

export const canMoveOrder = (from: OrderStatus, to: OrderStatus): boolean =>
  ORDER_TRANSITIONS[from].includes(to);
export const canMoveStep = (from: StepStatus, to: StepStatus): boolean => STEP_TRANSITIONS[from].includes(to);
