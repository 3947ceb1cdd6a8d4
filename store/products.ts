/** The catalog: products, their prices and their stock. */
import type { Pool } from './pool';

export interface ProductInput {
  name: string;
  priceCents: number;
  available: number;
}

export interface Product extends ProductInput {
  sku: string;
  /** What orders still in progress hold. */
  reserved: number;
}

const PRODUCT_COLUMNS = `sku, name, price_cents AS "priceCents", available, reserved`;

/** Catalog prices of the given skus, in one round-trip; missing skus are simply absent. */
export async function priceList(pool: Pool, skus: string[]): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ sku: string; price_cents: number }>(
    'SELECT sku, price_cents FROM products WHERE sku = ANY($1::text[])',
    [skus],
  );
  return new Map(rows.map((row) => [row.sku, row.price_cents]));
}

export async function findProduct(pool: Pool, sku: string): Promise<Product | undefined> {
  const { rows } = await pool.query<Product>(`SELECT ${PRODUCT_COLUMNS} FROM products WHERE sku = $1`, [sku]);
  return rows[0];
}

/** Creates or replaces a product; `reserved` belongs to orders in progress and is kept. */
export async function upsertProduct(pool: Pool, sku: string, input: ProductInput): Promise<Product> {
  const { rows } = await pool.query<Product>(
    `INSERT INTO products (sku, name, price_cents, available)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (sku) DO UPDATE
       SET name = EXCLUDED.name, price_cents = EXCLUDED.price_cents, available = EXCLUDED.available,
           updated_at = now()
     RETURNING ${PRODUCT_COLUMNS}`,
    [sku, input.name, input.priceCents, input.available],
  );
  return rows[0]!;
}

/** Adds a product unless its sku exists (a demo catalog: existing rows and their stock stay). */
export async function insertProductIfAbsent(pool: Pool, sku: string, input: ProductInput): Promise<void> {
  await pool.query(
    `INSERT INTO products (sku, name, price_cents, available) VALUES ($1, $2, $3, $4) ON CONFLICT (sku) DO NOTHING`,
    [sku, input.name, input.priceCents, input.available],
  );
}

/** Creates or resets a product with nothing reserved (drills start each run from known stock). */
export async function resetProduct(pool: Pool, sku: string, input: ProductInput): Promise<void> {
  await pool.query(
    `INSERT INTO products (sku, name, price_cents, available) VALUES ($1, $2, $3, $4)
     ON CONFLICT (sku) DO UPDATE
       SET name = EXCLUDED.name, price_cents = EXCLUDED.price_cents, available = EXCLUDED.available,
           reserved = 0, updated_at = now()`,
    [sku, input.name, input.priceCents, input.available],
  );
}

/** Creates or replaces many products in one statement (the bench's catalog); `reserved` is kept. */
export async function upsertProducts(
  pool: Pool,
  products: ReadonlyArray<{ sku: string } & ProductInput>,
): Promise<void> {
  await pool.query(
    `INSERT INTO products (sku, name, price_cents, available)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[])
     ON CONFLICT (sku) DO UPDATE
       SET name = EXCLUDED.name, price_cents = EXCLUDED.price_cents, available = EXCLUDED.available,
           updated_at = now()`,
    [
      products.map((product) => product.sku),
      products.map((product) => product.name),
      products.map((product) => product.priceCents),
      products.map((product) => product.available),
    ],
  );
}
