import { Type, type Static } from '@sinclair/typebox';
import {
  FAILURE_REASONS,
  ORDER_STATUSES,
  PAYMENT_STATUSES,
  SHIPMENT_STATUSES,
  STEP_NAMES,
  STEP_STATUSES,
  type FailureReason,
} from '../../contracts/index';
import { Cents, Sku, StringEnum, Uuid } from './common';

const text = (maxLength: number, extra: object = {}) => Type.String({ minLength: 1, maxLength, ...extra });

export const MAX_ITEMS = 50;

export const OrderItemInput = Type.Object(
  { sku: Sku, quantity: Type.Integer({ minimum: 1, maximum: 1000 }) },
  { additionalProperties: false },
);

export const ShippingAddress = Type.Object(
  {
    name: text(200),
    line1: text(200),
    line2: Type.Optional(text(200)),
    city: text(100),
    postalCode: text(32),
    country: Type.String({
      pattern: '^[A-Z]{2}$',
      description: 'ISO 3166-1 alpha-2 country code (shape only; "ZZ" makes the simulated carrier refuse)',
      examples: ['US'],
    }),
  },
  { additionalProperties: false },
);

export const CreateOrderBody = Type.Object(
  {
    customerId: text(64, { examples: ['c-42'] }),
    items: Type.Array(OrderItemInput, {
      minItems: 1,
      maxItems: MAX_ITEMS,
      description: 'Each sku at most once; prices come from the catalog',
    }),
    paymentToken: text(255, {
      writeOnly: true,
      description: 'Simulated gateway: tok_ok, tok_declined, tok_flaky, tok_slow, tok_refund_flaky',
      examples: ['tok_ok'],
    }),
    shippingAddress: ShippingAddress,
  },
  { additionalProperties: false },
);
export type CreateOrderBody = Static<typeof CreateOrderBody>;

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[\\x20-\\x7E]+$',
      description: 'Makes retries safe: same key and body → the first response again; 1–255 printable ASCII',
    }),
  ),
});

export const OrderLinks = Type.Object({
  self: Type.String(),
  temporalUi: Type.String({ format: 'uri' }),
  cancel: Type.Optional(Type.String()),
  approve: Type.Optional(Type.String()),
  reject: Type.Optional(Type.String()),
});

export const OrderAccepted = Type.Object({
  orderId: Uuid,
  status: Type.Literal('PENDING'),
  workflowId: Type.String(),
  totalCents: Cents,
  currency: Type.String(),
  links: Type.Object({ self: Type.String(), temporalUi: Type.String({ format: 'uri' }) }),
});
export type OrderAccepted = Static<typeof OrderAccepted>;

export const OrderView = Type.Object({
  orderId: Uuid,
  status: StringEnum(ORDER_STATUSES),
  customerId: Type.String(),
  items: Type.Array(Type.Object({ sku: Type.String(), quantity: Type.Integer(), unitPriceCents: Cents })),
  totalCents: Cents,
  currency: Type.String(),
  failureReason: Type.Unsafe<FailureReason | null>({
    type: ['string', 'null'],
    enum: [...FAILURE_REASONS, null],
    description: 'Why a FAILED order failed',
  }),
  payment: Type.Object({ status: StringEnum(PAYMENT_STATUSES) }),
  shipment: Type.Object({
    status: StringEnum(SHIPMENT_STATUSES),
    trackingNumber: Type.Optional(Type.String()),
  }),
  steps: Type.Array(
    Type.Object({
      name: StringEnum(STEP_NAMES),
      status: StringEnum(STEP_STATUSES),
      attempts: Type.Integer(),
    }),
  ),
  decisions: Type.Array(
    Type.Object({
      action: StringEnum(['approve', 'reject', 'cancel'] as const),
      by: Type.String({ description: "The caller's principal: API key id, JWT sub, static or anonymous" }),
      at: Type.String({ format: 'date-time' }),
    }),
    { description: 'Who approved, rejected or cancelled the order, oldest first' },
  ),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  links: OrderLinks,
});
export type OrderView = Static<typeof OrderView>;

export const OrderIdParams = Type.Object({ orderId: Uuid }, { additionalProperties: false });

export const ListOrdersQuery = Type.Object(
  {
    customerId: Type.Optional(text(64)),
    status: Type.Optional(StringEnum(ORDER_STATUSES)),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(text(200, { description: 'nextCursor of the previous page' })),
  },
  { additionalProperties: false },
);

export const OrderPage = Type.Object({
  items: Type.Array(OrderView),
  nextCursor: Type.Unsafe<string | null>({
    type: ['string', 'null'],
    description: 'Pass as cursor for the next page',
  }),
});

export const CancelAccepted = Type.Object({
  orderId: Uuid,
  status: StringEnum(ORDER_STATUSES),
  cancelRequested: Type.Literal(true),
});

export const DecisionAccepted = Type.Object({
  orderId: Uuid,
  decision: StringEnum(['approved', 'rejected'] as const),
});
