/**
 * Baseline (b), direct: the saga's SQL transactions without Temporal. The recipe is a real
 * completed saga's happy path (tools/bench/template.ts: every step, local activity or not, in
 * order, with its arguments), so the baseline follows the saga as it changes. Each direct
 * "saga" is that recipe with a fresh order id: the API's own insert, then every activity
 * function from createActivities, called in sequence inside MockActivityEnvironment (which
 * provides the activity Context they read). Several run at once; sagas/s is what completes.
 *
 * Which products a direct saga buys: `spread` (the main figure) gives each one other
 * products of the catalog, drawn by a seeded PRNG, like the load the saga is measured
 * under; `same` buys the recipe's own products every time, so every run locks the same
 * rows (the hot-row case, and what this baseline measured before it spread).
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { createSimulatedCarrier, createSimulatedPaymentGateway } from '../../activities/providers/simulated';
import { insertOrderIfAbsent } from '../../store/orders';
import { createPool } from '../../store/pool';
import { withTransaction } from '../../store/tx';
import { workflowIdFor } from '../../contracts/index';
import { seededRng } from '../fixtures/seed';
import { catalogSkus, replacementProducts, type Catalog } from './lib/workload';
import { summarize, type Summary } from './lib/stats';
import { instantiate, type SagaTemplate } from './template';

export interface DirectRun {
  concurrency: number;
  sagas: number;
  sagasPerS: number;
  /** One direct saga, first statement to last commit. */
  latency: Summary;
  errors: number;
  firstError?: string;
}

type ActivityFunction = (...args: unknown[]) => Promise<unknown>;

export type DirectProducts = { kind: 'spread'; catalog: Catalog; seed: number } | { kind: 'same' };

export async function runDirect(
  options: {
    databaseUrl: string;
    poolSize: number;
    slowPaymentMs: number;
    template: SagaTemplate;
    products: DirectProducts;
    concurrency: number;
    durationMs: number;
  },
  signal: AbortSignal,
): Promise<DirectRun> {
  const pool = createPool(options.databaseUrl, {
    max: options.poolSize,
    applicationName: 'order-saga-bench-direct',
  });
  const activities = createActivities({
    pool,
    gateway: createSimulatedPaymentGateway(pool, { slowCallMs: options.slowPaymentMs }),
    carrier: createSimulatedCarrier(pool),
  }) as unknown as Record<string, ActivityFunction | undefined>;

  const { products } = options;
  const recipeSkus = options.template.input.items.map((line) => line.sku);
  const productsFor: () => ReadonlyMap<string, string> =
    products.kind === 'same'
      ? () => new Map()
      : (() => {
          const rng = seededRng(products.seed);
          const skus = catalogSkus(products.catalog);
          return () => replacementProducts(recipeSkus, skus, rng);
        })();

  const runOne = async (): Promise<void> => {
    const orderId = randomUUID();
    const workflowId = workflowIdFor(orderId);
    const { input, steps } = instantiate(options.template, orderId, productsFor());
    await withTransaction(pool, (tx) => insertOrderIfAbsent(tx, input)); // what the API writes
    for (const step of steps) {
      const activity = activities[step.activity];
      if (activity === undefined) throw new Error(`no activity ${step.activity}`);
      const environment = new MockActivityEnvironment({
        workflowExecution: { workflowId, runId: randomUUID() },
        activityType: step.activity,
        isLocal: step.local,
        attempt: 1,
      });
      const outcome = await environment.run(activity, ...step.args);
      if (typeof outcome === 'object' && outcome !== null && (outcome as { ok?: unknown }).ok === false) {
        throw new Error(`${step.activity} refused: ${JSON.stringify(outcome)}`);
      }
    }
  };

  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const origin = performance.now();
  const deadline = origin + options.durationMs;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline && !signal.aborted) {
      const started = performance.now();
      try {
        await runOne();
        latencies.push(performance.now() - started);
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, loop));
  } finally {
    await pool.end();
  }
  signal.throwIfAborted();
  const elapsedS = (performance.now() - origin) / 1000;
  return {
    concurrency: options.concurrency,
    sagas: latencies.length,
    sagasPerS: latencies.length / elapsedS,
    latency: summarize(latencies),
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
  };
}
