import { EventuallyTimeout, eventually } from '../../tools/fixtures/eventually';
import { orderBody, sagaInput } from '../../tools/fixtures/order';
import { chooseSeed, DEFAULT_SEED, seededRng } from '../../tools/fixtures/seed';

/** The shared fixtures of tests, chaos drills and bench (tools/fixtures/). */

describe('eventually', () => {
  it('when the probe answers, then it resolves with that answer', async () => {
    let calls = 0;
    await expect(
      eventually('the third call', () => (++calls === 3 ? 'yes' : undefined), 5_000),
    ).resolves.toBe('yes');
  });

  it('when the probe never answers, then it fails naming what it waited for and why', async () => {
    await expect(
      eventually('a thing that never happens', () => false, {
        timeoutMs: 20,
        intervalMs: 5,
        detail: () => 'last seen: nothing',
      }),
    ).rejects.toThrow(
      new EventuallyTimeout('a thing that never happens: not within 20 ms; last seen: nothing'),
    );
  });

  it('when the probe throws, then it fails at once with that error', async () => {
    await expect(
      eventually('a broken probe', () => Promise.reject(new Error('boom')), 60_000),
    ).rejects.toThrow('boom');
  });
});

describe('order fixture', () => {
  it('when nothing is overridden, then the body is a valid order of SKU-1 × 2 paid with tok_ok to the US', () => {
    expect(orderBody({ customerId: 'c-1' })).toEqual({
      customerId: 'c-1',
      items: [{ sku: 'SKU-1', quantity: 2 }],
      paymentToken: 'tok_ok',
      shippingAddress: {
        name: 'Ada',
        line1: '1 Main St',
        city: 'Springfield',
        postalCode: '12345',
        country: 'US',
      },
    });
  });

  it('when sku, quantity, token and country are given, then only those change', () => {
    expect(
      orderBody({ customerId: 'c-1', sku: 'X', quantity: 5, paymentToken: 'tok_slow', country: 'ZZ' }),
    ).toEqual({
      customerId: 'c-1',
      items: [{ sku: 'X', quantity: 5 }],
      paymentToken: 'tok_slow',
      shippingAddress: {
        name: 'Ada',
        line1: '1 Main St',
        city: 'Springfield',
        postalCode: '12345',
        country: 'ZZ',
      },
    });
  });

  it('when a saga input is built, then its total is the sum of its priced lines', () => {
    const input = sagaInput({
      items: [
        { sku: 'A', quantity: 2, unitPriceCents: 500 },
        { sku: 'B', quantity: 1, unitPriceCents: 99 },
      ],
    });
    expect(input).toMatchObject({
      totalCents: 1_099,
      currency: 'USD',
      requiresApproval: false,
      approvalTimeout: '24h',
    });
  });
});

describe('seeds', () => {
  it('when no seed is asked for, then the fixed default is used', () => {
    expect(chooseSeed(undefined)).toBe(DEFAULT_SEED);
    expect(chooseSeed('')).toBe(DEFAULT_SEED);
  });

  it('when a seed is given, then it is used', () => {
    expect(chooseSeed('401')).toBe(401);
  });

  it("when 'random' is asked for, then a seed in range is drawn", () => {
    const seed = chooseSeed('random');
    expect(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 31).toBe(true);
  });

  it('when the seed is not a whole number in range, then it is refused', () => {
    expect(() => chooseSeed('1.5')).toThrow(/seed must be/);
    expect(() => chooseSeed(String(2 ** 32))).toThrow(/seed must be/);
  });

  it('when two generators share a seed, then they draw the same sequence', () => {
    const draw = (seed: number) => {
      const rng = seededRng(seed);
      return Array.from({ length: 5 }, () => rng.int(0, 1_000));
    };
    expect(draw(DEFAULT_SEED)).toEqual(draw(DEFAULT_SEED));
  });
});
