import pino from 'pino';

export type Logger = pino.Logger;

export const REDACTED = '[redacted]';

/**
 * Keys whose values are never written to logs, at any depth up to four levels: credentials,
 * payment tokens, and the customer's postal address (personal data; the order id finds it).
 */
const REDACTED_KEYS = [
  'authorization',
  'cookie',
  'paymentToken',
  'password',
  'apiKey',
  'shippingAddress',
  'address',
];

/**
 * pino (fast-redact) paths for REDACTED_KEYS: the key itself and under up to three levels
 * of objects or arrays, e.g. `req.headers.authorization`, `input.input.paymentToken`,
 * `args.0.paymentToken`. Explicit paths rather than a deep walk: redaction stays cheap.
 */
export const REDACT_PATHS = REDACTED_KEYS.flatMap((key) => [key, `*.${key}`, `*.*.${key}`, `*.*.*.${key}`]);

/**
 * The last line of defence, over the serialized line: a bearer credential or a payment token
 * (`tok_…`, the shape of the gateway's tokens) that slipped into free text, such as an error
 * message echoing a request, is masked too.
 */
const SECRET_TEXT = /\b(Bearer\s+)[^\s"\\]+|\btok_[A-Za-z0-9_]+/gi;
export function scrubSecrets(line: string): string {
  return line.replace(SECRET_TEXT, (_match, bearer?: string) => (bearer ? `${bearer}${REDACTED}` : REDACTED));
}

/** Options every process's pino logger is built with (the API passes them to Fastify too). */
export function loggerOptions(name: string, level: string): pino.LoggerOptions {
  return {
    name,
    level,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    hooks: { streamWrite: scrubSecrets },
  };
}

/** JSON lines on stdout, or on `destination` (tests capture it). */
export function createLogger(name: string, level: string, destination?: pino.DestinationStream): pino.Logger {
  return destination ? pino(loggerOptions(name, level), destination) : pino(loggerOptions(name, level));
}
