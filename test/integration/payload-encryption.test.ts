import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils';
import { ENCRYPTED_ENCODING, KEY_ID_METADATA } from '../../lib/payload-codec';
import type { OrderSagaInput } from '../../contracts/index';
import { Worker } from '@temporalio/worker';
import { decodedHistory, testDataConverter } from '../support/encryption';
import { startSagaHarness, type SagaHarness } from '../support/saga-harness';
import { stackEnv } from '../support/stack';

/**
 * CONTRACT §6: what Temporal stores of a saga is ciphertext. The harness's worker and
 * client encrypt with the test key; a client without the codec (what Temporal's operators,
 * its CLI and its database readers have) reads the raw history.
 */
let saga: SagaHarness;
let rawConnection: Connection;
let raw: Client;

beforeAll(async () => {
  saga = await startSagaHarness();
  rawConnection = await Connection.connect({ address: stackEnv().temporalAddress });
  raw = new Client({ connection: rawConnection }); // no codec
});
afterAll(async () => {
  await rawConnection?.close();
  await saga?.close();
});

/** Every string and byte string in a history except its search attributes (readable by design). */
function storedText(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (Array.isArray(value)) for (const item of value) storedText(item, out);
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key !== 'searchAttributes') storedText(item, out);
    }
  }
  return out;
}

/** Every payload of a history (objects with metadata and data), with where it was found. */
function payloads(value: unknown, at = '', out: Array<{ at: string; payload: Payload }> = []) {
  if (Array.isArray(value)) for (const [i, item] of value.entries()) payloads(item, `${at}[${i}]`, out);
  else if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    if ('metadata' in value && 'data' in value) out.push({ at, payload: value as Payload });
    else {
      for (const [key, item] of Object.entries(value)) {
        if (key !== 'searchAttributes' && key !== 'header') payloads(item, `${at}.${key}`, out);
      }
    }
  }
  return out;
}

/**
 * The Rust core writes the data of its own markers (a patch's id, a local activity's type and
 * attempt) in clear, for itself to read on replay; they hold nothing of the order.
 */
const CORE_MARKER_DATA = /\.markerRecordedEventAttributes\.details\.(data|patch-data)\./;

/** Every failure of a history (activity failures, their causes, the workflow's). */
function failures(value: unknown, out: Array<{ message?: string | null; stackTrace?: string | null }> = []) {
  if (Array.isArray(value)) for (const item of value) failures(item, out);
  else if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    for (const [key, item] of Object.entries(value)) {
      if (
        (key === 'failure' || key === 'cause' || key === 'lastFailure') &&
        item &&
        typeof item === 'object'
      ) {
        out.push(item as { message?: string; stackTrace?: string });
      }
      failures(item, out);
    }
  }
  return out;
}

const metadataText = (payload: Payload, key: string): string | undefined =>
  payload.metadata?.[key] ? Buffer.from(payload.metadata[key]).toString('utf8') : undefined;

describe('payload encryption', () => {
  it('when a saga completes, then its raw history holds no payment token, address or customer in clear, and with the key it decodes', async () => {
    const customerId = `c-${randomUUID()}`;
    const order = await saga.startOrder({ customerId, paymentToken: 'tok_ok' });
    await expect(order.result()).resolves.toMatchObject({ status: 'COMPLETED' });

    const history: History = await raw.workflow.getHandle(order.workflowId).fetchHistory();
    const text = storedText(history).join('\n');
    for (const secret of ['tok_ok', '1 Main St', 'Springfield', customerId]) {
      expect({ secret, found: text.includes(secret) }).toEqual({ secret, found: false });
    }
    // Every payload (input, results, activity arguments, summaries, details) is ciphertext.
    const stored = payloads(history).filter(({ at }) => !CORE_MARKER_DATA.test(at));
    expect(stored.length).toBeGreaterThan(10);
    for (const { at, payload } of stored) {
      expect({
        at,
        encoding: metadataText(payload, 'encoding'),
        keyId: metadataText(payload, KEY_ID_METADATA),
      }).toEqual({ at, encoding: ENCRYPTED_ENCODING, keyId: 'test-1' });
    }
    // Search attributes stay readable for the Web UI's filters.
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    const customerAttribute = started?.searchAttributes?.indexedFields?.CustomerId;
    expect(customerAttribute && defaultPayloadConverter.fromPayload(customerAttribute)).toBe(customerId);

    // With the key: the input and the run's summary decode.
    const decoded = await decodedHistory(saga.client.workflow.getHandle(order.workflowId));
    const startedDecoded = decoded.events?.[0];
    const input = defaultPayloadConverter.fromPayload<OrderSagaInput>(
      startedDecoded!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!,
    );
    expect(input).toMatchObject({
      customerId,
      paymentToken: 'tok_ok',
      shippingAddress: { line1: '1 Main St' },
    });
    expect(defaultPayloadConverter.fromPayload(startedDecoded!.userMetadata!.summary!)).toContain(customerId);
  });

  it('when an encrypted history is replayed with the keys (as npm run replay does), then it replays', async () => {
    const order = await saga.startOrder({ paymentToken: 'tok_ok' });
    await order.result();
    const history = await raw.workflow.getHandle(order.workflowId).fetchHistory();
    await expect(
      Worker.runReplayHistory(
        { workflowBundle: { codePath: stackEnv().workflowBundle }, dataConverter: testDataConverter },
        history,
        order.workflowId,
      ),
    ).resolves.toBeUndefined();
  });

  it('when a step attempt fails (a flaky card), then the failure message and stack are encrypted too', async () => {
    const order = await saga.startOrder({ paymentToken: 'tok_flaky' });
    await expect(order.result()).resolves.toMatchObject({ status: 'COMPLETED' });
    const history = await raw.workflow.getHandle(order.workflowId).fetchHistory();
    const found = failures(history);
    expect(found.length).toBeGreaterThan(0);
    for (const failure of found) {
      expect(failure.message).toBe('Encoded failure');
      expect(failure.stackTrace ?? '').toBe('');
    }
    const decoded = failures(await decodedHistory(saga.client.workflow.getHandle(order.workflowId)));
    const attributes = decoded.map((failure) =>
      defaultPayloadConverter.fromPayload<{ message: string }>(
        (failure as { encodedAttributes: Payload }).encodedAttributes,
      ),
    );
    expect(attributes.some(({ message }) => /processing error for this card/.test(message))).toBe(true);
  });
});
