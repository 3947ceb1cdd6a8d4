import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  FAILURE_REASONS,
  ORDER_STATUSES,
  PAYMENT_STATUSES,
  SHIPMENT_STATUSES,
  STEP_STATUSES,
  TERMINAL_STATUSES,
  isTerminal,
} from '../../contracts/index';
import {
  ORDER_TRANSITIONS,
  STEP_TRANSITIONS,
  canMoveOrder,
  orderStatusesBefore,
  stepStatusesBefore,
} from '../../contracts/lifecycle';

const MIGRATIONS = path.resolve(__dirname, '..', '..', 'migrations');
const schema = readdirSync(MIGRATIONS)
  .filter((name) => name.endsWith('.sql'))
  .sort()
  .map((name) => readFileSync(path.join(MIGRATIONS, name), 'utf8'))
  .join('\n');

/** The values a CHECK (<column> IN (...)) of `table` allows, read from the migrations. */
function checkList(table: string, column: string): string[] {
  const body = new RegExp(`CREATE TABLE ${table} \\(([\\s\\S]*?)\\n\\);`).exec(schema)?.[1];
  if (!body) throw new Error(`no CREATE TABLE ${table} in migrations/`);
  const list = new RegExp(`CHECK \\(${column} IN \\(([^)]*)\\)`).exec(body)?.[1];
  if (!list) throw new Error(`no CHECK (${column} IN (…)) in ${table}`);
  return [...list.matchAll(/'([^']+)'/g)].map((match) => match[1]!);
}

const sorted = (values: readonly string[]): string[] => [...values].sort();

describe('the migrations’ CHECK lists', () => {
  it.each([
    ['orders', 'status', ORDER_STATUSES],
    ['orders', 'failure_reason', FAILURE_REASONS],
    ['order_steps', 'status', STEP_STATUSES],
    ['payments', 'status', PAYMENT_STATUSES.filter((status) => status !== 'NONE')],
    ['shipments', 'status', SHIPMENT_STATUSES.filter((status) => status !== 'NONE')],
  ])('when %s.%s is read, then it allows exactly the contract’s values', (table, column, values) => {
    expect(sorted(checkList(table, column))).toEqual(sorted(values));
  });
});

describe('the order lifecycle', () => {
  it('when an order is terminal, then no status may follow', () => {
    for (const status of TERMINAL_STATUSES) expect(ORDER_TRANSITIONS[status]).toEqual([]);
  });

  it('when an order is not terminal, then a terminal status can still be reached', () => {
    const reachesEnd = (status: (typeof ORDER_STATUSES)[number], seen = new Set<string>()): boolean =>
      isTerminal(status) ||
      (!seen.has(status) && ORDER_TRANSITIONS[status].some((next) => reachesEnd(next, new Set([...seen, status]))));
    for (const status of ORDER_STATUSES) expect([status, reachesEnd(status)]).toEqual([status, true]);
  });

  it('when an order completes, then only from PENDING (never while compensating or awaiting approval)', () => {
    expect(orderStatusesBefore('COMPLETED')).toEqual(['PENDING']);
  });

  it('when an order is compensating, then it cannot go back to PENDING', () => {
    expect(canMoveOrder('COMPENSATING', 'PENDING')).toBe(false);
  });

  it('when the table is read, then every status in it is one of the contract’s', () => {
    for (const [from, to] of Object.entries(ORDER_TRANSITIONS)) {
      expect(ORDER_STATUSES).toContain(from);
      for (const next of to) expect(ORDER_STATUSES).toContain(next);
    }
    expect(sorted(Object.keys(ORDER_TRANSITIONS))).toEqual(sorted(ORDER_STATUSES));
  });
});

describe('the step lifecycle', () => {
  it('when a step failed, was compensated or skipped, then it never changes again', () => {
    for (const status of ['FAILED', 'COMPENSATED', 'SKIPPED'] as const) expect(STEP_TRANSITIONS[status]).toEqual([]);
  });

  it('when a step is undone, then only after it completed', () => {
    expect(sorted(stepStatusesBefore('COMPENSATED'))).toEqual(['COMPENSATING', 'COMPLETED']);
  });

  it('when the table is read, then it covers every step status of the contract', () => {
    expect(sorted(Object.keys(STEP_TRANSITIONS))).toEqual(sorted(STEP_STATUSES));
  });
});
