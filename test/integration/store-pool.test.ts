import { createPool, type Pool } from '../../store/pool';
import { withTransaction } from '../../store/tx';
import { createTestDatabase } from '../support/stack';

/**
 * The pool every process uses (store/pool.ts) runs parameterized statements as named
 * prepared statements: Postgres parses and plans each text once per connection. Checked on
 * the connection itself (pg_prepared_statements is per session).
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let pool: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 1, applicationName: 'order-saga-pool-test' });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const PARAMETERIZED = 'SELECT $1::int + 1 AS next';

/** The prepared statements of the pool's one connection whose text is `text`. */
async function preparedWith(text: string): Promise<{ name: string; parameter_types: string }[]> {
  const { rows } = await pool.query<{ name: string; parameter_types: string }>(
    'SELECT name, parameter_types::text FROM pg_prepared_statements WHERE statement = $1',
    [text],
  );
  return rows;
}

test('when a parameterized statement runs twice on a connection, then it is one named prepared statement there and both calls answer', async () => {
  const first = await pool.query<{ next: number }>(PARAMETERIZED, [1]);
  const second = await withTransaction(pool, (tx) => tx.query<{ next: number }>(PARAMETERIZED, [41]));

  expect([first.rows[0]?.next, second.rows[0]?.next]).toEqual([2, 42]);
  expect(await preparedWith(PARAMETERIZED)).toEqual([
    { name: expect.stringMatching(/^s_[\w-]{22}$/), parameter_types: '{integer}' },
  ]);
});

test('when a statement has no parameters, then it runs as a simple query and is not prepared', async () => {
  const text = 'SELECT 7 AS seven';
  const { rows } = await pool.query<{ seven: number }>(text);

  expect(rows).toEqual([{ seven: 7 }]);
  expect(await preparedWith(text)).toEqual([]);
});
