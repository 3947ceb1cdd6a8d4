import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger } from '@temporalio/worker';
import {
  ProviderUnavailableError,
  withCircuitBreaker,
  type BreakerState,
} from '../../activities/providers/circuit-breaker';
import {
  TransientProviderError,
  type ChargeResult,
  type PaymentGateway,
} from '../../activities/providers/types';
import { callProvider } from '../../activities/step-runner';
import { ErrorTypes } from '../../contracts/index';

type Answer = 'transient' | 'card-transient' | 'declined' | 'captured' | 'bug';

/** A gateway that answers from a script (the last answer repeats) and counts its calls. */
function fakeGateway(...script: Answer[]) {
  const calls: string[] = [];
  const answer = (): Promise<ChargeResult> => {
    const next = script.length > 1 ? script.shift()! : script[0]!;
    if (next === 'transient') return Promise.reject(new TransientProviderError('503 from the gateway'));
    if (next === 'card-transient')
      return Promise.reject(new TransientProviderError('processing error for this card', 'request'));
    if (next === 'bug') return Promise.reject(new TypeError('cannot read properties of undefined'));
    if (next === 'declined') return Promise.resolve({ status: 'declined', reason: 'card_declined' });
    return Promise.resolve({ status: 'captured', reference: 'ch_1' });
  };
  const gateway: PaymentGateway = {
    charge: () => {
      calls.push('charge');
      return answer();
    },
    refund: () => {
      calls.push('refund');
      return answer().then(() => ({ status: 'nothing_to_refund' as const }));
    },
  };
  return {
    gateway,
    calls,
    /** What the next calls answer. */
    then: (...next: Answer[]) => script.splice(0, script.length, ...next),
  };
}

const request = {
  idempotencyKey: 'order-1:chargePayment',
  amountCents: 100,
  currency: 'USD',
  paymentToken: 'tok',
};
/** Calls the window must hold before the breaker may open (small here; 20 in production). */
const MIN_CALLS = 4;
const HALF_OPEN_AFTER_MS = 5_000;

/** cockatiel reads Date.now() to decide when an open breaker half-opens. */
let now = 1_000_000;
beforeEach(() => {
  now = 1_000_000;
  jest.spyOn(Date, 'now').mockImplementation(() => now);
});
afterEach(() => jest.restoreAllMocks());

function guarded(fake: ReturnType<typeof fakeGateway>, states: BreakerState[] = []) {
  return withCircuitBreaker(fake.gateway, {
    name: 'payment gateway',
    failureRatio: 0.5,
    windowMs: 10_000,
    minimumCalls: MIN_CALLS,
    halfOpenAfterMs: HALF_OPEN_AFTER_MS,
    onStateChange: (state) => states.push(state),
  });
}

/** Makes `n` charges, each expected to fail with a transient error from the provider. */
async function failTransiently(gateway: PaymentGateway, n: number): Promise<void> {
  for (let i = 0; i < n; i++)
    await expect(gateway.charge(request)).rejects.toBeInstanceOf(TransientProviderError);
}

describe('withCircuitBreaker', () => {
  it('when the provider answers, then the answer passes through unchanged', async () => {
    const fake = fakeGateway('captured');
    await expect(guarded(fake).charge(request)).resolves.toEqual({ status: 'captured', reference: 'ch_1' });
    expect(fake.calls).toEqual(['charge']);
  });

  it('when most calls in the window fail transiently, then the breaker opens and calls fail fast without reaching the provider', async () => {
    const fake = fakeGateway('transient');
    const states: BreakerState[] = [];
    const gateway = guarded(fake, states);
    await failTransiently(gateway, MIN_CALLS);
    expect(states).toEqual(['open']);

    now += HALF_OPEN_AFTER_MS - 1;
    const failure = await gateway.charge(request).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ProviderUnavailableError);
    expect(failure).toMatchObject({ name: 'ProviderUnavailable' });
    expect((failure as Error).message).toMatch(/^payment gateway unavailable/);
    // Every method of the adapter shares the breaker: the provider is down for refunds too.
    await expect(gateway.refund({ idempotencyKey: 'k', chargeKey: 'c' })).rejects.toBeInstanceOf(
      ProviderUnavailableError,
    );
    expect(fake.calls).toHaveLength(MIN_CALLS);
  });

  it('when fewer calls than the minimum were made, then even all of them failing does not open the breaker', async () => {
    const fake = fakeGateway('transient', 'transient', 'transient', 'captured');
    const states: BreakerState[] = [];
    const gateway = guarded(fake, states);
    await failTransiently(gateway, MIN_CALLS - 1);
    await expect(gateway.charge(request)).resolves.toMatchObject({ status: 'captured' });
    expect(states).toEqual([]);
  });

  it('when some orders fail transiently in a row among healthy traffic, then the breaker stays closed and every call reaches the provider', async () => {
    // The defect the chaos drills found: cards that fail a few times before paying, retried
    // by several orders at once, made 5 failures in a row and opened a consecutive-failures
    // breaker for everyone. Here: runs of MIN_CALLS failures in a row (enough to open such a
    // breaker) between runs of twice as many answers.
    const healthy = Array<Answer>(2 * MIN_CALLS).fill('captured');
    const burst = Array<Answer>(MIN_CALLS).fill('transient');
    const fake = fakeGateway(
      ...healthy,
      ...Array.from({ length: 5 }, () => [...burst, ...healthy]).flat(),
      'captured',
    );
    const states: BreakerState[] = [];
    const gateway = guarded(fake, states);
    const answer = () => expect(gateway.charge(request)).resolves.toMatchObject({ status: 'captured' });
    for (let i = 0; i < 2 * MIN_CALLS; i++) await answer();
    for (let round = 0; round < 5; round++) {
      await failTransiently(gateway, MIN_CALLS);
      for (let i = 0; i < 2 * MIN_CALLS; i++) await answer();
    }
    expect(states).toEqual([]);
    expect(fake.calls).toHaveLength(2 * MIN_CALLS + 5 * 3 * MIN_CALLS);
  });

  it('when only single requests fail transiently (one card, one charge), then nothing counts: the breaker stays closed', async () => {
    // The second defect the drills found: after the load, the only calls left were refunds
    // failing on purpose a few times; as provider failures they tripped the breaker.
    const fake = fakeGateway('card-transient');
    const states: BreakerState[] = [];
    const gateway = guarded(fake, states);
    for (let i = 0; i < 5 * MIN_CALLS; i++)
      await expect(gateway.charge(request)).rejects.toMatchObject({ scope: 'request' });
    fake.then('captured');
    await expect(gateway.charge(request)).resolves.toMatchObject({ status: 'captured' });
    expect(states).toEqual([]);
    expect(fake.calls).toHaveLength(5 * MIN_CALLS + 1);
  });

  it('when the provider declines, then the decline is an answer: it never counts as a failure', async () => {
    const fake = fakeGateway('declined');
    const gateway = guarded(fake);
    for (let i = 0; i < 2 * MIN_CALLS; i++) {
      await expect(gateway.charge(request)).resolves.toEqual({ status: 'declined', reason: 'card_declined' });
    }
    // 8 answers then 4 transient failures: a third of the window failed, so it stays closed.
    fake.then('transient', 'transient', 'transient', 'transient', 'captured');
    await failTransiently(gateway, MIN_CALLS);
    await expect(gateway.charge(request)).resolves.toMatchObject({ status: 'captured' });
    expect(fake.calls).toHaveLength(3 * MIN_CALLS + 1);
  });

  it('when an error is not transient, or the call was aborted, then it does not count', async () => {
    const fake = fakeGateway('bug');
    const gateway = guarded(fake);
    for (let i = 0; i < MIN_CALLS; i++)
      await expect(gateway.charge(request)).rejects.toBeInstanceOf(TypeError);
    const aborted = new AbortController();
    aborted.abort();
    fake.then('transient');
    for (let i = 0; i < MIN_CALLS; i++) {
      await expect(gateway.charge({ ...request, signal: aborted.signal })).rejects.toBeInstanceOf(
        TransientProviderError,
      );
    }
    fake.then('captured');
    await expect(gateway.charge(request)).resolves.toMatchObject({ status: 'captured' });
    expect(fake.calls).toHaveLength(2 * MIN_CALLS + 1);
  });

  it('when open and the delay has passed, then one trial call goes through, and its success closes the breaker', async () => {
    const fake = fakeGateway('transient');
    const states: BreakerState[] = [];
    const gateway = guarded(fake, states);
    await failTransiently(gateway, MIN_CALLS);
    now += HALF_OPEN_AFTER_MS;
    fake.then('captured');
    await expect(gateway.charge(request)).resolves.toMatchObject({ status: 'captured' });
    expect(states).toEqual(['open', 'half-open', 'closed']);
    // Closed again, with a fresh window holding only the trial's success: calls reach the
    // provider, and it takes a new majority of failures to open.
    fake.then('transient');
    await failTransiently(gateway, MIN_CALLS - 1);
    await expect(gateway.charge(request)).rejects.toBeInstanceOf(ProviderUnavailableError);
    expect(fake.calls).toHaveLength(MIN_CALLS + 1 + MIN_CALLS - 1);
  });

  it('when the trial call fails transiently, then the breaker opens again for another delay', async () => {
    const fake = fakeGateway('transient');
    const states: BreakerState[] = [];
    const gateway = guarded(fake, states);
    await failTransiently(gateway, MIN_CALLS);
    now += HALF_OPEN_AFTER_MS;
    await failTransiently(gateway, 1); // the trial
    await expect(gateway.charge(request)).rejects.toBeInstanceOf(ProviderUnavailableError);
    now += HALF_OPEN_AFTER_MS;
    fake.then('captured');
    await expect(gateway.charge(request)).resolves.toMatchObject({ status: 'captured' });
    expect(states).toEqual(['open', 'half-open', 'open', 'half-open', 'closed']);
    expect(fake.calls).toHaveLength(MIN_CALLS + 2);
  });

  it('when a trial call is running, then other calls wait for its outcome instead of reaching the provider', async () => {
    const fake = fakeGateway('transient');
    const gateway = guarded(fake);
    await failTransiently(gateway, MIN_CALLS);
    now += HALF_OPEN_AFTER_MS;
    let finishTrial!: (result: ChargeResult) => void;
    const slowTrial = new Promise<ChargeResult>((resolve) => (finishTrial = resolve));
    const charge = jest.spyOn(fake.gateway, 'charge').mockReturnValueOnce(slowTrial);
    const trial = gateway.charge(request);
    const waiting = gateway.charge(request);
    await new Promise((resolve) => setImmediate(resolve));
    expect(charge).toHaveBeenCalledTimes(1);
    finishTrial({ status: 'captured', reference: 'ch_trial' });
    fake.then('captured');
    await expect(trial).resolves.toEqual({ status: 'captured', reference: 'ch_trial' });
    await expect(waiting).resolves.toEqual({ status: 'captured', reference: 'ch_1' });
    expect(charge).toHaveBeenCalledTimes(2);
  });
});

/** An activity context for callProvider, without the SDK's log line for each failure. */
const activityEnvironment = () =>
  new MockActivityEnvironment(
    { workflowExecution: { workflowId: 'order-1', runId: 'run-1' } },
    { logger: new DefaultLogger('ERROR') },
  );

describe('callProvider with an open breaker', () => {
  it('when the breaker refuses the call, then the activity fails with a retryable ProviderUnavailable failure', async () => {
    const fake = fakeGateway('transient');
    const gateway = guarded(fake);
    await failTransiently(gateway, MIN_CALLS);
    const env = activityEnvironment();
    const failure = await env
      .run(() => callProvider((signal) => gateway.charge({ ...request, signal })))
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: ErrorTypes.ProviderUnavailable, nonRetryable: false });
    expect(fake.calls).toHaveLength(MIN_CALLS);
  });

  it('when the provider fails transiently, then the activity fails with a retryable TransientProviderError failure', async () => {
    const gateway = guarded(fakeGateway('transient'));
    const env = activityEnvironment();
    await expect(env.run(() => callProvider(() => gateway.charge(request)))).rejects.toMatchObject({
      type: ErrorTypes.TransientProviderError,
      nonRetryable: false,
    });
  });
});
