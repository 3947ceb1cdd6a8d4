/**
 * The drills of the cluster engine (`npm run test:chaos -- --engine cluster`): the same load
 * and the same invariants as the dev engine's (tools/chaos/drills.ts' runLoadDrill), with
 * faults only a cluster has — a Temporal server SIGKILLed, one NATS node of three gone, one
 * worker of two, the relay holding most partitions, one api of two while the other serves.
 * They see the cluster only through the engine-neutral DrillStack and Services.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { STREAM_NAME } from '../../contracts/index';
import { readPendingStarts } from '../../store/saga-starts';
import { answerWithin } from '../fixtures/eventually';
import {
  FULL,
  REDUCED,
  loadReaches,
  runLoadDrill,
  temporalRestart,
  workerKills,
  type DrillEnv,
  type DrillResult,
  type Fault,
  type FaultContext,
  type Mode,
} from './drills';

/** The full run is the dev engine's (200 sagas at 8/s per drill); the reduced one is smaller than the dev engine's. */
export const CLUSTER_FULL: Mode = FULL;
export const CLUSTER_REDUCED: Mode = {
  ...REDUCED,
  sagasPerDrill: 20,
  workerKills: 1,
  relayKills: 1,
  temporalDownMs: 3_000,
  natsDownMs: 6_000,
  apiDownMs: 5_000,
};

/** The contract's promise (§7): a dead relay's share moves to a live one within 5 s. */
const SHARE_MOVES_WITHIN_MS = 5_000;
const PARTITIONS = 16;
/** How long a NATS node stays down after the stream took its first event without it. */
const AFTER_FIRST_EVENT_MS = 3_000;

// ---------------------------------------------------------------------------------------
// One NATS node of three

/** Why the last streamInfo() had no answer (for the notes). */
let lastInfoError = '';

async function streamInfo(jsm: JetStreamManager): Promise<
  | {
      lastSeq: number;
      leader: string | undefined;
      replicas: Array<{ name: string; current: boolean }>;
    }
  | undefined
> {
  try {
    const info = await jsm.streams.info(STREAM_NAME);
    return {
      lastSeq: info.state.last_seq,
      leader: info.cluster?.leader,
      replicas: (info.cluster?.replicas ?? []).map((peer) => ({ name: peer.name, current: peer.current })),
    };
  } catch (error) {
    lastInfoError = error instanceof Error ? error.message : String(error);
    return undefined; // mid-election, or our connection moving to another node
  }
}

/**
 * SIGKILL the node that leads ORDERS (the worst one to lose) under load. While it is down
 * the stream must keep taking events (the relays publish through the other two: checked
 * by the stream's last sequence growing); it stays down `natsDownMs` and at least until
 * then (a new leader is elected in seconds; no event within 60 s is a finding). Then it
 * comes back and must catch up (current again in the stream's replica list). Nothing
 * lost, nothing doubled: the invariants.
 */
const natsNodeKill: Fault = async (context) => {
  const jsm = await jetstreamManager(context.nats);
  await loadReaches(context, 0.3);
  const inFlightAtFault = await context.inFlight();
  const before = await streamInfo(jsm);
  const node = context.stack.natsNodes.find((n) => n.name === before?.leader) ?? context.stack.natsNodes[0]!;
  const seqBefore = before?.lastSeq ?? 0;
  await node.stop('crash');
  const downAt = Date.now();
  let newLeaderMs: number | undefined;
  let healedAt: number;
  try {
    const moving = await answerWithin(
      `the stream taking events with ${node.name} down`,
      async () => {
        const info = await streamInfo(jsm);
        if (newLeaderMs === undefined && info?.leader && info.leader !== node.name)
          newLeaderMs = Date.now() - downAt;
        return info !== undefined && info.lastSeq > seqBefore ? info : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const firstEventMs = Date.now() - downAt;
    // Down natsDownMs, and a while after the first event, so "goes on" is seen, not one event.
    await delay(Math.max(AFTER_FIRST_EVENT_MS, downAt + context.mode.natsDownMs - Date.now()));
    const during = await streamInfo(jsm);
    if (moving === undefined || during === undefined) {
      context.findings.push(
        `with ${node.name} (the stream's leader) down, the stream took no event in 60 s (${lastInfoError || 'no error'})`,
      );
    } else {
      context.notes.push(
        `${node.name} (the stream's leader) SIGKILLed with ${inFlightAtFault} in flight: the stream took no event for ` +
          `${firstEventMs} ms (a new leader, ${during.leader ?? '?'}, answered after ${newLeaderMs ?? '?'} ms), then went on: ` +
          `${moving.lastSeq - seqBefore} events at once, ${during.lastSeq - moving.lastSeq} more in the next ` +
          `${Date.now() - downAt - firstEventMs} ms ` +
          `with ${node.name} still down (${Date.now() - downAt} ms in all)`,
      );
    }
  } finally {
    await node.start();
    healedAt = Date.now();
  }
  const current = await answerWithin(
    `${node.name} current again`,
    async () => (await streamInfo(jsm))?.replicas.some((peer) => peer.name === node.name && peer.current),
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  if (current === undefined)
    context.findings.push(`${node.name} not a current replica of ORDERS 60 s after it came back`);
  else
    context.notes.push(
      `${node.name} back and current in the stream ${Date.now() - healedAt} ms after its restart`,
    );
  return { inFlightAtFault, healedAt };
};

// ---------------------------------------------------------------------------------------
// The relay holding most partitions

/** Live leases by relay replica name (an owner is `<host>:<pid>:<id>`; the pid names the replica). */
async function leasesByReplica(context: FaultContext): Promise<Map<string, number>> {
  const { rows } = await context.pool.query<{ owner: string; held: number }>(
    `SELECT owner, count(*)::int AS held FROM outbox_partitions
      WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner`,
  );
  const byPid = new Map(
    context.fleet.replicas('relay').map((name) => [String(context.fleet.pid(name) ?? ''), name]),
  );
  const held = new Map<string, number>();
  for (const row of rows) {
    const name = byPid.get(row.owner.split(':')[1] ?? '') ?? `gone (${row.owner})`;
    held.set(name, (held.get(name) ?? 0) + row.held);
  }
  return held;
}

const describeLeases = (held: Map<string, number>): string =>
  [...held].map(([name, n]) => `${name} ${n}`).join(', ') || 'none';

/**
 * SIGKILL the relay that holds most partitions (read from outbox_partitions), under load:
 * its share must move to the live relay (every partition held by a live relay, none by the
 * dead one) within the contract's 5 s, and nothing be lost, doubled or reordered (the
 * invariants). Then it starts again and must get a share back.
 */
const relayMostPartitionsKill: Fault = async (context) => {
  let inFlightAtFault = 0;
  for (let kill = 1; kill <= context.mode.relayKills; kill++) {
    await loadReaches(context, (kill - 0.5) / (context.mode.relayKills + 0.5));
    inFlightAtFault = Math.max(inFlightAtFault, await context.inFlight());
    const held = await leasesByReplica(context);
    const [victim, share] = [...held]
      .filter(([name]) => context.fleet.replicas('relay').includes(name))
      .sort((a, b) => b[1] - a[1])[0] ?? [context.fleet.replicas('relay')[0]!, 0];
    await context.fleet.kill(victim);
    const killedAt = Date.now();
    try {
      const moved = await answerWithin(
        `${victim}'s partitions held by the live relay`,
        async () => {
          const now = await leasesByReplica(context);
          const live = [...now].filter(
            ([name]) =>
              context.fleet.replicas('relay').includes(name) && context.fleet.pid(name) !== undefined,
          );
          return live.reduce((n, [, count]) => n + count, 0) === PARTITIONS && live.length === now.size
            ? now
            : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      const movedMs = Date.now() - killedAt;
      if (moved === undefined) {
        context.findings.push(
          `relay SIGKILL #${kill}: ${victim}'s ${share} partitions not all taken over in 30 s`,
        );
      } else {
        context.notes.push(
          `relay SIGKILL #${kill}: ${victim} held ${share} of ${PARTITIONS} (${describeLeases(held)}), ` +
            `${inFlightAtFault} in flight; its share moved in ${movedMs} ms (${describeLeases(moved)})`,
        );
        if (movedMs > SHARE_MOVES_WITHIN_MS)
          context.findings.push(
            `relay SIGKILL #${kill}: the share moved in ${movedMs} ms, over the contract's 5 s`,
          );
      }
    } finally {
      await context.fleet.start(victim);
    }
    const restartedAt = Date.now();
    const rejoined = await answerWithin(
      `${victim} holding partitions again`,
      async () => ((await leasesByReplica(context)).get(victim) ?? 0) > 0,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    context.notes.push(
      rejoined === undefined
        ? `${victim} restarted and held no partition within 30 s`
        : `${victim} restarted and held a share again ${Date.now() - restartedAt} ms later (${describeLeases(await leasesByReplica(context))})`,
    );
  }
  return { inFlightAtFault, healedAt: Date.now() };
};

// ---------------------------------------------------------------------------------------
// One api of two

/**
 * SIGKILL one api replica under load, at a moment when a saga start is pending (an order
 * committed, its saga not yet known to have started: with two apis, the victim's about half
 * the time), and keep it down while the other serves: the load (which spreads its POSTs over
 * both) must go on through the live one, and the sagas of orders the dead one accepted but
 * had not started must be started by the live one's starter (DB-first acceptance: the
 * start request is in Postgres) while it is still down.
 */
const apiReplicaKill: Fault = async (context) => {
  const replicas = context.fleet.replicas('api');
  const urls = context.api.baseUrls;
  const drillStart = Date.now(); // the load starts with the fault; the client counts every drill's POSTs
  await loadReaches(context, 0.3);
  await delay(context.rng.int(0, 500));
  const index = context.rng.int(0, replicas.length - 1);
  const victim = replicas[index]!;
  const victimUrl = urls[index]!;
  const inFlightAtFault = await context.inFlight();
  const pendingStarts = async (): Promise<string[]> =>
    (await context.pool.query<{ order_id: string }>('SELECT order_id FROM saga_starts')).rows.map(
      (row) => row.order_id,
    );
  const startPending = await answerWithin(
    'a saga start pending',
    async () => {
      const ids = await pendingStarts();
      return ids.length > 0 ? ids : undefined;
    },
    { timeoutMs: 5_000, intervalMs: 5 },
  );
  await context.fleet.kill(victim);
  const killedAt = Date.now();
  // Pending just before the kill (the victim may have been starting them) or just after it.
  const pendingIds = [...new Set([...(startPending ?? []), ...(await pendingStarts())])];
  let healedAt: number;
  try {
    const started = await answerWithin(
      `the ${pendingIds.length} saga starts pending around the kill done without ${victim}`,
      async () => {
        const { rows } = await context.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM saga_starts WHERE order_id = ANY($1::uuid[])',
          [pendingIds],
        );
        return rows[0]!.n === 0;
      },
      { timeoutMs: Math.max(context.mode.apiDownMs, 30_000), intervalMs: 100 },
    );
    const startedMs = Date.now() - killedAt;
    await delay(Math.max(0, killedAt + context.mode.apiDownMs - Date.now()));
    const acceptedByVictim = context.api.postTimings.filter(
      (post) =>
        post.baseUrl === victimUrl &&
        post.status === 202 &&
        post.sentAt >= drillStart &&
        post.sentAt < killedAt,
    ).length;
    const meanwhile = context.api.postTimings.filter((post) => post.sentAt >= killedAt);
    const servedByLive = meanwhile.filter((post) => post.baseUrl !== victimUrl && post.status === 202).length;
    const triedDead = meanwhile.filter((post) => post.baseUrl === victimUrl).length;
    context.notes.push(
      `${victim} SIGKILLed with ${inFlightAtFault} in flight (it had accepted ${acceptedByVictim} orders), down ` +
        `${Date.now() - killedAt} ms: meanwhile the other api accepted ${servedByLive} POSTs (${triedDead} tried on the dead one first); ` +
        (started === undefined
          ? `the ${pendingIds.length} saga starts pending around the kill NOT all done`
          : `the ${pendingIds.length} saga starts pending around the kill were done in ${startedMs} ms`) +
        (startPending === undefined ? ' (no start was pending within 5 s: killed anyway)' : ''),
    );
    if (started === undefined)
      context.findings.push(
        `saga starts pending at ${victim}'s kill were not done by the live api within 30 s`,
      );
    if (servedByLive === 0 && context.progress() < 1)
      context.findings.push(`no POST accepted by the live api while ${victim} was down`);
  } finally {
    await context.fleet.start(victim);
    healedAt = Date.now();
  }
  const left = (await readPendingStarts(context.pool)).pending;
  if (left > 0) context.notes.push(`${left} saga starts pending when ${victim} came back`);
  return { inFlightAtFault, healedAt };
};

// ---------------------------------------------------------------------------------------

export const CLUSTER_DRILLS: Record<string, (env: DrillEnv) => Promise<DrillResult>> = {
  'temporal-kill': (env) =>
    runLoadDrill(env, 'temporal-kill', temporalRestart('crash', 'SIGKILL, restarted on its Postgres')),
  'nats-node-kill': (env) => runLoadDrill(env, 'nats-node-kill', natsNodeKill),
  'worker-kill': (env) => runLoadDrill(env, 'worker-kill', workerKills),
  'relay-kill': (env) => runLoadDrill(env, 'relay-kill', relayMostPartitionsKill),
  'api-replica-kill': (env) => runLoadDrill(env, 'api-replica-kill', apiReplicaKill),
};
