import type { StepOutcome } from '../contracts/index';
import type { Pool } from '../store/pool';
import { runStep, type ForwardStep, type StepCall } from './step-runner';

export interface FraudScreeningDeps {
  pool: Pool;
  /** Customer ids refused outright (FRAUD_DENY_LIST). */
  fraudDenyList: ReadonlySet<string>;
}

export type ScreeningCall = StepCall & { customerId: string; totalCents: number };

/**
 * Screens the order before money moves. A customer on the deny list is a business refusal
 * (`fraud_suspected`), recorded on the step and returned, never retried. Passing emits no
 * event, so the contract's event sequences stay as they were; the charge shows RUNNING.
 */
export function screenOrderStep(call: ScreeningCall, fraudDenyList: ReadonlySet<string>): ForwardStep<undefined> {
  return {
    call,
    step: 'fraudScreening',
    next: 'chargePayment',
    commit: () =>
      Promise.resolve<StepOutcome>(
        fraudDenyList.has(call.customerId) ? { ok: false, reason: 'fraud_suspected' } : { ok: true },
      ),
  };
}

export function createFraudActivities({ pool, fraudDenyList }: FraudScreeningDeps) {
  return {
    screenOrder: (call: ScreeningCall): Promise<StepOutcome> => runStep(pool, screenOrderStep(call, fraudDenyList)),
  };
}
