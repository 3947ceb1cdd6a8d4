import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import type { OrderSagaResult } from '../../contracts/index';
import { launchChromium } from '../support/chromium';
import { historySteps } from '../../lib/history-steps';
import { startSagaHarness, type SagaHarness } from '../support/saga-harness';
import { stackEnv } from '../support/stack';
import { eventually } from '../../tools/fixtures/eventually';
import { decodedHistory, TEST_ENCRYPTION_KEYS } from '../support/encryption';
import { orderBody } from '../../tools/fixtures/order';

/**
 * What an operator sees in the Temporal Web UI, in a real headless Chromium: orders placed
 * through the API (so each run carries the API's summary) and run by a real worker.
 * Screenshots go to test-artifacts/ (gitignored), for a person to look at.
 */
const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');
/**
 * Visibility in the dev server is eventually consistent: a new status shows up shortly. The
 * page also waits for the codec (the UI decodes each row's summary and each event's payloads).
 */
const VISIBILITY_WAIT_MS = 40_000;
/** The UI decodes a run's payloads with a request per event: a page may take seconds to show them. */
const DECODE_WAIT_MS = 10_000;
/** A first run on a machine may install Chromium (apt-get). */
const INSTALL_TIMEOUT_MS = 15 * 60_000;

let browser: Browser | undefined;
let saga: SagaHarness;
let app: App;
let ui: string;
let sku: string;
/** The API's codec (POST <codec>/decode), which the Web UI in the browser calls. */
let codec: string;

interface PlacedOrder {
  orderId: string;
  workflowId: string;
  customerId: string;
  links: { temporalUi: string };
  result: OrderSagaResult;
}
let declined: PlacedOrder;
let completed: PlacedOrder;

/** Places an order through the API and waits for its saga to end. */
async function placeOrder(sku: string, paymentToken: string, line1 = '1 Main St'): Promise<PlacedOrder> {
  const customerId = `c-ui-${randomUUID().slice(0, 8)}`;
  const response = await app.inject({
    method: 'POST',
    url: '/orders',
    payload: orderBody({ customerId, sku, quantity: 2, paymentToken, shippingAddress: { line1 } }),
  });
  expect(response.statusCode).toBe(202);
  const body = response.json<Omit<PlacedOrder, 'customerId' | 'result'>>();
  const result = (await saga.client.workflow.getHandle(body.workflowId).result()) as OrderSagaResult;
  return { ...body, customerId, result };
}

beforeAll(async () => {
  browser = await launchChromium();
}, INSTALL_TIMEOUT_MS);

beforeAll(async () => {
  ui = stackEnv().temporalUiUrl.replace(/\/+$/, '');
  saga = await startSagaHarness();
  app = buildApp({
    pool: saga.pool,
    temporal: saga.client,
    config: loadApiConfig({
      DATABASE_URL: saga.databaseUrl,
      TEMPORAL_ADDRESS: stackEnv().temporalAddress,
      PAYLOAD_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      TEMPORAL_UI_URL: ui,
      TEMPORAL_TASK_QUEUE: saga.taskQueue,
    }),
  });
  // Listening: the Web UI, in the browser, decodes payloads by calling the API's codec.
  await app.listen({ host: '127.0.0.1', port: 0 });
  codec = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/codec`;
  sku = `SKU-UI-${randomUUID().slice(0, 8)}`;
  const put = await app.inject({
    method: 'PUT',
    url: `/inventory/${sku}`,
    payload: { name: 'Web UI test product', priceCents: 1299, available: 10 },
  });
  expect(put.statusCode).toBeLessThan(300);
  [declined, completed] = await Promise.all([placeOrder(sku, 'tok_declined'), placeOrder(sku, 'tok_ok')]);
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await saga?.close();
});

/** Opens `url` and reloads until `text` shows, for as long as visibility may lag. */
async function openUntilVisible(page: Page, url: string, text: string): Promise<void> {
  await page.goto(url);
  await eventually(
    `"${text}" shown at ${url}`,
    async () => {
      try {
        await page.getByText(text, { exact: true }).first().waitFor({ state: 'visible', timeout: DECODE_WAIT_MS });
        return true;
      } catch {
        await page.reload();
        return false;
      }
    },
    { timeoutMs: VISIBILITY_WAIT_MS, intervalMs: 0 },
  );
}

/**
 * A page whose Web UI decodes payloads with the API's codec: what `npm start` configures for
 * every user with --ui-codec-endpoint, set here per browser (the UI's own "Codec Server"
 * setting, kept in localStorage) because the test stack's UI starts before the API.
 */
async function newPage(): Promise<Page> {
  const context = await browser!.newContext({ viewport: { width: 1920, height: 1080 } });
  // Runs in the page (the DOM's localStorage; the tests compile without the DOM types).
  await context.addInitScript((endpoint) => {
    const storage = (globalThis as unknown as { localStorage: { setItem(key: string, value: string): void } })
      .localStorage;
    storage.setItem('endpoint', JSON.stringify(endpoint));
    storage.setItem('overrideRemoteCodecConfiguration', 'true');
  }, codec);
  return context.newPage();
}

/** Resolves once `check` is true; rejects after `timeoutMs`. */
async function pollUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * Reloads `url` until the page's text contains `text` (the decoded input is a code block,
 * its text split across tokens), for as long as visibility and decoding may lag.
 */
async function openUntilTextShows(page: Page, url: string, text: string): Promise<void> {
  const deadline = Date.now() + VISIBILITY_WAIT_MS;
  await page.goto(url);
  for (;;) {
    try {
      // Polled from here: the UI's Content-Security-Policy refuses page-side polling (eval).
      await pollUntil(async () => (await page.locator('body').innerText()).includes(text), DECODE_WAIT_MS);
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`"${text}" not shown at ${url} within ${VISIBILITY_WAIT_MS} ms`, { cause: error });
      }
      await page.reload();
    }
  }
}

describe('Temporal Web UI', () => {
  it('when orders end, then the list filtered by OrderStatus="FAILED" shows the failed run and not the completed one', async () => {
    expect(declined.result).toMatchObject({ status: 'FAILED', failureReason: 'payment_declined' });
    expect(completed.result).toMatchObject({ status: 'COMPLETED' });
    const page = await newPage();
    const query = encodeURIComponent('OrderStatus="FAILED"');
    await openUntilVisible(page, `${ui}/namespaces/default/workflows?query=${query}`, declined.workflowId);
    // Same list, same moment: the completed order (already closed) is filtered out.
    expect(await page.getByText(completed.workflowId).count()).toBe(0);
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'temporal-ui-failed.png'), fullPage: true });
  });

  it('when the API starts a saga, then its run carries a readable summary with the items, total and customer', async () => {
    const described = await saga.client.workflow.getHandle(declined.workflowId).describe();
    expect(await described.staticSummary()).toBe(`Order 2 items · $25.98 · customer ${declined.customerId}`);
    expect(await described.staticDetails()).toContain(declined.orderId);
  });

  it("when the API's temporalUi link is opened, then it shows that run with its summary", async () => {
    expect(declined.links.temporalUi).toBe(`${ui}/namespaces/default/workflows/${declined.workflowId}`);
    const page = await newPage();
    await openUntilTextShows(
      page,
      declined.links.temporalUi,
      `Order 2 items · $25.98 · customer ${declined.customerId}`,
    );
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'temporal-ui-run.png'), fullPage: true });
  });

  it("when a run is opened with the API's codec, then the UI shows the decoded order, while Temporal itself holds only ciphertext", async () => {
    const line1 = `${randomUUID().slice(0, 8)} Codec Lane`;
    const placed = await placeOrder(sku, 'tok_ok', line1);
    expect(placed.result).toMatchObject({ status: 'COMPLETED' });

    // What Temporal stores, read without the codec: no address, no payment token.
    const connection = await Connection.connect({ address: stackEnv().temporalAddress });
    try {
      const raw = await new Client({ connection }).workflow.getHandle(placed.workflowId).fetchHistory();
      const input = raw.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      expect(Buffer.from(input?.metadata?.encoding ?? []).toString()).toBe('binary/encrypted');
      const stored = JSON.stringify(raw, (_key, value: unknown) =>
        value instanceof Uint8Array ? Buffer.from(value).toString('latin1') : value,
      );
      expect(stored).not.toContain(line1);
      expect(stored).not.toContain('tok_ok');
    } finally {
      await connection.close();
    }

    // What a person with access sees in the Web UI: the input, decoded by the API's codec.
    const page = await newPage();
    const decodes: number[] = [];
    page.on('response', (response) => {
      if (response.url() === `${codec}/decode`) decodes.push(response.status());
    });
    await openUntilTextShows(page, placed.links.temporalUi, line1);
    expect(await page.locator('body').innerText()).toContain('"paymentToken": "tok_ok"');
    expect(decodes.length).toBeGreaterThan(0);
    expect(decodes.every((status) => status === 200)).toBe(true);
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'temporal-ui-decoded-input.png'), fullPage: true });
  });

  it('when a saga runs, then every activity and local activity it runs carries a summary an operator can read', async () => {
    const events = (await decodedHistory(saga.client.workflow.getHandle(declined.workflowId))).events ?? [];
    const recorded = historySteps(events);
    expect(recorded.map((s) => s.activity)).toEqual(
      expect.arrayContaining(['admitOrder', 'chargeAndShip', 'releaseInventory']),
    );
    expect(recorded.some((s) => s.local)).toBe(true);
    const unnamed = recorded.filter((s) => typeof s.summary !== 'string' || s.summary.trim() === '');
    expect(unnamed.map((s) => s.activity)).toEqual([]);
  });
});
