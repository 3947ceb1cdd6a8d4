import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { migrate } from '../../store/migrate';
import { createPool, type Pool } from '../../store/pool';
import { activitiesOver, newActivityOrder } from '../support/activity-order';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-servers';

/**
 * A compensation during a 10 s database stall (every Postgres process SIGSTOPped) is alive,
 * not failed: it heartbeats throughout and finishes once the database answers, so the saga
 * counts no failure and never flags the order REQUIRES_ATTENTION for a stall.
 */
const STALL_MS = 10_000;
jest.setTimeout(120_000);

let dir: string;
let postgres: PrivatePostgres;
let pool: Pool;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-stall-'));
  postgres = await startPrivatePostgres(dir);
  pool = createPool(postgres.urlFor('postgres'), { max: 4 });
  await migrate(pool);
});
afterAll(async () => {
  await pool?.end();
  await postgres?.stop();
  await rm(dir, { recursive: true, force: true });
});

it('when the database stalls for 10 s during releaseInventory, then the compensation heartbeats through it and completes', async () => {
  const activities = activitiesOver(pool);
  const {
    sku,
    input,
    env: envFor,
    call,
  } = await newActivityOrder(pool, {
    available: 5,
    quantity: 2,
    customerId: 'c-stall',
  });
  const env = envFor();
  await env.run(activities.reserveInventory, { ...call('reserveInventory'), items: input.items });

  let heartbeatsWhileStalled = 0;
  let stalled = false;
  env.on('heartbeat', () => {
    if (stalled) heartbeatsWhileStalled++;
  });
  postgres.pause();
  stalled = true;
  const released = env.run(activities.releaseInventory, call('releaseInventory'));
  await new Promise((resolve) => setTimeout(resolve, STALL_MS));
  stalled = false;
  postgres.resume();

  await expect(released).resolves.toBeUndefined();
  const { rows } = await pool.query('SELECT available, reserved FROM products WHERE sku = $1', [sku]);
  expect([rows[0], heartbeatsWhileStalled > 0]).toEqual([{ available: 5, reserved: 0 }, true]);
});
