import pino from 'pino';

export type Logger = pino.Logger;

/** Paths never written to logs, wherever they appear. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'paymentToken',
  '*.paymentToken',
  'input.paymentToken',
  'body.paymentToken',
  'password',
  '*.password',
];

export function createLogger(name: string, level: string): pino.Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}
