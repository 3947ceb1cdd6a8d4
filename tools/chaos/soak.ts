/**
 * Soak: a steady mixed load for N minutes; every 10 s the resident memory of api, worker
 * and relay (/proc/<pid>/status VmRSS), the outbox backlog and the sagas in flight are
 * sampled. After warm-up (the first fifth, at least 30 s) each process' RSS must stay
 * within 10 % of its level then (the median of the first minute after warm-up): no sample
 * above it by more than 10 %. The outbox backlog must not grow.
 */
import { resetProduct } from '../../store/products';
import { setTimeout as delay } from 'node:timers/promises';
import { TERMINAL_STATUSES } from '../../contracts/index';
import type { DrillEnv } from './drills';
import { evaluate, gatherSnapshot, waitUntilSettled, type Violation } from './invariants';
import { catalogFor, driveOrders, planOrders, StatusTally, type DrivenOrder } from './load';
import { residentKiB, type ServiceName } from './services';

export interface SoakSample {
  atS: number;
  rssKiB: Partial<Record<ServiceName, number>>;
  /** Outbox rows not yet published (and not parked). */
  outboxPending: number;
  outboxRows: number;
  inFlight: number;
  accepted: number;
}

export interface SoakResult {
  minutes: number;
  ratePerS: number;
  accepted: number;
  achievedRatePerS: number;
  /** From the first order to the last follow-up answered. */
  loadSeconds: number;
  warmupS: number;
  samples: SoakSample[];
  rss: Array<{
    service: ServiceName;
    afterWarmupKiB: number;
    lastKiB: number;
    maxKiB: number;
    maxGrowthPct: number;
    pass: boolean;
  }>;
  outbox: { maxPendingAfterWarmup: number; firstThirdMean: number; lastThirdMean: number; pass: boolean };
  settled: boolean;
  violations: Violation[];
  findings: string[];
  pass: boolean;
}

const SERVICES: ServiceName[] = ['api', 'worker', 'relay'];

function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
const RSS_TOLERANCE = 0.1;

export async function runSoak(
  env: DrillEnv,
  {
    minutes,
    ratePerS,
    sampleEveryMs = 10_000,
  }: { minutes: number; ratePerS: number; sampleEveryMs?: number },
): Promise<SoakResult> {
  const { pool } = env;
  const durationMs = minutes * 60_000;
  const count = Math.ceil((ratePerS * durationMs) / 1_000);
  const prefix = `soak-${env.runId}`;
  const catalog = catalogFor(prefix, count);
  for (const [sku, [price, available]] of Object.entries(catalog.products)) {
    await resetProduct(pool, sku, { name: sku, priceCents: price, available });
  }
  const initialStock = Object.fromEntries(
    Object.entries(catalog.products).map(([sku, [, available]]) => [sku, available]),
  );
  env.api.tally = new StatusTally();
  const exitsBefore = env.fleet.unexpectedExits.length;
  const since = new Date(Date.now() - 5_000);
  const accepted: DrivenOrder[] = [];
  env.log(
    `soak: ${count} orders at ${ratePerS}/s for ${minutes} min, sampling every ${sampleEveryMs / 1000} s`,
  );

  const started = Date.now();
  const load = driveOrders(env.api, planOrders(count, env.rng, catalog, `c-${prefix}`), {
    ratePerS,
    concurrency: 256,
    deadline: started + durationMs + 120_000,
    onAccepted: (order) => accepted.push(order),
  });
  let loading = true;
  void load.finally(() => {
    loading = false;
  });
  const samples: SoakSample[] = [];
  const skus = Object.keys(catalog.products);
  while (loading || samples.length === 0) {
    const rssKiB: Partial<Record<ServiceName, number>> = {};
    for (const service of SERVICES) {
      const pid = env.fleet.pid(service);
      const kib = pid === undefined ? undefined : await residentKiB(pid);
      if (kib !== undefined) rssKiB[service] = kib;
    }
    const { rows } = await pool.query<{ pending: number; total: number; in_flight: number }>(
      `SELECT (SELECT count(*)::int FROM outbox WHERE published_at IS NULL AND parked_at IS NULL) AS pending,
              (SELECT count(*)::int FROM outbox) AS total,
              (SELECT count(DISTINCT o.id)::int FROM orders o JOIN order_items i ON i.order_id = o.id
                WHERE i.sku = ANY($1::text[]) AND o.status <> ALL($2::text[])) AS in_flight`,
      [skus, [...TERMINAL_STATUSES]],
    );
    const row = rows[0]!;
    const sample: SoakSample = {
      atS: Math.round((Date.now() - started) / 1000),
      rssKiB,
      outboxPending: row.pending,
      outboxRows: row.total,
      inFlight: row.in_flight,
      accepted: accepted.length,
    };
    samples.push(sample);
    env.log(
      `soak t=${sample.atS}s rss ${SERVICES.map((s) => `${s}=${Math.round((rssKiB[s] ?? 0) / 1024)}MiB`).join(' ')} ` +
        `outbox pending=${sample.outboxPending} in flight=${sample.inFlight} accepted=${sample.accepted}`,
    );
    const next = started + samples.length * sampleEveryMs;
    while (loading && Date.now() < next) await delay(Math.min(500, next - Date.now()));
  }
  const orders = await load;
  const loadSeconds = (Date.now() - started) / 1000;

  const warmupS = Math.max(30, Math.round((durationMs / 1000) * 0.2));
  const after = samples.filter((sample) => sample.atS >= warmupS);
  const rss = SERVICES.map((service) => {
    const values = after.map((sample) => sample.rssKiB[service]).filter((v): v is number => v !== undefined);
    // The level after warm-up: the median of its first minute, not one sample, which may
    // fall just after (or just before) a garbage collection.
    const base = median(values.slice(0, Math.max(1, Math.round(60_000 / sampleEveryMs))));
    const max = Math.max(...values, 0);
    const growth = base > 0 ? (max - base) / base : 0;
    return {
      service,
      afterWarmupKiB: base,
      lastKiB: values[values.length - 1] ?? 0,
      maxKiB: max,
      maxGrowthPct: Math.round(growth * 1000) / 10,
      pass: base > 0 && growth <= RSS_TOLERANCE,
    };
  });
  const pending = after.map((sample) => sample.outboxPending);
  const third = Math.max(1, Math.floor(pending.length / 3));
  const mean = (values: number[]): number =>
    values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0;
  const firstThirdMean = mean(pending.slice(0, third));
  const lastThirdMean = mean(pending.slice(-third));
  // Noise allowance: a poll interval's worth of events (≈ 5 per saga) either way.
  const outbox = {
    maxPendingAfterWarmup: Math.max(0, ...pending),
    firstThirdMean: Math.round(firstThirdMean),
    lastThirdMean: Math.round(lastThirdMean),
    pass: lastThirdMean <= firstThirdMean * 1.5 + ratePerS * 5,
  };

  const orderIds = orders.flatMap((order) => (order.orderId ? [order.orderId] : []));
  const options = { pool, nats: env.nats, since, orderIds, initialStock, settleTimeoutMs: 180_000 };
  const settle = await waitUntilSettled(options);
  const violations = evaluate(await gatherSnapshot(options));
  const findings = [
    ...env.api.tally.serverErrors().map((entry) => `server error: ${entry}`),
    ...env.fleet.unexpectedExits
      .slice(exitsBefore)
      .map((exit) => `${exit.service} exited on its own (${exit.how})`),
    ...orders
      .filter((order) => order.refused !== undefined)
      .map((order) => `never accepted: ${order.refused}`),
  ];
  return {
    minutes,
    ratePerS,
    accepted: orderIds.length,
    achievedRatePerS: Math.round((orderIds.length / (durationMs / 1000)) * 10) / 10,
    loadSeconds: Math.round(loadSeconds),
    warmupS,
    samples,
    rss,
    outbox,
    settled: settle.settled,
    violations,
    findings,
    pass:
      rss.every((r) => r.pass) &&
      outbox.pass &&
      settle.settled &&
      violations.length === 0 &&
      findings.length === 0,
  };
}
