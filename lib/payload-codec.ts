/**
 * Payload encryption: every payload the service hands to Temporal (workflow input and
 * result, activity arguments and results, update arguments, failures, the run's summary and
 * details) leaves the process encrypted with AES-256-GCM (CONTRACT §6).
 *
 * An encrypted payload has the metadata `encoding: binary/encrypted` and
 * `encryption-key-id: <id>`; its data is `iv (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`, the
 * ciphertext being the original payload (metadata and data) in Temporal's protobuf encoding,
 * and the key id is authenticated as associated data. The first key encrypts, every key
 * decrypts: a key is rotated by putting the new one first. Payloads that are not encrypted
 * (histories recorded before encryption was turned on) decode as they are.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { ConfigError, optionalString, type Env } from './env';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
export const KEYS_VARIABLE = 'PAYLOAD_ENCRYPTION_KEYS';
export const SWITCH_VARIABLE = 'PAYLOAD_ENCRYPTION';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface EncryptionKey {
  id: string;
  /** 32 bytes. */
  key: Buffer;
}

/** A payload the codec cannot decrypt: unknown key id, or one that fails authentication. */
export class PayloadDecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadDecryptionError';
  }
}

const PayloadProto = temporal.api.common.v1.Payload;
const text = (bytes: Uint8Array | null | undefined): string | undefined =>
  bytes == null ? undefined : Buffer.from(bytes).toString('utf8');

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly encrypting: EncryptionKey;
  private readonly byId: ReadonlyMap<string, Buffer>;

  constructor(keys: readonly EncryptionKey[]) {
    const [first] = keys;
    if (first === undefined) throw new Error('AesGcmPayloadCodec needs at least one key');
    for (const { id, key } of keys) {
      if (!KEY_ID.test(id)) throw new Error(`invalid encryption key id "${id}"`);
      if (key.length !== KEY_BYTES) throw new Error(`encryption key "${id}" is not ${KEY_BYTES} bytes`);
    }
    this.encrypting = first;
    this.byId = new Map(keys.map(({ id, key }) => [id, key]));
  }

  /** The id of the key new payloads are encrypted with. */
  get keyId(): string {
    return this.encrypting.id;
  }

  // async: a failure is a rejected promise, never a synchronous throw.
  // eslint-disable-next-line @typescript-eslint/require-await
  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.encrypt(payload));
  }

  // eslint-disable-next-line @typescript-eslint/require-await
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.decrypt(payload));
  }

  private encrypt(payload: Payload): Payload {
    const { id, key } = this.encrypting;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(id, 'utf8'));
    const plain = PayloadProto.encode(payload).finish();
    const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: {
        encoding: Buffer.from(ENCRYPTED_ENCODING),
        [KEY_ID_METADATA]: Buffer.from(id),
      },
      data: sealed,
    };
  }

  private decrypt(payload: Payload): Payload {
    if (text(payload.metadata?.encoding) !== ENCRYPTED_ENCODING) return payload;
    const id = text(payload.metadata?.[KEY_ID_METADATA]);
    if (id === undefined) {
      throw new PayloadDecryptionError(`encrypted payload without ${KEY_ID_METADATA} metadata`);
    }
    const key = this.byId.get(id);
    if (key === undefined) {
      throw new PayloadDecryptionError(
        `payload encrypted with key "${id}", which is not among the configured keys (${[...this.byId.keys()].join(', ')})`,
      );
    }
    const sealed = Buffer.from(payload.data ?? new Uint8Array());
    if (sealed.length < IV_BYTES + TAG_BYTES) {
      throw new PayloadDecryptionError(`encrypted payload (key "${id}") is truncated`);
    }
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(id, 'utf8'));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([
        decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)),
        decipher.final(),
      ]);
    } catch {
      throw new PayloadDecryptionError(
        `encrypted payload (key "${id}") failed authentication: it was altered, or encrypted with another key of that id`,
      );
    }
    const decoded = PayloadProto.decode(plain);
    return { metadata: decoded.metadata, data: decoded.data };
  }
}

/** `<keyId>:<base64 of 32 bytes>`, comma-separated; throws ConfigError naming `variable`. */
export function parseEncryptionKeys(raw: string, variable = KEYS_VARIABLE): EncryptionKey[] {
  const keys: EncryptionKey[] = [];
  const entries = raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0)
    throw new ConfigError(variable, 'holds no key; expected <keyId>:<base64 of 32 bytes>');
  for (const [index, entry] of entries.entries()) {
    const colon = entry.indexOf(':');
    const id = colon < 0 ? '' : entry.slice(0, colon);
    const material = colon < 0 ? '' : entry.slice(colon + 1);
    // Never echo the key material itself: name the entry by position and id only.
    const where = `key ${index + 1}${KEY_ID.test(id) ? ` ("${id}")` : ''}`;
    if (!KEY_ID.test(id)) {
      throw new ConfigError(
        variable,
        `${where}: expected <keyId>:<base64 of 32 bytes>, the id made of A-Z a-z 0-9 . _ -`,
      );
    }
    const key = BASE64.test(material) ? Buffer.from(material, 'base64') : undefined;
    if (key === undefined || key.length !== KEY_BYTES) {
      throw new ConfigError(variable, `${where}: the key must be base64 of exactly ${KEY_BYTES} bytes`);
    }
    if (keys.some((known) => known.id === id))
      throw new ConfigError(variable, `${where}: the id is listed twice`);
    keys.push({ id, key });
  }
  return keys;
}

/** Encryption on with these keys, or off (only ever by PAYLOAD_ENCRYPTION=off). */
export type PayloadEncryption = { keys: EncryptionKey[] } | { keys: undefined; off: true };

/**
 * PAYLOAD_ENCRYPTION_KEYS, or PAYLOAD_ENCRYPTION=off. Keys, when given, are always used;
 * `off` only allows running without them. `required` (the api and the worker): neither set
 * stops the process; otherwise (replay, bench) no keys means no codec.
 */
export function loadPayloadEncryption(env: Env, { required }: { required: boolean }): PayloadEncryption {
  const raw = optionalString(env, KEYS_VARIABLE);
  const mode = optionalString(env, SWITCH_VARIABLE);
  if (mode !== undefined && mode !== 'on' && mode !== 'off') {
    throw new ConfigError(SWITCH_VARIABLE, `must be on or off, got "${mode}"`);
  }
  if (raw === undefined) {
    if (mode === 'off') return { keys: undefined, off: true };
    if (required || mode === 'on') {
      throw new ConfigError(
        KEYS_VARIABLE,
        `is required: <keyId>:<base64 of 32 bytes> (or set ${SWITCH_VARIABLE}=off to send payloads in clear)`,
      );
    }
    return { keys: undefined, off: true };
  }
  return { keys: parseEncryptionKeys(raw) };
}

/** Bundled into the workflow code and loaded by clients: failures' message and stack as a payload. */
export const FAILURE_CONVERTER_PATH = require.resolve('./failure-converter');

/**
 * The data converter of everything that talks to Temporal (clients, workers, replay): the
 * encrypting codec when there are keys, and failures with their message and stack encoded.
 * Workers given a prebuilt bundle must have bundled it with `workflowBundleConverters`.
 */
export function dataConverterFor(keys: readonly EncryptionKey[] | undefined): DataConverter {
  return {
    failureConverterPath: FAILURE_CONVERTER_PATH,
    ...(keys && keys.length > 0 ? { payloadCodecs: [new AesGcmPayloadCodec(keys)] } : {}),
  };
}

/** What bundleWorkflowCode needs so the bundled workflows encode failures the same way. */
export const workflowBundleConverters = { failureConverterPath: FAILURE_CONVERTER_PATH } as const;

/** A fresh `<keyId>:<base64>` entry, for `npm start` and tests. */
export function generateEncryptionKey(id: string): string {
  return `${id}:${randomBytes(KEY_BYTES).toString('base64')}`;
}
