import { planRebalance, shareOf, type LeaseView } from '../../relay/shares';

/**
 * How relays share the outbox's partitions (relay/shares.ts): shares differ by at most one
 * and add up to the partition count; a relay over its share gives back, one under it takes
 * free or expired partitions, its home ones first.
 */

const P = 16;

function leases(owners: Record<number, string> = {}, expired: number[] = []): LeaseView[] {
  return Array.from({ length: P }, (_, partition) => ({
    partition,
    owner: owners[partition] ?? null,
    live: owners[partition] !== undefined && !expired.includes(partition),
  }));
}

const owning = (owner: string, partitions: number[]): Record<number, string> =>
  Object.fromEntries(partitions.map((partition) => [partition, owner]));
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

test('when one relay runs, then its share is every partition', () => {
  expect(shareOf('a', ['a'], P)).toBe(16);
  expect(planRebalance('a', ['a'], leases())).toEqual({ take: range(0, 16), release: [] });
});

test('when n relays run, then the shares differ by at most one, add up to the partition count, and none is empty while n <= P', () => {
  for (let n = 1; n <= 20; n++) {
    const members = Array.from({ length: n }, (_, i) => `relay-${String(i).padStart(2, '0')}`);
    const shares = members.map((me) => shareOf(me, members, P));
    expect(shares.reduce((sum, share) => sum + share, 0)).toBe(P);
    expect(Math.max(...shares) - Math.min(...shares)).toBeLessThanOrEqual(1);
    if (n <= P) expect(Math.min(...shares)).toBeGreaterThan(0);
  }
  // Not ceil(16 / 5) = 4 each, which would leave the fifth relay with nothing.
  expect(['a', 'b', 'c', 'd', 'e'].map((me) => shareOf(me, ['a', 'b', 'c', 'd', 'e'], P))).toEqual([
    4, 3, 3, 3, 3,
  ]);
});

test('when a member list does not name the relay itself yet, then it counts itself in', () => {
  expect(shareOf('b', ['a'], P)).toBe(8);
});

test('when a second relay joins, then the first gives back half, away partitions first, and the second takes them, home ones first', () => {
  const all = owning('a', range(0, 16));
  const first = planRebalance('a', ['a', 'b'], leases(all));
  expect(first.take).toEqual([]);
  // a is rank 0 of 2: its home partitions are the even ones; it keeps those.
  expect(first.release.sort((x, y) => x - y)).toEqual([1, 3, 5, 7, 9, 11, 13, 15]);

  const afterRelease = owning('a', [0, 2, 4, 6, 8, 10, 12, 14]);
  expect(planRebalance('b', ['a', 'b'], leases(afterRelease))).toEqual({
    take: [1, 3, 5, 7, 9, 11, 13, 15],
    release: [],
  });
  // Nothing more to do for either once that happened.
  const settled = { ...afterRelease, ...owning('b', [1, 3, 5, 7, 9, 11, 13, 15]) };
  expect(planRebalance('a', ['a', 'b'], leases(settled))).toEqual({ take: [], release: [] });
  expect(planRebalance('b', ['a', 'b'], leases(settled))).toEqual({ take: [], release: [] });
});

test('when a relay died, then its expired partitions are taken by the survivor, and a live lease is never taken', () => {
  const split = { ...owning('a', range(0, 8)), ...owning('b', range(8, 16)) };
  // b is dead: its member row and its leases expired; a alone is live.
  expect(planRebalance('a', ['a'], leases(split, range(8, 16)))).toEqual({ take: range(8, 16), release: [] });
  // b still counted live for a moment while its leases are current: a takes nothing of b's.
  expect(planRebalance('a', ['a', 'b'], leases(split))).toEqual({ take: [], release: [] });
  // a does not count b any more, but b's leases have not expired yet: nothing to take yet.
  expect(planRebalance('a', ['a'], leases(split)).take).toEqual([]);
});

test('when a relay holds fewer than its share but the rest are held by others, then it takes nothing and waits for them to give back', () => {
  const unbalanced = { ...owning('a', range(0, 14)), ...owning('b', [14, 15]) };
  expect(planRebalance('b', ['a', 'b'], leases(unbalanced))).toEqual({ take: [], release: [] });
  expect(planRebalance('a', ['a', 'b'], leases(unbalanced)).release).toHaveLength(6);
});
