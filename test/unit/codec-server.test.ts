import type { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import { AesGcmPayloadCodec, generateEncryptionKey, parseEncryptionKeys } from '../../lib/payload-codec';
import type { Pool } from '../../store/pool';
import { TEST_ENCRYPTION_KEYS } from '../support/encryption';

/** POST /codec/encode and /codec/decode: Temporal's remote codec protocol (CONTRACT §6). */
const UI = 'http://127.0.0.1:8233';
const TOKEN = 'codec-test-token';
let app: App;

const wire = (payload: Payload) => ({
  metadata: Object.fromEntries(
    Object.entries(payload.metadata ?? {}).map(([key, value]) => [
      key,
      Buffer.from(value).toString('base64'),
    ]),
  ),
  data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64'),
});
const unwire = (payload: { metadata: Record<string, string>; data: string }): Payload => ({
  metadata: Object.fromEntries(
    Object.entries(payload.metadata).map(([key, value]) => [key, Buffer.from(value, 'base64')]),
  ),
  data: Buffer.from(payload.data, 'base64'),
});
const text = (value: string) => Buffer.from(value, 'base64').toString('utf8');
const order = { paymentToken: 'tok_ok', shippingAddress: { line1: '1 Main St' } };

beforeAll(async () => {
  app = buildApp({
    pool: {} as Pool,
    temporal: {} as Client,
    config: loadApiConfig({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
      TEMPORAL_ADDRESS: '127.0.0.1:1',
      TEMPORAL_UI_URL: `${UI}/`,
      PAYLOAD_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      API_TOKENS: TOKEN,
    }),
  });
  await app.ready();
});
afterAll(() => app.close());

const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
  app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${TOKEN}`, 'x-namespace': 'default', ...headers },
    payload: payload as object,
  });

describe('the codec server', () => {
  it('when payloads are encoded, then they come back encrypted with the first key, and decode to what was sent', async () => {
    const plain = wire(defaultPayloadConverter.toPayload(order));
    const encoded = await post('/codec/encode', { payloads: [plain] });
    expect(encoded.statusCode).toBe(200);
    const [sealed] = encoded.json<{ payloads: Array<{ metadata: Record<string, string>; data: string }> }>()
      .payloads;
    expect(text(sealed!.metadata.encoding!)).toBe('binary/encrypted');
    expect(text(sealed!.metadata['encryption-key-id']!)).toBe('test-1');
    expect(text(sealed!.data)).not.toContain('tok_ok');

    const decoded = await post('/codec/decode', { payloads: [sealed] });
    expect(decoded.statusCode).toBe(200);
    const [opened] = decoded.json<{ payloads: Array<{ metadata: Record<string, string>; data: string }> }>()
      .payloads;
    expect(defaultPayloadConverter.fromPayload(unwire(opened!))).toEqual(order);
  });

  it('when a payload was encrypted with the workers’ codec, then the server decodes it (same keys, same format)', async () => {
    const [sealed] = await new AesGcmPayloadCodec(parseEncryptionKeys(TEST_ENCRYPTION_KEYS)).encode([
      defaultPayloadConverter.toPayload(order),
    ]);
    const decoded = await post('/codec/decode', { payloads: [wire(sealed!)] });
    const [opened] = decoded.json<{ payloads: Array<{ metadata: Record<string, string>; data: string }> }>()
      .payloads;
    expect(defaultPayloadConverter.fromPayload(unwire(opened!))).toEqual(order);
  });

  it('when one payload is under an unknown key, then it is answered as it came and the others decode', async () => {
    const foreign = new AesGcmPayloadCodec(parseEncryptionKeys(generateEncryptionKey('elsewhere')));
    const ours = new AesGcmPayloadCodec(parseEncryptionKeys(TEST_ENCRYPTION_KEYS));
    const [theirs] = await foreign.encode([defaultPayloadConverter.toPayload('x')]);
    const [mine] = await ours.encode([defaultPayloadConverter.toPayload(order)]);
    const response = await post('/codec/decode', { payloads: [wire(theirs!), wire(mine!)] });
    expect(response.statusCode).toBe(200);
    const [first, second] = response.json<{
      payloads: Array<{ metadata: Record<string, string>; data: string }>;
    }>().payloads;
    expect(first).toEqual(wire(theirs!));
    expect(defaultPayloadConverter.fromPayload(unwire(second!))).toEqual(order);
  });

  it('when the body is not the protocol’s shape, too large or not JSON, then 400, 413 and 415', async () => {
    expect((await post('/codec/decode', { payloads: [{ data: 'not base64!' }] })).statusCode).toBe(400);
    expect((await post('/codec/decode', { items: [] })).statusCode).toBe(400);
    const big = { payloads: [{ data: Buffer.alloc(70 * 1024).toString('base64') }] };
    expect((await post('/codec/decode', big)).statusCode).toBe(413);
    expect(
      (
        await app.inject({
          method: 'POST',
          url: '/codec/decode',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'text/plain' },
          payload: 'hello',
        })
      ).statusCode,
    ).toBe(415);
  });

  it('when the Web UI (TEMPORAL_UI_URL’s origin) sends a preflight with X-Namespace and Authorization, then it passes without a token, with credentials', async () => {
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/codec/decode',
      headers: {
        origin: UI,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type,x-namespace',
      },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(UI);
    expect(preflight.headers['access-control-allow-credentials']).toBe('true');
    expect(String(preflight.headers['access-control-allow-headers']).toLowerCase()).toEqual(
      expect.stringContaining('x-namespace'),
    );
    expect(String(preflight.headers['access-control-allow-methods'])).toContain('POST');

    const call = await post('/codec/decode', { payloads: [] }, { origin: UI });
    expect(call.statusCode).toBe(200);
    expect(call.headers['access-control-allow-origin']).toBe(UI);
  });

  it('when another origin asks, then no CORS header allows it, and the rest of the API stays without CORS', async () => {
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/codec/decode',
      headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'POST' },
    });
    expect(preflight.headers).not.toHaveProperty('access-control-allow-origin');
    const call = await post('/codec/decode', { payloads: [] }, { origin: 'https://evil.example.com' });
    expect(call.headers).not.toHaveProperty('access-control-allow-origin');
    const orders = await app.inject({
      method: 'OPTIONS',
      url: '/orders',
      headers: { origin: UI, 'access-control-request-method': 'POST' },
    });
    expect(orders.headers).not.toHaveProperty('access-control-allow-origin');
  });
});
