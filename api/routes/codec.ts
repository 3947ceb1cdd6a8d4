import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { AesGcmPayloadCodec, KEY_ID_METADATA, PayloadDecryptionError } from '../../lib/payload-codec';
import type { ApiDeps } from '../deps';
import { needs } from '../plugins/auth';
import { problemResponses } from '../schemas/common';
import { CodecPayloads, type CodecPayload } from '../schemas/codec';

const toPayload = ({ metadata, data }: CodecPayload): Payload => ({
  metadata: Object.fromEntries(
    Object.entries(metadata ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')]),
  ),
  data: Buffer.from(data ?? '', 'base64'),
});
const fromPayload = ({ metadata, data }: Payload): CodecPayload => ({
  metadata: Object.fromEntries(
    Object.entries(metadata ?? {}).map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
  ),
  data: Buffer.from(data ?? new Uint8Array()).toString('base64'),
});

/** Without keys (PAYLOAD_ENCRYPTION=off) the codec is the identity, as the workers' is. */
const identity: PayloadCodec = {
  encode: (payloads) => Promise.resolve(payloads),
  decode: (payloads) => Promise.resolve(payloads),
};

/**
 * Temporal's remote codec protocol, for the Web UI and `temporal … --codec-endpoint`
 * (CONTRACT §6): the same codec as the workers', behind the `orders:read` scope. CORS for
 * the Web UI's origin is set up in plugins/security.ts. A payload that cannot be decrypted
 * (another key, altered) is answered as it came, so the rest of a run still reads.
 */
export const codecRoutes: FastifyPluginCallbackTypebox<ApiDeps> = (app, { config }, done) => {
  const keys = config.payloadEncryption.keys;
  const codec: PayloadCodec = keys ? new AesGcmPayloadCodec(keys) : identity;
  const description =
    'Temporal remote codec protocol: the payloads as Temporal stores them (base64 metadata and data). ' +
    'The Web UI calls it with the run it shows; the answer is what the workers see.';

  app.post(
    '/codec/encode',
    {
      schema: {
        operationId: 'encodePayloads',
        summary: 'Encrypt payloads as the service does before they reach Temporal',
        description,
        tags: ['codec'],
        security: needs('orders:read'),
        body: CodecPayloads,
        response: { 200: CodecPayloads, ...problemResponses(403, 413, 415) },
      },
    },
    async (request) => ({
      payloads: (await codec.encode(request.body.payloads.map(toPayload))).map(fromPayload),
    }),
  );

  app.post(
    '/codec/decode',
    {
      schema: {
        operationId: 'decodePayloads',
        summary: 'Decrypt payloads read from Temporal',
        description,
        tags: ['codec'],
        security: needs('orders:read'),
        body: CodecPayloads,
        response: { 200: CodecPayloads, ...problemResponses(403, 413, 415) },
      },
    },
    async (request) => {
      const decoded = await Promise.all(
        request.body.payloads.map(async (wire) => {
          const payload = toPayload(wire);
          try {
            const [plain] = await codec.decode([payload]);
            return fromPayload(plain!);
          } catch (error) {
            if (!(error instanceof PayloadDecryptionError)) throw error;
            const keyId = payload.metadata?.[KEY_ID_METADATA];
            request.log.warn(
              { keyId: keyId ? Buffer.from(keyId).toString('utf8') : undefined, reason: error.message },
              'codec: a payload could not be decrypted; answered as it came',
            );
            return wire;
          }
        }),
      );
      return { payloads: decoded };
    },
  );
  done();
};
