/**
 * RFC 9457 problem details. Handlers throw ProblemError; the one error handler in
 * plugins/errors.ts turns it (and everything else) into `application/problem+json`.
 */
export const PROBLEM_BASE = 'https://order-saga.dev/problems/';
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface FieldError {
  /** JSON pointer into the request part, e.g. `/items/0/quantity`. */
  field: string;
  message: string;
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldError[];
  unknownSkus?: string[];
  orderStatus?: string;
}

type Extensions = Pick<ProblemBody, 'errors' | 'unknownSkus' | 'orderStatus'>;

export class ProblemError extends Error {
  readonly type: string;

  constructor(
    readonly status: number,
    slug: string,
    readonly title: string,
    readonly detail: string,
    readonly extensions: Extensions = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = 'ProblemError';
    this.type = PROBLEM_BASE + slug;
  }

  toBody(): ProblemBody {
    return {
      type: this.type,
      title: this.title,
      status: this.status,
      detail: this.detail,
      ...this.extensions,
    };
  }
}

/** Seconds a client should wait before retrying when a dependency is down. */
export const RETRY_AFTER_SECONDS = 5;

export const problems = {
  validation: (errors: FieldError[], detail = 'The request is invalid; see errors.') =>
    new ProblemError(400, 'validation-error', 'Invalid request', detail, { errors }),
  malformedJson: (detail = 'The request body is not valid JSON.') =>
    new ProblemError(400, 'malformed-json', 'Malformed JSON', detail),
  badRequest: (detail: string) => new ProblemError(400, 'bad-request', 'Bad request', detail),
  unauthorized: (detail: string) =>
    new ProblemError(401, 'unauthorized', 'Unauthorized', detail, {}, { 'www-authenticate': 'Bearer' }),
  forbidden: (scope: string) =>
    new ProblemError(403, 'forbidden', 'Forbidden', `This operation needs the scope ${scope}, which the token does not grant.`),
  notFound: (detail: string) => new ProblemError(404, 'not-found', 'Not found', detail),
  orderNotFound: (orderId: string) =>
    new ProblemError(404, 'order-not-found', 'Order not found', `No order has id ${orderId}.`),
  productNotFound: (sku: string) =>
    new ProblemError(
      404,
      'product-not-found',
      'Product not found',
      `No product has sku ${JSON.stringify(sku)}.`,
    ),
  orderNotCancellable: (orderStatus: string) =>
    new ProblemError(
      409,
      'order-not-cancellable',
      'Order cannot be cancelled',
      `The order is ${orderStatus}.`,
      {
        orderStatus,
      },
    ),
  orderNotAwaitingApproval: (
    orderStatus: string,
    detail = `The order is ${orderStatus}, not AWAITING_APPROVAL.`,
  ) =>
    new ProblemError(409, 'order-not-awaiting-approval', 'Order is not awaiting approval', detail, {
      orderStatus,
    }),
  payloadTooLarge: (limitBytes: number) =>
    new ProblemError(
      413,
      'payload-too-large',
      'Payload too large',
      `Request bodies are limited to ${limitBytes} bytes.`,
    ),
  unsupportedMediaType: () =>
    new ProblemError(
      415,
      'unsupported-media-type',
      'Unsupported media type',
      'Send the body as application/json.',
    ),
  unknownSku: (unknownSkus: string[]) =>
    new ProblemError(
      422,
      'unknown-sku',
      'Unknown sku',
      `No product in the catalog has sku ${unknownSkus.map((sku) => JSON.stringify(sku)).join(', ')}.`,
      { unknownSkus },
    ),
  idempotencyKeyReused: () =>
    new ProblemError(
      422,
      'idempotency-key-reused',
      'Idempotency-Key reused',
      'This Idempotency-Key was already used with a different request body.',
    ),
  idempotencyKeyInUse: () =>
    new ProblemError(
      409,
      'idempotency-key-in-use',
      'Idempotency-Key in use',
      'A request with this Idempotency-Key is still being processed; retry shortly.',
      {},
      { 'retry-after': '1' },
    ),
  tooManyRequests: (retryAfterSeconds: number) =>
    new ProblemError(
      429,
      'too-many-requests',
      'Too many requests',
      `The rate limit for this caller is used up; retry in ${retryAfterSeconds} s.`,
      {},
      { 'retry-after': String(retryAfterSeconds) },
    ),
  internal: () =>
    new ProblemError(500, 'internal-error', 'Internal server error', 'Something went wrong on our side.'),
  unavailable: (dependency: string) =>
    new ProblemError(
      503,
      'service-unavailable',
      'Service unavailable',
      `${dependency} is not reachable at the moment; retry later.`,
      {},
      { 'retry-after': String(RETRY_AFTER_SECONDS) },
    ),
  shuttingDown: () =>
    new ProblemError(
      503,
      'service-unavailable',
      'Service unavailable',
      'This instance is shutting down; retry, another instance will answer.',
      {},
      { 'retry-after': '1', connection: 'close' },
    ),
};
