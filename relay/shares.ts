/**
 * How the outbox's partitions are shared among the live relays: pure arithmetic, no I/O.
 * relay/partitions.ts runs it at every heartbeat on what the database says.
 *
 * With n live relays and P partitions, the relays sorted by id, relay number r (from 0)
 * holds floor(P / n) partitions, plus one when r < P mod n: the shares differ by at most one
 * and add up to P (a plain ceil(P / n) each could leave a relay with none, e.g. 5 relays
 * and 16 partitions: 4 + 4 + 4 + 4 + 0). A relay over its share gives back the extras; one
 * under it takes free or expired partitions, its "home" ones (partition mod n = r) first,
 * so relays starting together rarely reach for the same partition. While relays disagree
 * on who is alive (a heartbeat apart) the shares may overlap or leave gaps for a round; a
 * partition is only ever held by one relay, whatever they compute.
 */

export interface LeaseView {
  partition: number;
  /** The holder, or null when nobody holds it. */
  owner: string | null;
  /** The lease has not expired: an expired lease is free to take. */
  live: boolean;
}

export interface Rebalance {
  /** Partitions to try to take (free or expired now). */
  take: number[];
  /** Partitions of ours to give back. */
  release: number[];
}

/** How many of `partitionCount` partitions `me` should hold among `members` (me included). */
export function shareOf(me: string, members: readonly string[], partitionCount: number): number {
  const sorted = liveRelays(me, members);
  const rank = sorted.indexOf(me);
  const base = Math.floor(partitionCount / sorted.length);
  return base + (rank < partitionCount % sorted.length ? 1 : 0);
}

/** What `me` should take and give back, given the live members and every partition's lease. */
export function planRebalance(
  me: string,
  members: readonly string[],
  leases: readonly LeaseView[],
): Rebalance {
  const sorted = liveRelays(me, members);
  const rank = sorted.indexOf(me);
  const isHome = (partition: number): boolean => partition % sorted.length === rank;
  const share = shareOf(me, sorted, leases.length);
  const mine = leases.filter((lease) => lease.live && lease.owner === me).map((lease) => lease.partition);
  if (mine.length > share) {
    // Away partitions first, highest first: what others reach for first comes back first.
    const release = [...mine]
      .sort((a, b) => Number(isHome(a)) - Number(isHome(b)) || b - a)
      .slice(0, mine.length - share);
    return { take: [], release };
  }
  const free = leases.filter((lease) => !lease.live || lease.owner === null).map((lease) => lease.partition);
  const take = free
    .sort((a, b) => Number(isHome(b)) - Number(isHome(a)) || a - b)
    .slice(0, share - mine.length);
  return { take, release: [] };
}

/** The live relays sorted by id, with `me` among them (a heartbeat may not list it yet). */
function liveRelays(me: string, members: readonly string[]): string[] {
  return [...new Set([...members, me])].sort();
}
