/**
 * What the bench's orders buy. The main scenarios spread orders over a catalog of many
 * products (each order 1–3 distinct lines, 1–2 units each, drawn by a seeded PRNG, so a run
 * is reproducible from its seed); the "hot SKU" scenario buys one product in every order,
 * so the contention on that one row shows. Pure.
 */
import type { Rng } from '../../fixtures/seed';

export interface Catalog {
  /** Products seeded for the spread scenarios: SPREAD_PREFIX + 0001 … */
  products: number;
  linesPerOrder: { min: number; max: number };
  unitsPerLine: { min: number; max: number };
  /** The one product every order of the hot scenario buys. */
  hotSku: string;
}

export const CATALOG: Catalog = {
  products: 1_000,
  linesPerOrder: { min: 1, max: 3 },
  unitsPerLine: { min: 1, max: 2 },
  hotSku: 'BENCH-HOT',
};

const SPREAD_PREFIX = 'BENCH-';

/** The spread scenarios' SKUs: BENCH-0001 … BENCH-1000. */
export function catalogSkus(catalog: Catalog): string[] {
  const width = String(catalog.products).length;
  return Array.from(
    { length: catalog.products },
    (_, index) => `${SPREAD_PREFIX}${String(index + 1).padStart(width, '0')}`,
  );
}

export type OrderLines = Array<{ sku: string; quantity: number }>;

/** Lines of the next spread order: distinct SKUs (the API takes each SKU at most once). */
export function spreadLines(rng: Rng, skus: readonly string[], catalog: Catalog): OrderLines {
  const count = Math.min(skus.length, rng.int(catalog.linesPerOrder.min, catalog.linesPerOrder.max));
  const chosen = new Set<string>();
  while (chosen.size < count) chosen.add(rng.pick(skus));
  return [...chosen].map((sku) => ({
    sku,
    quantity: rng.int(catalog.unitsPerLine.min, catalog.unitsPerLine.max),
  }));
}

/** Lines of a hot-SKU order: one unit of the hot product. */
export function hotLines(catalog: Catalog): OrderLines {
  return [{ sku: catalog.hotSku, quantity: 1 }];
}

/** Which scenario an order source serves. */
export type Scenario = 'spread' | 'hot';

/** A source of order lines: the spread one draws from its seeded PRNG, call after call. */
export function orderLinesSource(scenario: Scenario, catalog: Catalog, rng: Rng): () => OrderLines {
  if (scenario === 'hot') return () => hotLines(catalog);
  const skus = catalogSkus(catalog);
  return () => spreadLines(rng, skus, catalog);
}

/**
 * Other products for a recipe's lines (the direct baseline's spread scenario): each of
 * `skus` gets a distinct product of `catalog`, drawn from `rng`, so every line still names
 * a different product and quantities and prices stay the recipe's.
 */
export function replacementProducts(
  skus: readonly string[],
  catalog: readonly string[],
  rng: Rng,
): Map<string, string> {
  if (new Set(skus).size > catalog.length) {
    throw new Error(`${skus.length} products to replace from a catalog of ${catalog.length}`);
  }
  const chosen = new Set<string>();
  const products = new Map<string, string>();
  for (const sku of skus) {
    let next = rng.pick(catalog);
    while (chosen.has(next)) next = rng.pick(catalog);
    chosen.add(next);
    products.set(sku, next);
  }
  return products;
}

export function describeWorkload(catalog: Catalog, seed: number): string {
  return (
    `orders spread over ${catalog.products.toLocaleString('en-US')} products, each ${catalog.linesPerOrder.min}–${catalog.linesPerOrder.max} ` +
    `distinct lines of ${catalog.unitsPerLine.min}–${catalog.unitsPerLine.max} units drawn by a seeded PRNG (seed ${seed}); ` +
    `the "hot SKU" search buys one ${catalog.hotSku} per order`
  );
}
