import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { ConfigError } from '../../lib/env';
import {
  AesGcmPayloadCodec,
  ENCRYPTED_ENCODING,
  generateEncryptionKey,
  KEY_ID_METADATA,
  loadPayloadEncryption,
  parseEncryptionKeys,
  PayloadDecryptionError,
} from '../../lib/payload-codec';

const keyA = parseEncryptionKeys(generateEncryptionKey('a'))[0]!;
const keyB = parseEncryptionKeys(generateEncryptionKey('b'))[0]!;
const order = { paymentToken: 'tok_ok', shippingAddress: { line1: '1 Main St', city: 'Springfield' } };
const text = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? []).toString('utf8');
const plain = (): Payload => defaultPayloadConverter.toPayload(order);

describe('AesGcmPayloadCodec', () => {
  it('when a payload is encoded and decoded, then it comes back as it was, and in between it is ciphertext', async () => {
    const codec = new AesGcmPayloadCodec([keyA]);
    const [encoded] = await codec.encode([plain()]);
    expect(text(encoded!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(encoded!.metadata![KEY_ID_METADATA])).toBe('a');
    expect(Object.keys(encoded!.metadata!).sort()).toEqual(['encoding', KEY_ID_METADATA]);
    expect(text(encoded!.data)).not.toContain('tok_ok');
    expect(text(encoded!.data)).not.toContain('Main St');
    const [decoded] = await codec.decode([encoded!]);
    expect(defaultPayloadConverter.fromPayload(decoded!)).toEqual(order);
    expect(text(decoded!.metadata!.encoding)).toBe('json/plain');
  });

  it('when the same payload is encoded twice, then the ciphertexts differ (a fresh IV each time)', async () => {
    const codec = new AesGcmPayloadCodec([keyA]);
    const [one, two] = await codec.encode([plain(), plain()]);
    expect(Buffer.from(one!.data!).equals(Buffer.from(two!.data!))).toBe(false);
  });

  it('when a key is rotated (B put first), then new payloads use B and those encrypted with A still decode', async () => {
    const [oldPayload] = await new AesGcmPayloadCodec([keyA]).encode([plain()]);
    const rotated = new AesGcmPayloadCodec([keyB, keyA]);
    const [newPayload] = await rotated.encode([plain()]);
    expect(text(newPayload!.metadata![KEY_ID_METADATA])).toBe('b');
    const decoded = await rotated.decode([oldPayload!, newPayload!]);
    expect(decoded.map((p) => defaultPayloadConverter.fromPayload(p))).toEqual([order, order]);
  });

  it('when a payload names a key id that is not configured, then decoding fails naming that id', async () => {
    const [encoded] = await new AesGcmPayloadCodec([keyB]).encode([plain()]);
    const codec = new AesGcmPayloadCodec([keyA]);
    await expect(codec.decode([encoded!])).rejects.toThrow(PayloadDecryptionError);
    await expect(codec.decode([encoded!])).rejects.toThrow(
      /key "b", which is not among the configured keys \(a\)/,
    );
  });

  it('when a byte of the ciphertext, IV or tag is changed, then decoding fails authentication', async () => {
    const codec = new AesGcmPayloadCodec([keyA]);
    const [encoded] = await codec.encode([plain()]);
    const length = encoded!.data!.length;
    for (const index of [0, 12, Math.floor(length / 2), length - 1]) {
      const data = Buffer.from(encoded!.data!);
      data[index] = data[index]! ^ 0x01;
      await expect(codec.decode([{ ...encoded!, data }])).rejects.toThrow(/failed authentication/);
    }
  });

  it('when the key id metadata is swapped for another configured key, then decoding fails authentication', async () => {
    const codec = new AesGcmPayloadCodec([keyA, keyB]);
    const [encoded] = await codec.encode([plain()]);
    const swapped = { ...encoded!, metadata: { ...encoded!.metadata, [KEY_ID_METADATA]: Buffer.from('b') } };
    await expect(codec.decode([swapped])).rejects.toThrow(/failed authentication/);
  });

  it('when a payload was never encrypted (an older history), then it decodes as it is', async () => {
    const codec = new AesGcmPayloadCodec([keyA]);
    const [decoded] = await codec.decode([plain()]);
    expect(defaultPayloadConverter.fromPayload(decoded!)).toEqual(order);
  });

  it('when a truncated ciphertext is decoded, then it fails clearly', async () => {
    const codec = new AesGcmPayloadCodec([keyA]);
    const [encoded] = await codec.encode([plain()]);
    await expect(codec.decode([{ ...encoded!, data: encoded!.data!.subarray(0, 10) }])).rejects.toThrow(
      /truncated/,
    );
  });
});

describe('PAYLOAD_ENCRYPTION_KEYS', () => {
  const b64 = randomBytes(32).toString('base64');

  it('when keys are listed, then the first encrypts and each is parsed', () => {
    const keys = parseEncryptionKeys(`new:${b64}, old:${randomBytes(32).toString('base64')}`);
    expect(keys.map((k) => k.id)).toEqual(['new', 'old']);
    expect(keys[0]!.key.equals(Buffer.from(b64, 'base64'))).toBe(true);
  });

  it.each([
    ['no colon', b64, /key 1: expected <keyId>:<base64/],
    ['an empty id', `:${b64}`, /key 1: expected <keyId>/],
    [
      '16 bytes',
      `k:${randomBytes(16).toString('base64')}`,
      /key 1 \("k"\): the key must be base64 of exactly 32 bytes/,
    ],
    ['not base64', 'k:not*base64!', /exactly 32 bytes/],
    ['an id twice', `k:${b64},k:${b64}`, /key 2 \("k"\): the id is listed twice/],
  ])(
    'when a key has %s, then a ConfigError names the variable and never echoes the key',
    (_case, raw, message) => {
      let error: unknown;
      try {
        parseEncryptionKeys(raw);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).variable).toBe('PAYLOAD_ENCRYPTION_KEYS');
      expect((error as Error).message).toMatch(/^PAYLOAD_ENCRYPTION_KEYS: /);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain(b64);
    },
  );

  it('when a production process has neither keys nor PAYLOAD_ENCRYPTION=off, then it refuses to start', () => {
    expect(() => loadPayloadEncryption({}, { required: true })).toThrow(
      /^PAYLOAD_ENCRYPTION_KEYS: is required.*PAYLOAD_ENCRYPTION=off/,
    );
  });

  it('when PAYLOAD_ENCRYPTION=off and no keys, then payloads go in clear; keys given are always used', () => {
    expect(loadPayloadEncryption({ PAYLOAD_ENCRYPTION: 'off' }, { required: true }).keys).toBeUndefined();
    expect(
      loadPayloadEncryption({ PAYLOAD_ENCRYPTION_KEYS: `k:${b64}` }, { required: true }).keys,
    ).toHaveLength(1);
    expect(() => loadPayloadEncryption({ PAYLOAD_ENCRYPTION: 'no' }, { required: true })).toThrow(
      /^PAYLOAD_ENCRYPTION: must be on or off/,
    );
  });

  it('when replay or the bench has no keys, then they run without the codec', () => {
    expect(loadPayloadEncryption({}, { required: false }).keys).toBeUndefined();
  });
});
