import { Kind, Type, TypeRegistry, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { DefaultErrorFunction, SetErrorFunction } from '@sinclair/typebox/errors';

/**
 * A string enum that renders as `{ type: 'string', enum: [...] }` in OpenAPI (a union of
 * literals would render as a long anyOf) and still validates with TypeBox's compiler.
 */
TypeRegistry.Set<{ enum: readonly string[] }>(
  'StringEnum',
  (schema, value) => typeof value === 'string' && schema.enum.includes(value),
);

export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: { description?: string } = {},
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ [Kind]: 'StringEnum', type: 'string', enum: [...values], ...options });
}

// Default messages are fine except for our custom kind, which would say "Expected kind".
SetErrorFunction((parameter) =>
  parameter.schema[Kind] === 'StringEnum'
    ? `Expected one of ${(parameter.schema as TSchema & { enum: string[] }).enum.join(', ')}`
    : DefaultErrorFunction(parameter),
);

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
export const Uuid = Type.String({ pattern: UUID_PATTERN, description: 'A UUID' });
export const Sku = Type.String({ minLength: 1, maxLength: 64, examples: ['SKU-1'] });
export const Cents = Type.Integer({ minimum: 0, description: 'Money in integer cents' });

export const FieldErrorSchema = Type.Object({
  field: Type.String({ description: 'JSON pointer to the offending value, e.g. /items/0/quantity' }),
  message: Type.String(),
});

export const Problem = Type.Object(
  {
    type: Type.String({ format: 'uri' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    errors: Type.Optional(Type.Array(FieldErrorSchema)),
    unknownSkus: Type.Optional(Type.Array(Type.String())),
    orderStatus: Type.Optional(Type.String()),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details (application/problem+json)' },
);

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request',
  401: 'Missing, malformed, expired or unknown bearer token',
  403: 'The token does not grant the scope this operation needs (detail names it)',
  404: 'Not found',
  409: "Conflict with the order's state",
  413: 'Body larger than 64 KiB',
  415: 'Body is not application/json',
  422: 'Unprocessable',
  429: 'Rate limit used up (per bearer token, else per client address); see Retry-After',
  500: 'Internal error',
  503: "A dependency (or the identity provider's keys) is unavailable, or this instance is shutting down; see Retry-After",
};

/** Statuses whose problems say when to come back. */
const RETRY_AFTER_STATUSES = new Set([409, 429, 503]);
const RetryAfter = {
  'Retry-After': { type: 'integer', minimum: 0, description: 'Seconds to wait before retrying' },
};

export const problemContent = { 'application/problem+json': { schema: Type.Ref('Problem') } };

/** One problem response, with Retry-After documented where it is sent. */
export function problemResponse(status: number) {
  return {
    description: PROBLEM_DESCRIPTIONS[status] ?? 'Problem',
    ...(RETRY_AFTER_STATUSES.has(status) ? { headers: RetryAfter } : {}),
    content: problemContent,
  };
}

/**
 * Problem responses every API route may give (400, 401, 429, 500, 503), plus the ones named.
 * Routes that take a body add 413 and 415.
 */
export function problemResponses(...statuses: number[]) {
  const all = [...new Set([400, 401, ...statuses, 429, 500, 503])].sort((a, b) => a - b);
  return Object.fromEntries(all.map((status) => [status, problemResponse(status)]));
}
