import { Type, type Static } from '@sinclair/typebox';
import { Sku } from './common';

// Keeps Σ quantity × price below 2^53 for the largest order (50 lines × 1000 units).
export const MAX_PRICE_CENTS = 100_000_000_000;

export const SkuParams = Type.Object({ sku: Sku }, { additionalProperties: false });

export const ProductInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    priceCents: Type.Integer({ minimum: 0, maximum: MAX_PRICE_CENTS }),
    available: Type.Integer({ minimum: 0, maximum: 2_147_483_647 }),
  },
  { additionalProperties: false },
);
export type ProductInput = Static<typeof ProductInput>;

export const Product = Type.Object({
  sku: Type.String(),
  name: Type.String(),
  priceCents: Type.Integer(),
  available: Type.Integer({ description: 'What can still be reserved' }),
  reserved: Type.Integer({ description: 'What orders in progress hold' }),
});
export type Product = Static<typeof Product>;
