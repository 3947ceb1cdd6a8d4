import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import type { OrderSagaResult } from '../../workflows/contracts';
import { launchChromium } from '../support/chromium';
import { historySteps } from '../../lib/history-steps';
import { startSagaHarness, type SagaHarness } from '../support/saga-harness';
import { stackEnv } from '../support/stack';
import { decodedHistory, TEST_ENCRYPTION_KEYS } from '../support/encryption';

/**
 * What an operator sees in the Temporal Web UI, in a real headless Chromium: orders placed
 * through the API (so each run carries the API's summary) and run by a real worker.
 * Screenshots go to test-artifacts/ (gitignored), for a person to look at.
 */
const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');
/** Visibility in the dev server is eventually consistent: a new status shows up shortly. */
const VISIBILITY_WAIT_MS = 20_000;
/** A first run on a machine may install Chromium (apt-get). */
const INSTALL_TIMEOUT_MS = 15 * 60_000;

let browser: Browser | undefined;
let saga: SagaHarness;
let app: App;
let ui: string;

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
async function placeOrder(sku: string, paymentToken: string): Promise<PlacedOrder> {
  const customerId = `c-ui-${randomUUID().slice(0, 8)}`;
  const response = await app.inject({
    method: 'POST',
    url: '/orders',
    payload: {
      customerId,
      items: [{ sku, quantity: 2 }],
      paymentToken,
      shippingAddress: {
        name: 'Ada',
        line1: '1 Main St',
        city: 'Springfield',
        postalCode: '12345',
        country: 'US',
      },
    },
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
  await app.ready();
  const sku = `SKU-UI-${randomUUID().slice(0, 8)}`;
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
  const deadline = Date.now() + VISIBILITY_WAIT_MS;
  await page.goto(url);
  for (;;) {
    try {
      await page.getByText(text, { exact: true }).first().waitFor({ state: 'visible', timeout: 3_000 });
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`"${text}" not shown at ${url} within ${VISIBILITY_WAIT_MS} ms`, { cause: error });
      }
      await page.reload();
    }
  }
}

async function newPage(): Promise<Page> {
  return browser!.newPage({ viewport: { width: 1920, height: 1080 } });
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
    await openUntilVisible(
      page,
      declined.links.temporalUi,
      `Order 2 items · $25.98 · customer ${declined.customerId}`,
    );
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'temporal-ui-run.png'), fullPage: true });
  });

  it('when a saga runs, then every activity and local activity it runs carries a summary an operator can read', async () => {
    const events = (await decodedHistory(saga.client.workflow.getHandle(declined.workflowId))).events ?? [];
    const recorded = historySteps(events);
    expect(recorded.map((s) => s.activity)).toEqual(
      expect.arrayContaining(['createOrder', 'reserveInventory', 'chargePayment', 'releaseInventory']),
    );
    expect(recorded.some((s) => s.local)).toBe(true);
    const unnamed = recorded.filter((s) => typeof s.summary !== 'string' || s.summary.trim() === '');
    expect(unnamed.map((s) => s.activity)).toEqual([]);
  });
});
