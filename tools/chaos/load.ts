/**
 * The drills' traffic: a careful HTTP client (every status it sees is counted; 503, 429,
 * 409-in-use and lost connections are retried with the same Idempotency-Key, as the
 * contract invites), a seeded mix of orders that reaches every saga path, and the
 * follow-ups some of them need (approve, reject, cancel).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { orderBody, type OrderBody } from '../fixtures/order';
import type { Rng } from '../fixtures/seed';

// Seeded randomness lives in tools/fixtures/seed.ts (the relay crash test uses it too).
export { seededRng, type Rng } from '../fixtures/seed';
export type { OrderBody } from '../fixtures/order';

// ---------------------------------------------------------------------------------------
// HTTP

/** Every status seen, by route: `POST /orders 503`. A lost connection is status 0. */
export class StatusTally {
  readonly counts = new Map<string, number>();

  record(route: string, status: number): void {
    const key = `${route} ${status}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** Answers that are neither the service's nor a dependency's fault to report: 5xx other than 503. */
  serverErrors(): string[] {
    return [...this.counts]
      .filter(([key]) => /\s5\d\d$/.test(key) && !key.endsWith(' 503'))
      .map(([k, n]) => `${k} ×${n}`);
  }

  byStatus(): Record<string, number> {
    const totals: Record<string, number> = {};
    for (const [key, count] of this.counts) {
      const status = key.slice(key.lastIndexOf(' ') + 1);
      totals[status] = (totals[status] ?? 0) + count;
    }
    return totals;
  }
}

export interface Answer {
  status: number;
  body: unknown;
  headers: Headers | undefined;
}

/** One answered POST /orders: when it was sent, how long it took, its status (0: no answer), which api. */
export interface PostTiming {
  sentAt: number;
  ms: number;
  status: number;
  baseUrl: string;
}

/** After a call gets no answer, its api is passed over for this long (while another is left). */
const PASS_OVER_MS = 1_000;

/**
 * A client of one api, or of several replicas (the cluster): calls go round the replicas in
 * turn, and one that just gave no answer is passed over for a second, so a retry lands on a
 * live one. With one base URL every call goes there.
 */
export class ApiClient {
  tally = new StatusTally();
  /** Every POST /orders this client sent, for latency figures around a fault. */
  readonly postTimings: PostTiming[] = [];
  readonly baseUrls: readonly string[];
  private turn = 0;
  private readonly silentUntil = new Map<string, number>();

  constructor(baseUrl: string | readonly string[]) {
    this.baseUrls = typeof baseUrl === 'string' ? [baseUrl] : [...baseUrl];
    if (this.baseUrls.length === 0) throw new Error('ApiClient needs at least one base URL');
  }

  /** The first api (the only one on the dev engine). */
  get baseUrl(): string {
    return this.baseUrls[0]!;
  }

  private nextBaseUrl(): string {
    const now = Date.now();
    for (let tried = 0; tried < this.baseUrls.length; tried++) {
      const url = this.baseUrls[this.turn++ % this.baseUrls.length]!;
      if ((this.silentUntil.get(url) ?? 0) <= now) return url;
    }
    return this.baseUrls[this.turn++ % this.baseUrls.length]!;
  }

  async call(
    method: 'GET' | 'POST',
    path: string,
    options: { body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<Answer> {
    const route = `${method} ${path.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, ':id').replace(/\/inventory\/.*/, '/inventory/:sku')}`;
    const sentAt = Date.now();
    const baseUrl = this.nextBaseUrl();
    const timed = (status: number): void => {
      if (route === 'POST /orders')
        this.postTimings.push({ sentAt, ms: Date.now() - sentAt, status, baseUrl });
    };
    try {
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...options.headers,
        },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
      });
      const text = await response.text();
      this.tally.record(route, response.status);
      timed(response.status);
      let body: unknown = text;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        // not JSON: keep the text
      }
      return { status: response.status, body, headers: response.headers };
    } catch {
      this.tally.record(route, 0);
      timed(0);
      if (this.baseUrls.length > 1) this.silentUntil.set(baseUrl, Date.now() + PASS_OVER_MS);
      return { status: 0, body: undefined, headers: undefined };
    }
  }
}

/** Statuses a careful client retries: lost connection, 409 in use, 429, 503. */
const RETRYABLE = new Set([0, 409, 429, 503]);

const retryAfterMs = (answer: Answer, attempt: number): number => {
  const header = Number(answer.headers?.get('retry-after'));
  const backoff = Math.min(2_000, 100 * 2 ** attempt);
  return Number.isFinite(header) && header > 0 ? Math.min(header * 1_000, backoff) : backoff;
};

/** Calls until the answer is not retryable or the deadline passes; returns the last answer. */
export async function callUntilAnswered(
  api: ApiClient,
  method: 'GET' | 'POST',
  path: string,
  options: {
    body?: unknown;
    headers?: Record<string, string>;
    deadline: number;
    retry?: ReadonlySet<number>;
  },
): Promise<Answer> {
  const retry = options.retry ?? RETRYABLE;
  for (let attempt = 0; ; attempt++) {
    const answer = await api.call(method, path, options);
    if (!retry.has(answer.status) || Date.now() >= options.deadline) return answer;
    await delay(retryAfterMs(answer, attempt));
  }
}

// ---------------------------------------------------------------------------------------
// The catalog of a drill and its order mix

export interface Catalog {
  /** Cheap products with plenty of stock. */
  standard: string[];
  /** Priced so that two units reach the approval threshold (APPROVAL_THRESHOLD_CENTS). */
  expensive: string;
  /** Little stock: some orders for it fail with insufficient_stock. */
  scarce: string;
  /** sku → [priceCents, available]. */
  products: Record<string, [number, number]>;
}

export function catalogFor(prefix: string, orders: number): Catalog {
  const standard = [`${prefix}-STD-1`, `${prefix}-STD-2`, `${prefix}-STD-3`];
  const expensive = `${prefix}-BIG`;
  const scarce = `${prefix}-SCARCE`;
  return {
    standard,
    expensive,
    scarce,
    products: {
      [standard[0]!]: [1_299, orders * 10],
      [standard[1]!]: [2_499, orders * 10],
      [standard[2]!]: [350, orders * 10],
      [expensive]: [60_000, orders * 4],
      // About a third of the scarce orders can be served.
      [scarce]: [500, Math.max(4, Math.ceil(orders * 0.05))],
    },
  };
}

export const SCENARIOS = [
  'ok',
  'multi',
  'declined',
  'flaky',
  'slow',
  'refundFlaky',
  'carrierRefused',
  'scarce',
  'fraud',
  'approve',
  'reject',
  'cancelAwaiting',
  'cancel',
  'cancelAtOnce',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Relative weights of the mix (every path of CONTRACT §3, cancels and approvals included). */
const WEIGHTS: Record<Scenario, number> = {
  ok: 22,
  multi: 8,
  declined: 8,
  flaky: 8,
  slow: 4,
  refundFlaky: 5,
  carrierRefused: 5,
  scarce: 6,
  fraud: 3,
  approve: 8,
  reject: 5,
  cancelAwaiting: 4,
  cancel: 10,
  cancelAtOnce: 4,
};

/** A customer the worker's fraud screening refuses (FRAUD_DENY_LIST). */
export const DENIED_CUSTOMER = 'c-chaos-fraudster';

export interface PlannedOrder {
  scenario: Scenario;
  body: OrderBody;
  idempotencyKey: string;
  /** For `cancel`: how long after acceptance the cancel is sent. */
  cancelAfterMs: number;
}

export function planOrders(
  count: number,
  rng: Rng,
  catalog: Catalog,
  customerPrefix: string,
): PlannedOrder[] {
  const table = SCENARIOS.flatMap((scenario) => Array<Scenario>(WEIGHTS[scenario]).fill(scenario));
  return Array.from({ length: count }, (_, i) => {
    // Every scenario at least once, then the weighted mix.
    const scenario = i < SCENARIOS.length && count >= SCENARIOS.length ? SCENARIOS[i]! : rng.pick(table);
    return {
      scenario,
      body: bodyFor(scenario, rng, catalog, `${customerPrefix}-${i % 17}`),
      idempotencyKey: `chaos-${randomUUID()}`,
      cancelAfterMs: rng.int(0, 2_500),
    };
  });
}

function bodyFor(scenario: Scenario, rng: Rng, catalog: Catalog, customerId: string): OrderBody {
  const token: Partial<Record<Scenario, string>> = {
    declined: 'tok_declined',
    flaky: 'tok_flaky',
    slow: 'tok_slow',
    refundFlaky: 'tok_refund_flaky',
  };
  const oneStandard = () => [{ sku: rng.pick(catalog.standard), quantity: rng.int(1, 3) }];
  const items =
    scenario === 'multi'
      ? catalog.standard.slice(0, rng.int(2, 3)).map((sku) => ({ sku, quantity: rng.int(1, 4) }))
      : scenario === 'scarce'
        ? [{ sku: catalog.scarce, quantity: rng.int(1, 3) }]
        : ['approve', 'reject', 'cancelAwaiting'].includes(scenario)
          ? [{ sku: catalog.expensive, quantity: 2 }]
          : oneStandard();
  return orderBody({
    customerId: scenario === 'fraud' ? DENIED_CUSTOMER : customerId,
    items,
    paymentToken: token[scenario] ?? rng.pick(['tok_ok', 'tok_ok', 'tok_flaky']),
    country: scenario === 'carrierRefused' || scenario === 'refundFlaky' ? 'ZZ' : 'US',
  });
}

/** How a scenario may end; anything else is reported as an unexpected outcome. */
export function expectedOutcomes(scenario: Scenario): string[] {
  switch (scenario) {
    case 'ok':
    case 'multi':
    case 'flaky':
    case 'slow':
    case 'approve':
      return ['COMPLETED'];
    case 'declined':
      return ['FAILED/payment_declined'];
    case 'refundFlaky':
    case 'carrierRefused':
      return ['FAILED/shipping_unavailable'];
    case 'scarce':
      return ['COMPLETED', 'FAILED/insufficient_stock'];
    case 'fraud':
      return ['FAILED/fraud_suspected'];
    case 'reject':
      return ['FAILED/approval_rejected'];
    case 'cancelAwaiting':
      return ['CANCELLED'];
    case 'cancel':
    case 'cancelAtOnce':
      // Past the pivot a cancel changes nothing; a refusal may come first.
      return ['CANCELLED', 'COMPLETED', 'FAILED/payment_declined', 'FAILED/shipping_unavailable'];
  }
}

// ---------------------------------------------------------------------------------------
// Driving orders

export interface DrivenOrder {
  plan: PlannedOrder;
  /** Set once the API answered 202. */
  orderId?: string;
  /** The last answer to POST /orders when it never became 202. */
  refused?: number;
  /** What happened to the follow-up (approve, reject, cancel), for the report. */
  followUp?: string;
}

export interface LoadOptions {
  /** Orders started per second (open loop). */
  ratePerS: number;
  /** At most this many orders being driven at once. */
  concurrency: number;
  /** Nothing is retried past this. */
  deadline: number;
  /** Called once per accepted order. */
  onAccepted?: (order: DrivenOrder) => void;
}

/** Places the orders at `ratePerS`, each with its follow-up; resolves when all are done. */
export async function driveOrders(
  api: ApiClient,
  plans: readonly PlannedOrder[],
  options: LoadOptions,
): Promise<DrivenOrder[]> {
  const started = Date.now();
  let active = 0;
  const waiting: Array<() => void> = [];
  const acquire = async (): Promise<void> => {
    if (active < options.concurrency) {
      active++;
      return;
    }
    await new Promise<void>((resolve) => waiting.push(resolve));
  };
  const release = (): void => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  const runs: Array<Promise<DrivenOrder>> = [];
  for (const [index, plan] of plans.entries()) {
    const due = started + (index * 1_000) / options.ratePerS;
    if (due > Date.now()) await delay(due - Date.now());
    await acquire();
    runs.push(
      driveOne(api, plan, options)
        .catch((error: unknown): DrivenOrder => ({ plan, followUp: `driver failed: ${String(error)}` }))
        .finally(release),
    );
  }
  return Promise.all(runs);
}

async function driveOne(api: ApiClient, plan: PlannedOrder, options: LoadOptions): Promise<DrivenOrder> {
  const driven: DrivenOrder = { plan };
  const answer = await callUntilAnswered(api, 'POST', '/orders', {
    body: plan.body,
    headers: { 'idempotency-key': plan.idempotencyKey },
    deadline: options.deadline,
  });
  if (answer.status !== 202) {
    driven.refused = answer.status;
    return driven;
  }
  const orderId = (answer.body as { orderId: string }).orderId;
  driven.orderId = orderId;
  options.onAccepted?.(driven);
  switch (plan.scenario) {
    case 'cancelAtOnce':
      driven.followUp = await cancel(api, orderId, options.deadline);
      break;
    case 'cancel':
      await delay(plan.cancelAfterMs);
      driven.followUp = await cancel(api, orderId, options.deadline);
      break;
    case 'approve':
    case 'reject':
    case 'cancelAwaiting':
      driven.followUp = await decide(api, orderId, plan.scenario, options.deadline);
      break;
    default:
      break;
  }
  return driven;
}

async function cancel(api: ApiClient, orderId: string, deadline: number): Promise<string> {
  const answer = await callUntilAnswered(api, 'POST', `/orders/${orderId}/cancel`, {
    deadline,
    retry: new Set([0, 429, 503]),
  });
  return `cancel ${answer.status}`;
}

const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);

/** Waits for the order to await approval, then approves, rejects or cancels it. */
async function decide(
  api: ApiClient,
  orderId: string,
  scenario: 'approve' | 'reject' | 'cancelAwaiting',
  deadline: number,
): Promise<string> {
  const action = scenario === 'cancelAwaiting' ? 'cancel' : scenario;
  let last = 'never awaited approval';
  while (Date.now() < deadline) {
    const view = await api.call('GET', `/orders/${orderId}`);
    const status = (view.body as { status?: string } | undefined)?.status;
    if (view.status === 200 && status !== undefined && TERMINAL.has(status))
      return `${last}; ended ${status}`;
    if (view.status === 200 && status === 'AWAITING_APPROVAL') {
      const answer = await callUntilAnswered(api, 'POST', `/orders/${orderId}/${action}`, {
        deadline,
        retry: new Set([0, 429, 503]),
      });
      last = `${action} ${answer.status}`;
      if (answer.status === 202) return last;
      // 409: not (yet, or any more) awaiting in the workflow's eyes; look again.
    }
    await delay(300);
  }
  return `${last}; deadline passed`;
}
