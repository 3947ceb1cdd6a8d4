import { reverseBatches, Saga, type SagaRuntime } from '../../workflows/saga';

/** A runtime that records sleeps and whether work ran inside the non-cancellable scope. */
function fakeRuntime() {
  const sleeps: number[] = [];
  let depth = 0;
  const runtime: SagaRuntime = {
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    nonCancellable: async (fn) => {
      depth++;
      try {
        return await fn();
      } finally {
        depth--;
      }
    },
  };
  return { runtime, sleeps, insideNonCancellable: () => depth > 0 };
}

describe('Saga', () => {
  it('when it unwinds, then compensations run in reverse order of registration', async () => {
    const { runtime } = fakeRuntime();
    const ran: string[] = [];
    const saga = new Saga(runtime);
    for (const name of ['a', 'b', 'c']) saga.add({ name, run: () => Promise.resolve(void ran.push(name)) });
    await saga.compensate();
    expect(ran).toEqual(['c', 'b', 'a']);
  });

  it('when it unwinds, then every compensation runs inside the non-cancellable scope', async () => {
    const fake = fakeRuntime();
    const scoped: boolean[] = [];
    const saga = new Saga(fake.runtime);
    saga.add({ name: 'a', run: () => Promise.resolve(void scoped.push(fake.insideNonCancellable())) });
    saga.add({ name: 'b', run: () => Promise.resolve(void scoped.push(fake.insideNonCancellable())) });
    await saga.compensate();
    expect(scoped).toEqual([true, true]);
  });

  it('when a compensation fails, then it is retried with capped backoff until it succeeds, and the unwind goes on', async () => {
    const { runtime, sleeps } = fakeRuntime();
    const ran: string[] = [];
    let failuresLeft = 6;
    const saga = new Saga(runtime, { backoff: { initialMs: 100, coefficient: 2, maximumMs: 1_000 } });
    saga.add({ name: 'first', run: () => Promise.resolve(void ran.push('first')) });
    saga.add({
      name: 'flaky',
      run: () =>
        failuresLeft-- > 0 ? Promise.reject(new Error('down')) : Promise.resolve(void ran.push('flaky')),
    });
    await saga.compensate();
    expect(ran).toEqual(['flaky', 'first']);
    expect(sleeps).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });

  it('when a compensation keeps failing, then attention is raised once after N failures and lowered when it succeeds', async () => {
    const { runtime } = fakeRuntime();
    const attention: Array<[boolean, string]> = [];
    let failuresLeft = 4;
    const saga = new Saga(runtime, {
      attentionAfterFailures: 3,
      onAttention: (needed, name) => Promise.resolve(void attention.push([needed, name])),
    });
    saga.add({
      name: 'refund',
      run: () => (failuresLeft-- > 0 ? Promise.reject(new Error('x')) : Promise.resolve()),
    });
    await saga.compensate();
    expect(attention).toEqual([
      [true, 'refund'],
      [false, 'refund'],
    ]);
  });

  it('when a compensation fails fewer than N times, then no attention is raised', async () => {
    const { runtime } = fakeRuntime();
    const onAttention = jest.fn(() => Promise.resolve());
    let failuresLeft = 2;
    const saga = new Saga(runtime, { attentionAfterFailures: 3, onAttention });
    saga.add({
      name: 'x',
      run: () => (failuresLeft-- > 0 ? Promise.reject(new Error('x')) : Promise.resolve()),
    });
    await saga.compensate();
    expect(onAttention).not.toHaveBeenCalled();
  });

  it('when the pivot is passed, then nothing registered before or after is compensated', async () => {
    const { runtime } = fakeRuntime();
    const ran: string[] = [];
    const saga = new Saga(runtime);
    saga.add({ name: 'before', run: () => Promise.resolve(void ran.push('before')) });
    saga.pivot();
    saga.add({ name: 'after', run: () => Promise.resolve(void ran.push('after')) });
    await saga.compensate();
    expect(ran).toEqual([]);
  });

  it('when there is nothing to undo, then the unwind hook is not called', async () => {
    const { runtime } = fakeRuntime();
    const onUnwindStart = jest.fn(() => Promise.resolve());
    await new Saga(runtime, { onUnwindStart }).compensate();
    expect(onUnwindStart).not.toHaveBeenCalled();
  });

  it('when compensate is called twice, then each compensation runs once', async () => {
    const { runtime } = fakeRuntime();
    const run = jest.fn(() => Promise.resolve());
    const saga = new Saga(runtime);
    saga.add({ name: 'a', run });
    await saga.compensate();
    await saga.compensate();
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('when consecutive compensations share a group, then they run concurrently as one batch', async () => {
    const { runtime } = fakeRuntime();
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const saga = new Saga(runtime);
    saga.add({ name: 'solo', run: () => Promise.resolve(void events.push('solo')) });
    saga.add({
      name: 'slow',
      group: 'g',
      run: async () => {
        events.push('slow:start');
        await gate;
        events.push('slow:end');
      },
    });
    saga.add({
      name: 'fast',
      group: 'g',
      run: () => {
        events.push('fast');
        release();
        return Promise.resolve();
      },
    });
    await saga.compensate();
    expect(events).toEqual(['fast', 'slow:start', 'slow:end', 'solo']);
  });
});

describe('reverseBatches', () => {
  it('when compensations share a group, then only consecutive ones are batched together', () => {
    const noop = () => Promise.resolve();
    const batches = reverseBatches([
      { name: 'a', group: 'g', run: noop },
      { name: 'b', run: noop },
      { name: 'c', group: 'g', run: noop },
      { name: 'd', group: 'g', run: noop },
    ]);
    expect(batches.map((batch) => batch.map((c) => c.name))).toEqual([['d', 'c'], ['b'], ['a']]);
  });
});
