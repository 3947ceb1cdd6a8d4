/**
 * The orders database as `npm start` and `npm run start:cluster` leave it: migrated, with a
 * demo catalog whose existing rows (and their stock) are left alone.
 */
import { migrate } from '../../store/migrate';
import { createPool } from '../../store/pool';
import { insertProductIfAbsent } from '../../store/products';

export const DEMO_CATALOG = [
  { sku: 'SKU-1', name: 'Espresso beans 1kg', priceCents: 1_299, available: 100 },
  { sku: 'SKU-2', name: 'Milk jug 600ml', priceCents: 2_499, available: 100 },
  // At or above the default APPROVAL_THRESHOLD_CENTS (100000): orders of it wait for approval.
  { sku: 'SKU-3', name: 'Espresso machine', priceCents: 149_900, available: 20 },
];

/** Applies the migrations and seeds the demo catalog; returns the migrations applied now. */
export async function prepareDatabase(databaseUrl: string, applicationName: string): Promise<string[]> {
  const pool = createPool(databaseUrl, { max: 2, applicationName });
  try {
    const { applied } = await migrate(pool);
    for (const { sku, ...product } of DEMO_CATALOG) await insertProductIfAbsent(pool, sku, product);
    return applied;
  } finally {
    await pool.end();
  }
}
