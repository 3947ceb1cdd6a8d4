import { runOnce } from '../store/ledger';
import type { Pool } from '../store/pool';
import { setStepStatus } from '../store/steps';
import type { StepOutcome } from '../contracts/index';
import type { StepCall } from './orders';
import { currentStep } from './step-context';

export interface FraudScreeningDeps {
  pool: Pool;
  /** Customer ids refused outright (FRAUD_DENY_LIST). */
  fraudDenyList: ReadonlySet<string>;
}

export function createFraudActivities({ pool, fraudDenyList }: FraudScreeningDeps) {
  return {
    /**
     * Screens the order before money moves. A customer on the deny list is a business
     * refusal (`fraud_suspected`), recorded on the step and returned, never retried.
     * Passing emits no event, so the contract's event sequences stay as they were.
     */
    screenOrder: async (
      call: StepCall & { customerId: string; totalCents: number },
    ): Promise<StepOutcome> => {
      const entry = {
        idempotencyKey: call.idempotencyKey,
        workflowId: currentStep().workflowId,
        step: 'fraudScreening',
      };
      return runOnce(pool, entry, async (tx): Promise<StepOutcome> => {
        const suspected = fraudDenyList.has(call.customerId);
        await setStepStatus(tx, call.orderId, 'fraudScreening', suspected ? 'FAILED' : 'COMPLETED');
        return suspected ? { ok: false, reason: 'fraud_suspected' } : { ok: true };
      });
    },
  };
}
