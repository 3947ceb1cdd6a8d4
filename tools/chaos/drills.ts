/**
 * The drills. Each runs a mixed load of sagas on its own products, breaks one thing in the
 * middle of it, heals it, waits until every saga is at rest and then checks every
 * invariant (tools/chaos/invariants.ts) over its orders and its products.
 */
import { resetProduct } from '../../store/products';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { setTimeout as delay } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../store/pool';
import { readPendingStarts } from '../../store/saga-starts';
import { STREAM_NAME, TERMINAL_STATUSES } from '../../contracts/index';
import { answerWithin, eventually } from '../fixtures/eventually';
import { orderBody } from '../fixtures/order';
import type { Services } from './fleet';
import { evaluate, gatherSnapshot, waitUntilSettled, type Violation } from './invariants';
import {
  ApiClient,
  callUntilAnswered,
  catalogFor,
  driveOrders,
  expectedOutcomes,
  planOrders,
  StatusTally,
  type DrivenOrder,
  type Rng,
} from './load';
import type { Piece, StopMode } from './stack';

export interface Mode {
  name: 'full' | 'reduced';
  sagasPerDrill: number;
  ratePerS: number;
  workerKills: number;
  relayKills: number;
  postgresDownMs: number;
  temporalDownMs: number;
  /** How long Temporal is frozen (SIGSTOP) in the temporal-pause drill. */
  temporalPauseMs: number;
  apiKills: number;
  natsDownMs: number;
  /** How long a killed api replica stays down while the other serves (cluster). */
  apiDownMs: number;
  stormKeys: number;
  stormCopies: number;
  settleTimeoutMs: number;
}

export const FULL: Mode = {
  name: 'full',
  sagasPerDrill: 200,
  // About this machine's saturation (2 cores, ~0.3 s of CPU per saga across the stack):
  // the drills run near it, not far past it, so recovery times measure the faults.
  ratePerS: 8,
  workerKills: 3,
  relayKills: 3,
  postgresDownMs: 10_000,
  temporalDownMs: 5_000,
  temporalPauseMs: 20_000,
  apiKills: 3,
  natsDownMs: 30_000,
  apiDownMs: 15_000,
  stormKeys: 20,
  stormCopies: 50,
  settleTimeoutMs: 300_000,
};

export const REDUCED: Mode = {
  name: 'reduced',
  sagasPerDrill: 40,
  ratePerS: 10,
  workerKills: 2,
  relayKills: 2,
  postgresDownMs: 4_000,
  temporalDownMs: 3_000,
  temporalPauseMs: 5_000,
  apiKills: 2,
  natsDownMs: 10_000,
  apiDownMs: 5_000,
  stormKeys: 20,
  stormCopies: 50,
  settleTimeoutMs: 180_000,
};

/**
 * The servers a drill can take away, on either engine: the dev stack (tools/chaos/stack.ts:
 * one of each) or the cluster (tools/dev/cluster-stack.ts: the Temporal server, three NATS
 * nodes).
 */
export interface DrillStack {
  postgres: Piece;
  temporal: Piece;
  /** Every NATS server: one on dev, the cluster's three nodes. */
  natsNodes: Piece[];
}

export interface DrillEnv {
  stack: DrillStack;
  /** For the "no saga without a 202" check: which runs Temporal has. */
  temporal: Client;
  fleet: Services;
  pool: Pool;
  nats: NatsConnection;
  api: ApiClient;
  rng: Rng;
  mode: Mode;
  runId: string;
  log: (line: string) => void;
}

export interface DrillResult {
  drill: string;
  /** Orders placed, and how many the API accepted (202). */
  sagas: number;
  accepted: number;
  /** Orders not yet terminal when the fault hit (the largest count if it hit several times). */
  inFlightAtFault: number | null;
  /** From the fault healed to every saga terminal and every event published. */
  recoveryMs: number | null;
  settled: boolean;
  violations: Violation[];
  /** Other broken promises: 5xx other than 503, processes that died on their own, lost or doubled orders. */
  findings: string[];
  /** Sagas that ended other than their scenario allows (not an invariant; shown for judgement). */
  unexpectedOutcomes: string[];
  outcomes: Record<string, number>;
  statuses: Record<string, number>;
  notes: string[];
  durationMs: number;
  /** For the final whole-run check. */
  orderIds: string[];
  initialStock: Record<string, number>;
  since: Date;
}

export interface FaultContext extends DrillEnv {
  skus: string[];
  /** Share of the drill's orders accepted so far. */
  progress(): number;
  inFlight(): Promise<number>;
  notes: string[];
  /** Broken promises seen by the fault itself (e.g. a 500 while a dependency was down). */
  findings: string[];
}

export interface FaultReport {
  inFlightAtFault: number;
  healedAt: number;
}

export type Fault = (context: FaultContext) => Promise<FaultReport>;

const TERMINAL = [...TERMINAL_STATUSES];

async function seedProducts(pool: Pool, products: Record<string, [number, number]>): Promise<void> {
  for (const [sku, [price, available]] of Object.entries(products)) {
    await resetProduct(pool, sku, { name: sku, priceCents: price, available });
  }
}

/**
 * Waits until the load has had `share` of the drill's orders accepted; a load that never
 * gets there fails the fault (a finding) instead of faulting an idle system.
 */
export function loadReaches(context: FaultContext, share: number): Promise<boolean> {
  return eventually(
    `${Math.round(share * 100)} % of the orders accepted`,
    () => context.progress() >= share,
    {
      timeoutMs: 120_000,
      intervalMs: 100,
      detail: () => `the load is at ${Math.round(context.progress() * 100)} %`,
    },
  );
}

/** Keeps asking the API a few questions, on its own status tally, until `stop.now`. */
async function probeApi(
  env: DrillEnv,
  skus: string[],
  orderIds: () => string[],
  stop: { now: boolean },
): Promise<ApiClient> {
  const probe = new ApiClient(env.api.baseUrls);
  while (!stop.now) {
    const id = orderIds()[0];
    await Promise.all([
      id ? probe.call('GET', `/orders/${id}`, { timeoutMs: 10_000 }) : undefined,
      probe.call('GET', `/inventory/${skus[0]!}`, { timeoutMs: 10_000 }),
      probe.call('GET', '/readyz', { timeoutMs: 10_000 }),
      probe.call('GET', `/orders?limit=5`, { timeoutMs: 10_000 }),
      // An unknown sku: refused (422) when the catalog answers, so no order is ever created.
      probe.call('POST', '/orders', {
        timeoutMs: 10_000,
        body: orderBody({ customerId: 'c-probe', sku: 'NO-SUCH-SKU', quantity: 1 }),
      }),
    ]);
    await delay(200);
  }
  return probe;
}

const describeTally = (api: ApiClient): string =>
  [...api.tally.counts].map(([key, count]) => `${key} ×${count}`).join(', ');

// ---------------------------------------------------------------------------------------
// Running a drill

export async function runLoadDrill(
  env: DrillEnv,
  drill: string,
  fault: Fault | undefined,
): Promise<DrillResult> {
  const started = Date.now();
  const { mode, pool } = env;
  const prefix = `${drill}-${env.runId}`;
  const catalog = catalogFor(prefix, mode.sagasPerDrill);
  await seedProducts(pool, catalog.products);
  const skus = Object.keys(catalog.products);
  const initialStock = Object.fromEntries(
    Object.entries(catalog.products).map(([sku, [, available]]) => [sku, available]),
  );
  env.api.tally = new StatusTally();
  const exitsBefore = env.fleet.unexpectedExits.length;
  const since = new Date(Date.now() - 5_000);
  const plans = planOrders(mode.sagasPerDrill, env.rng, catalog, `c-${prefix}`);
  const accepted: DrivenOrder[] = [];
  const notes: string[] = [];
  const findings: string[] = [];
  env.log(`drill ${drill}: ${plans.length} orders at ${mode.ratePerS}/s`);

  const load = driveOrders(env.api, plans, {
    ratePerS: mode.ratePerS,
    concurrency: 64,
    deadline: Date.now() + mode.settleTimeoutMs,
    onAccepted: (order) => accepted.push(order),
  });
  const context: FaultContext = {
    ...env,
    skus,
    notes,
    findings,
    progress: () => accepted.length / plans.length,
    inFlight: async () => {
      const { rows } = await pool.query<{ n: number }>(
        `SELECT count(DISTINCT o.id)::int AS n FROM orders o JOIN order_items i ON i.order_id = o.id
          WHERE i.sku = ANY($1::text[]) AND o.status <> ALL($2::text[])`,
        [skus, TERMINAL],
      );
      return rows[0]!.n;
    },
  };
  const [driven, faulted] = await Promise.allSettled([
    load,
    fault ? fault(context) : Promise.resolve<FaultReport | undefined>(undefined),
  ]);
  if (driven.status === 'rejected') findings.push(`load failed: ${String(driven.reason)}`);
  if (faulted.status === 'rejected') findings.push(`fault injection failed: ${String(faulted.reason)}`);
  const orders = driven.status === 'fulfilled' ? driven.value : accepted;
  const report = faulted.status === 'fulfilled' ? faulted.value : undefined;
  const healedAt = report?.healedAt ?? Date.now();

  const orderIds = orders.flatMap((order) => (order.orderId ? [order.orderId] : []));
  const options = {
    pool,
    nats: env.nats,
    since,
    orderIds,
    initialStock,
    settleTimeoutMs: mode.settleTimeoutMs,
    temporal: { client: env.temporal, customerPrefix: `c-${prefix}` },
  };
  const settle = await waitUntilSettled(options);
  const settledAt = Date.now();
  if (!settle.settled) {
    notes.push(
      `not at rest after ${Math.round(settle.waitedMs / 1000)} s: ${settle.notTerminal} not terminal, ${settle.unpublished} unpublished`,
    );
  }
  const scenarioOf = new Map(orders.map((order) => [order.orderId, order.plan.scenario]));
  const violations = evaluate(await gatherSnapshot(options)).map((violation) => {
    const scenario = scenarioOf.get(violation.subject);
    return scenario ? { ...violation, detail: `${violation.detail} (scenario ${scenario})` } : violation;
  });

  for (const order of orders) {
    if (order.refused !== undefined)
      findings.push(`POST /orders (${order.plan.scenario}) never accepted: last status ${order.refused}`);
  }
  findings.push(...env.api.tally.serverErrors().map((entry) => `server error: ${entry}`));
  for (const exit of env.fleet.unexpectedExits.slice(exitsBefore)) {
    findings.push(
      `${exit.service} exited on its own (${exit.how}) at ${exit.at.toISOString()}: ${exit.lastLines.split('\n').slice(-3).join(' | ')}`,
    );
  }
  const { outcomes, unexpected } = await outcomesOf(pool, orders);
  return {
    drill,
    sagas: plans.length,
    accepted: orderIds.length,
    inFlightAtFault: report?.inFlightAtFault ?? null,
    recoveryMs: settle.settled ? settledAt - healedAt : null,
    settled: settle.settled,
    violations,
    findings,
    unexpectedOutcomes: unexpected,
    outcomes,
    statuses: env.api.tally.byStatus(),
    notes,
    durationMs: Date.now() - started,
    orderIds,
    initialStock,
    since,
  };
}

async function outcomesOf(
  pool: Pool,
  orders: readonly DrivenOrder[],
): Promise<{ outcomes: Record<string, number>; unexpected: string[] }> {
  const ids = orders.flatMap((order) => (order.orderId ? [order.orderId] : []));
  const { rows } = await pool.query<{ id: string; status: string; failure_reason: string | null }>(
    'SELECT id, status, failure_reason FROM orders WHERE id = ANY($1::uuid[])',
    [ids],
  );
  const byId = new Map(
    rows.map((row) => [row.id, row.failure_reason ? `${row.status}/${row.failure_reason}` : row.status]),
  );
  const outcomes: Record<string, number> = {};
  const unexpected: string[] = [];
  for (const order of orders) {
    if (!order.orderId) continue;
    const outcome = byId.get(order.orderId) ?? 'MISSING';
    const key = `${order.plan.scenario} → ${outcome}`;
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    if (!expectedOutcomes(order.plan.scenario).includes(outcome)) {
      unexpected.push(
        `${order.orderId} ${order.plan.scenario} → ${outcome}${order.followUp ? ` (${order.followUp})` : ''}`,
      );
    }
  }
  return { outcomes, unexpected };
}

// ---------------------------------------------------------------------------------------
// The faults

export const workerKills: Fault = async (context) => {
  let inFlightAtFault = 0;
  for (let kill = 1; kill <= context.mode.workerKills; kill++) {
    // Spread the kills over the load: after ~15 %, ~45 %, ~75 % of the orders, plus jitter.
    await loadReaches(context, (kill - 0.5) / (context.mode.workerKills + 0.5));
    await delay(context.rng.int(0, 1_500));
    inFlightAtFault = Math.max(inFlightAtFault, await context.inFlight());
    await context.fleet.kill('worker');
    const downMs = context.rng.int(500, 3_000);
    context.notes.push(`worker SIGKILL #${kill} with ${inFlightAtFault} in flight, down ${downMs} ms`);
    await delay(downMs);
    await context.fleet.start('worker');
  }
  return { inFlightAtFault, healedAt: Date.now() };
};

/**
 * A dependency down for `downMs` (from the moment it is told to stop) while the API is
 * probed, then started again: notes how long it was down and what the API answered, and
 * every 5xx meanwhile is a finding. Returns when it was back.
 */
async function downWhileProbed(
  context: FaultContext,
  dependency: {
    name: string;
    how: string;
    stop: () => Promise<void>;
    start: () => Promise<void>;
    downMs: number;
    /** Orders the probe reads while it is down. */
    orderIds: string[];
  },
): Promise<number> {
  const { name } = dependency;
  const stop = { now: false };
  const downAt = Date.now();
  await dependency.stop();
  const probing = probeApi(context, context.skus, () => dependency.orderIds, stop);
  try {
    await delay(dependency.downMs);
    await dependency.start();
  } finally {
    stop.now = true;
  }
  const healedAt = Date.now();
  const probe = await probing;
  context.notes.push(`${name} down ${healedAt - downAt} ms (${dependency.how})`);
  context.notes.push(`API while ${name} was down: ${describeTally(probe)}`);
  context.findings.push(...probe.tally.serverErrors().map((entry) => `while ${name} was down: ${entry}`));
  return healedAt;
}

/** Postgres crashes (immediate shutdown), stays down, comes back; the API is probed meanwhile. */
const postgresRestart: Fault = async (context) => {
  await loadReaches(context, 0.3);
  const inFlightAtFault = await context.inFlight();
  const { rows } = await context.pool.query<{ id: string }>(
    `SELECT o.id FROM orders o JOIN order_items i ON i.order_id = o.id WHERE i.sku = ANY($1::text[]) LIMIT 1`,
    [context.skus],
  );
  const healedAt = await downWhileProbed(context, {
    name: 'postgres',
    how: 'immediate shutdown, then restart',
    stop: () => context.stack.postgres.stop('crash'),
    start: () => context.stack.postgres.start(),
    downMs: context.mode.postgresDownMs,
    orderIds: rows.map((row) => row.id),
  });
  return { inFlightAtFault, healedAt };
};

/** Temporal stopped (dev: SIGTERM; cluster: SIGKILL), down a while, started again on its data. */
export const temporalRestart =
  (how: StopMode, what: string): Fault =>
  async (context) => {
    await loadReaches(context, 0.3);
    const inFlightAtFault = await context.inFlight();
    const healedAt = await downWhileProbed(context, {
      name: 'temporal',
      how: what,
      stop: () => context.stack.temporal.stop(how),
      start: () => context.stack.temporal.start(),
      downMs: context.mode.temporalDownMs,
      orderIds: [],
    });
    return { inFlightAtFault, healedAt };
  };

const percentile = (sorted: readonly number[], p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/**
 * Temporal freezes (SIGSTOP): its connections stay open and nothing answers, the worst case
 * for a client. Orders must still be accepted (202) at once, and their sagas start once it
 * answers again; the notes give POST /orders latency meanwhile and the time to start them all.
 */
const temporalPause: Fault = async (context) => {
  await loadReaches(context, 0.3);
  const inFlightAtFault = await context.inFlight();
  const pausedAt = Date.now();
  context.stack.temporal.pause();
  try {
    await delay(context.mode.temporalPauseMs);
  } finally {
    context.stack.temporal.resume();
  }
  const resumedAt = Date.now();
  await eventually(
    'every saga accepted during the pause started',
    async () => (await readPendingStarts(context.pool)).pending === 0,
    {
      timeoutMs: 60_000,
      intervalMs: 100,
    },
  );
  const allStartedMs = Date.now() - resumedAt;
  const posts = context.api.postTimings.filter((post) => post.sentAt >= pausedAt && post.sentAt < resumedAt);
  const ms = posts.map((post) => post.ms).sort((a, b) => a - b);
  const statuses = new Map<number, number>();
  for (const post of posts) statuses.set(post.status, (statuses.get(post.status) ?? 0) + 1);
  context.notes.push(
    `temporal paused ${resumedAt - pausedAt} ms (SIGSTOP); POST /orders meanwhile: ${posts.length} answers ` +
      `(${[...statuses].map(([status, count]) => `${status} ×${count}`).join(', ')}), ` +
      `p50 ${percentile(ms, 50)} ms, p99 ${percentile(ms, 99)} ms, max ${ms[ms.length - 1] ?? NaN} ms`,
  );
  context.notes.push(
    `every saga accepted during the pause started ${allStartedMs} ms after Temporal answered again`,
  );
  for (const post of posts) {
    if (post.status !== 202)
      context.findings.push(`POST /orders answered ${post.status} while Temporal was paused`);
  }
  return { inFlightAtFault, healedAt: resumedAt };
};

/**
 * The API is killed (SIGKILL) under load, at random moments, some of them between an
 * order's commit and its saga's start: the restarted API's starter must start those sagas,
 * and clients retrying with their Idempotency-Key must get the same order.
 */
const apiKills: Fault = async (context) => {
  let inFlightAtFault = 0;
  for (let kill = 1; kill <= context.mode.apiKills; kill++) {
    await loadReaches(context, (kill - 0.5) / (context.mode.apiKills + 0.5));
    await delay(context.rng.int(0, 500));
    inFlightAtFault = Math.max(inFlightAtFault, await context.inFlight());
    await context.fleet.kill('api');
    const downMs = context.rng.int(500, 2_000);
    context.notes.push(`api SIGKILL #${kill} with ${inFlightAtFault} in flight, down ${downMs} ms`);
    await delay(downMs);
    await context.fleet.start('api');
  }
  return { inFlightAtFault, healedAt: Date.now() };
};

const natsOutage: Fault = async (context) => {
  await loadReaches(context, 0.3);
  const inFlightAtFault = await context.inFlight();
  const downAt = Date.now();
  await Promise.all(context.stack.natsNodes.map((node) => node.stop('graceful')));
  await delay(context.mode.natsDownMs);
  const { rows } = await context.pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL AND parked_at IS NULL',
  );
  await Promise.all(context.stack.natsNodes.map((node) => node.start()));
  const healedAt = Date.now();
  context.notes.push(
    `nats down ${healedAt - downAt} ms; ${rows[0]!.n} outbox events waiting when it came back`,
  );
  return { inFlightAtFault, healedAt };
};

/**
 * SIGKILL the relay in the middle of a batch: stop it, let a backlog build, start it and
 * kill it as soon as the stream grows (published, not yet marked in the outbox).
 */
const relayKills: Fault = async (context) => {
  const jsm = await jetstreamManager(context.nats);
  const lastSeq = async (): Promise<number> => (await jsm.streams.info(STREAM_NAME)).state.last_seq;
  const counts = async (): Promise<{ pending: number; published: number }> => {
    const { rows } = await context.pool.query<{ pending: number; published: number }>(
      `SELECT count(*) FILTER (WHERE published_at IS NULL AND parked_at IS NULL)::int AS pending,
              count(*) FILTER (WHERE published_at IS NOT NULL)::int AS published FROM outbox`,
    );
    return rows[0]!;
  };
  let inFlightAtFault = 0;
  for (let kill = 1; kill <= context.mode.relayKills; kill++) {
    await loadReaches(context, (kill - 0.5) / (context.mode.relayKills + 0.5));
    inFlightAtFault = Math.max(inFlightAtFault, await context.inFlight());
    await context.fleet.kill('relay');
    // Best effort, and recorded in the note: a backlog of 40 within 4 s, and the new relay's
    // first publish within 30 s (kill it mid-batch); either way the relay is killed then.
    await answerWithin('a backlog of 40', async () => (await counts()).pending >= 40, {
      timeoutMs: 4_000,
      intervalMs: 100,
    });
    const before = await counts();
    const seqBefore = await lastSeq();
    const starting = context.fleet.start('relay').catch(() => undefined);
    let seqAtKill = seqBefore;
    await answerWithin(
      'the restarted relay publishing',
      async () => (seqAtKill = await lastSeq()) > seqBefore,
      { timeoutMs: 30_000, intervalMs: 5 },
    );
    await context.fleet.kill('relay');
    await starting;
    const after = await counts();
    context.notes.push(
      `relay SIGKILL #${kill}: backlog ${before.pending}; at the kill the stream had taken ${seqAtKill - seqBefore} ` +
        `and the outbox marked ${after.published - before.published} (${after.pending} still pending)`,
    );
  }
  await context.fleet.start('relay');
  return { inFlightAtFault, healedAt: Date.now() };
};

// ---------------------------------------------------------------------------------------
// Idempotency storm: many identical POSTs per key at once

async function idempotencyStorm(env: DrillEnv): Promise<DrillResult> {
  const started = Date.now();
  const { mode, pool, api } = env;
  const prefix = `storm-${env.runId}`;
  const sku = `${prefix}-SKU`;
  const initialStock = { [sku]: mode.stormKeys * 10 };
  await seedProducts(pool, { [sku]: [1_299, mode.stormKeys * 10] });
  api.tally = new StatusTally();
  const exitsBefore = env.fleet.unexpectedExits.length;
  const since = new Date(Date.now() - 5_000);
  const keys = Array.from({ length: mode.stormKeys }, (_, k) => ({
    key: `storm-${env.runId}-${k}`,
    body: orderBody({ customerId: `c-${prefix}-${k}`, sku, quantity: 1 + (k % 3) }),
  }));
  env.log(`drill idempotency-storm: ${mode.stormKeys} keys × ${mode.stormCopies} concurrent POSTs`);
  const answers = await Promise.all(
    keys.flatMap(({ key, body }) =>
      Array.from({ length: mode.stormCopies }, async () => ({
        key,
        answer: await api.call('POST', '/orders', {
          body,
          headers: { 'idempotency-key': key },
          timeoutMs: 60_000,
        }),
      })),
    ),
  );
  const findings: string[] = [];
  const notes: string[] = [];
  const orderIds: string[] = [];
  const stormStatuses: Record<string, number> = {};
  for (const { key, body } of keys) {
    const mine = answers.filter((entry) => entry.key === key).map((entry) => entry.answer);
    for (const answer of mine) stormStatuses[answer.status] = (stormStatuses[answer.status] ?? 0) + 1;
    // Then as a client would: retry until the key has its answer.
    const final = await callUntilAnswered(api, 'POST', '/orders', {
      body,
      headers: { 'idempotency-key': key },
      deadline: Date.now() + 60_000,
    });
    const accepted = [...mine, final].filter((answer) => answer.status === 202);
    const ids = new Set(accepted.map((answer) => (answer.body as { orderId: string }).orderId));
    const firsts = accepted.filter((answer) => answer.headers?.get('idempotent-replayed') !== 'true').length;
    if (final.status !== 202) findings.push(`key ${key}: never answered 202 (last ${final.status})`);
    if (ids.size !== 1) findings.push(`key ${key}: ${ids.size} different order ids (${[...ids].join(', ')})`);
    if (firsts !== 1) findings.push(`key ${key}: ${firsts} first (not replayed) 202 answers`);
    const bodies = new Set(accepted.map((answer) => JSON.stringify(answer.body)));
    if (bodies.size > 1) findings.push(`key ${key}: replays differ from the first answer`);
    orderIds.push(...ids);
  }
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM orders WHERE customer_id LIKE $1`,
    [`c-${prefix}-%`],
  );
  notes.push(
    `storm answers: ${Object.entries(stormStatuses)
      .map(([s, n]) => `${s} ×${n}`)
      .join(', ')}`,
  );
  notes.push(
    `orders created: ${rows[0]!.n} for ${mode.stormKeys} keys; distinct order ids answered: ${new Set(orderIds).size}`,
  );
  if (rows[0]!.n !== mode.stormKeys) findings.push(`${rows[0]!.n} orders for ${mode.stormKeys} keys`);
  const unexpectedStatuses = Object.keys(stormStatuses).filter(
    (status) => !['202', '409', '503'].includes(status),
  );
  if (unexpectedStatuses.length > 0)
    findings.push(`unexpected storm statuses: ${unexpectedStatuses.join(', ')}`);

  const healedAt = Date.now();
  const options = {
    pool,
    nats: env.nats,
    since,
    orderIds: [...new Set(orderIds)],
    initialStock,
    settleTimeoutMs: mode.settleTimeoutMs,
  };
  const settle = await waitUntilSettled(options);
  const settledAt = Date.now();
  const violations = evaluate(await gatherSnapshot(options));
  findings.push(...api.tally.serverErrors().map((entry) => `server error: ${entry}`));
  for (const exit of env.fleet.unexpectedExits.slice(exitsBefore))
    findings.push(`${exit.service} exited on its own (${exit.how})`);
  return {
    drill: 'idempotency-storm',
    sagas: mode.stormKeys,
    accepted: new Set(orderIds).size,
    inFlightAtFault: null,
    recoveryMs: settle.settled ? settledAt - healedAt : null,
    settled: settle.settled,
    violations,
    findings,
    unexpectedOutcomes: [],
    outcomes: {},
    statuses: api.tally.byStatus(),
    notes,
    durationMs: Date.now() - started,
    orderIds: [...new Set(orderIds)],
    initialStock,
    since,
  };
}

// ---------------------------------------------------------------------------------------

export const DRILLS: Record<string, (env: DrillEnv) => Promise<DrillResult>> = {
  baseline: (env) => runLoadDrill(env, 'baseline', undefined),
  'worker-kill': (env) => runLoadDrill(env, 'worker-kill', workerKills),
  'postgres-restart': (env) => runLoadDrill(env, 'postgres-restart', postgresRestart),
  'temporal-restart': (env) =>
    runLoadDrill(
      env,
      'temporal-restart',
      temporalRestart('graceful', 'SIGTERM, restart on the same temporal.db'),
    ),
  'temporal-pause': (env) => runLoadDrill(env, 'temporal-pause', temporalPause),
  'api-kill': (env) => runLoadDrill(env, 'api-kill', apiKills),
  'nats-outage': (env) => runLoadDrill(env, 'nats-outage', natsOutage),
  'relay-kill': (env) => runLoadDrill(env, 'relay-kill', relayKills),
  'idempotency-storm': idempotencyStorm,
};

/** Every invariant again, over everything the run did (all drills' orders and products). */
export async function finalCheck(
  env: DrillEnv,
  results: readonly DrillResult[],
  since: Date,
): Promise<Violation[]> {
  const options = {
    pool: env.pool,
    nats: env.nats,
    since,
    orderIds: results.flatMap((result) => result.orderIds),
    initialStock: Object.assign({}, ...results.map((result) => result.initialStock)) as Record<
      string,
      number
    >,
    settleTimeoutMs: env.mode.settleTimeoutMs,
  };
  await waitUntilSettled(options);
  return evaluate(await gatherSnapshot(options));
}
