/**
 * The load generator: open-loop constant-arrival steps and one-at-a-time (idle) runs over a
 * Driver, which is either POST /orders over keep-alive HTTP or a direct Temporal start
 * (the bare baseline). Orders are followed to their end by the Tracker.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { orderBody } from '../fixtures/order';
import type { OrderLines } from './lib/workload';
import { wallNow } from './cpu';
import { dueCount, msUntilDue, requestCount, scheduledOffsetMs } from './lib/schedule';
import { DROPPED, type OrderSample, type StepWindow, type TerminalStatus } from './lib/step';
import type { Tracker } from './tracker';

export type OrderKind = 'ok' | 'declined';

export const EXPECTED: Readonly<Record<OrderKind, TerminalStatus>> = { ok: 'COMPLETED', declined: 'FAILED' };

export interface Driver {
  /** Starts one order; resolves with the id its end will be reported under. */
  submit(kind: OrderKind): Promise<string>;
}

/** A request that did not get its 202; `kind` groups them in the report. */
export class RequestError extends Error {
  constructor(readonly kind: string) {
    super(kind);
    this.name = 'RequestError';
  }
}

const REQUEST_TIMEOUT_MS = 10_000;

/** The bench's order (tools/fixtures/order.ts): the given lines, paid or declined. */
function requestBody(kind: OrderKind, items: OrderLines): Buffer {
  const body = orderBody({
    customerId: 'bench-customer',
    items,
    paymentToken: kind === 'ok' ? 'tok_ok' : 'tok_declined',
  });
  return Buffer.from(JSON.stringify(body));
}

export interface HttpDriver extends Driver {
  close(): void;
}

/**
 * POST /orders over one keep-alive agent, each order's lines from `nextLines` (called once
 * per order, in the order they are sent). Only ever talks to 127.0.0.1.
 */
export function createHttpDriver(
  apiUrl: string | readonly string[],
  nextLines: () => OrderLines,
  bearerToken?: string,
): HttpDriver {
  // Several api replicas (the cluster engine): each order goes to the next, in turn.
  const urls = (typeof apiUrl === 'string' ? [apiUrl] : apiUrl).map((each) => new URL(each));
  for (const url of urls) {
    if (url.hostname !== '127.0.0.1') throw new Error(`the bench only loads 127.0.0.1, not ${url.hostname}`);
  }
  let turn = 0;
  const nextPort = (): string => urls[turn++ % urls.length]!.port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
  const headers = (body: Buffer): http.OutgoingHttpHeaders => ({
    'content-type': 'application/json',
    'content-length': body.length,
    ...(bearerToken ? { authorization: `Bearer ${bearerToken}` } : {}),
  });

  const submit = (kind: OrderKind): Promise<string> =>
    new Promise((resolve, reject) => {
      const body = requestBody(kind, nextLines());
      const request = http.request(
        {
          agent,
          hostname: '127.0.0.1',
          port: nextPort(),
          path: '/orders',
          method: 'POST',
          headers: headers(body),
          timeout: REQUEST_TIMEOUT_MS,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', () => reject(new RequestError('response aborted')));
          response.on('end', () => {
            if (response.statusCode !== 202) {
              reject(new RequestError(`HTTP ${response.statusCode ?? '?'}`));
              return;
            }
            try {
              const { orderId } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { orderId?: unknown };
              if (typeof orderId !== 'string') throw new Error('no orderId');
              resolve(orderId);
            } catch {
              reject(new RequestError('202 without an orderId'));
            }
          });
        },
      );
      request.on('timeout', () =>
        request.destroy(new RequestError(`no answer within ${REQUEST_TIMEOUT_MS} ms`)),
      );
      request.on('error', (error: Error & { code?: string }) =>
        reject(
          error instanceof RequestError ? error : new RequestError(`network ${error.code ?? error.message}`),
        ),
      );
      request.end(body);
    });

  return { submit, close: () => agent.destroy() };
}

export interface StepRun {
  window: StepWindow;
  samples: OrderSample[];
  /** Requests that failed (or were not sent), by kind. */
  requestErrors: Record<string, number>;
  /** Ids of the accepted requests, in order. */
  ids: string[];
  /** Each accepted request's id with its sample (whose status the tracker fills in). */
  accepted: Array<{ id: string; sample: OrderSample }>;
}

export interface OpenLoopPlan {
  ratePerS: number;
  durationMs: number;
  /** How long to wait, after the last answer, for the step's sagas to finish. */
  graceMs: number;
  /** More requests than this in flight: the next one is dropped (and counted as an error). */
  inflightCap: number;
  kindOf(index: number): OrderKind;
  /** Called once the last request is sent, before waiting for answers (a CPU sample). */
  onSendingDone?: () => Promise<void>;
}

function newSample(dueAtMs: number, kind: OrderKind): OrderSample {
  return {
    dueAtMs,
    sentAtMs: wallNow(),
    acceptedAtMs: undefined,
    expected: EXPECTED[kind],
    status: undefined,
    doneAtMs: undefined,
    publishedAtMs: undefined,
    lagsMs: [],
  };
}

const count = (record: Record<string, number>, kind: string): void => {
  record[kind] = (record[kind] ?? 0) + 1;
};
const errorKind = (error: unknown): string =>
  error instanceof RequestError ? error.kind : error instanceof Error ? error.message : String(error);

/**
 * One open-loop step: requests at a constant rate for `durationMs`, each sent when due
 * whether or not earlier ones were answered; then waits for the answers and, up to
 * `graceMs`, for the sagas to finish.
 */
export async function runOpenLoop(
  driver: Driver,
  tracker: Tracker,
  plan: OpenLoopPlan,
  signal: AbortSignal,
): Promise<StepRun> {
  const total = requestCount(plan.ratePerS, plan.durationMs);
  const samples: OrderSample[] = [];
  const ids: string[] = [];
  const accepted: StepRun['accepted'] = [];
  const requestErrors: Record<string, number> = {};
  const inFlight = new Set<Promise<void>>();
  const startedAtMs = wallNow();
  const origin = performance.now();

  let next = 0;
  while (next < total) {
    signal.throwIfAborted();
    const due = dueCount(performance.now() - origin, plan.ratePerS, total);
    for (; next < due; next++) {
      if (inFlight.size >= plan.inflightCap) {
        count(requestErrors, DROPPED);
        continue;
      }
      const kind = plan.kindOf(next);
      const sample = newSample(startedAtMs + scheduledOffsetMs(next, plan.ratePerS), kind);
      samples.push(sample);
      const request: Promise<void> = driver.submit(kind).then(
        (id) => {
          sample.acceptedAtMs = wallNow();
          ids.push(id);
          accepted.push({ id, sample });
          tracker.add(id, sample);
        },
        (error: unknown) => count(requestErrors, errorKind(error)),
      );
      inFlight.add(request);
      void request.finally(() => inFlight.delete(request));
    }
    if (next < total) {
      await delay(Math.max(1, msUntilDue(next, plan.ratePerS, performance.now() - origin)), undefined, {
        signal,
      });
    }
  }
  await plan.onSendingDone?.();
  await Promise.all(inFlight);
  await tracker.waitUntilFinished(samples, plan.graceMs, signal);
  return {
    window: { startedAtMs, durationMs: plan.durationMs, offeredPerS: plan.ratePerS },
    samples,
    requestErrors,
    ids,
    accepted,
  };
}

/**
 * Orders one at a time: each is sent once the previous one finished (or timed out),
 * with a short pause between, so every one meets an idle system.
 */
export async function runOneAtATime(
  driver: Driver,
  tracker: Tracker,
  { orders, timeoutMs, pauseMs }: { orders: number; timeoutMs: number; pauseMs: number },
  signal: AbortSignal,
): Promise<StepRun> {
  const samples: OrderSample[] = [];
  const ids: string[] = [];
  const accepted: StepRun['accepted'] = [];
  const requestErrors: Record<string, number> = {};
  const startedAtMs = wallNow();
  for (let index = 0; index < orders; index++) {
    signal.throwIfAborted();
    const sample = newSample(wallNow(), 'ok');
    samples.push(sample);
    try {
      const id = await driver.submit('ok');
      sample.acceptedAtMs = wallNow();
      ids.push(id);
      accepted.push({ id, sample });
      tracker.add(id, sample);
      await tracker.waitUntilFinished([sample], timeoutMs, signal);
    } catch (error) {
      if (signal.aborted) throw error;
      count(requestErrors, errorKind(error));
    }
    await delay(pauseMs, undefined, { signal });
  }
  return {
    window: { startedAtMs, durationMs: wallNow() - startedAtMs, offeredPerS: 0 },
    samples,
    requestErrors,
    ids,
    accepted,
  };
}
