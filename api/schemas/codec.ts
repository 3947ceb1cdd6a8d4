import { Type, type Static } from '@sinclair/typebox';

const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', description: 'base64' });

/** A Temporal payload in the protobuf JSON mapping: metadata values and data in base64. */
export const CodecPayload = Type.Object(
  {
    metadata: Type.Optional(Type.Record(Type.String({ maxLength: 256 }), Base64)),
    data: Type.Optional(Base64),
  },
  { additionalProperties: false },
);

/** Body and answer of Temporal's remote codec protocol (`/encode`, `/decode`). */
export const CodecPayloads = Type.Object(
  { payloads: Type.Array(CodecPayload, { maxItems: 1_000 }) },
  { additionalProperties: false },
);
export type CodecPayloads = Static<typeof CodecPayloads>;
export type CodecPayload = Static<typeof CodecPayload>;
