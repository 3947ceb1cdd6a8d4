/** What the database's errors mean to the code that called it. */

/** Node socket errors meaning "could not reach the server". */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EPIPE',
  'EAI_AGAIN',
]);
/** SQLSTATEs meaning Postgres is going away or not taking connections. */
const PG_UNAVAILABLE_CODES = new Set(['57P01', '57P02', '57P03', '53300']);
// pg and pg-pool report lost connections and checkout timeouts with messages only.
const PG_UNAVAILABLE_MESSAGES = [
  'timeout exceeded when trying to connect',
  'Connection terminated',
  'Client has encountered a connection error',
  'Connection ended unexpectedly',
];

const codeOf = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

/**
 * Duck-typed rather than `instanceof Error`: socket errors come from Node's core, which may
 * be another realm than this code (a vm context, as under Jest), where instanceof fails.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = codeOf(error);
  if (code !== undefined) {
    // Class 08: connection exception.
    if (SOCKET_CODES.has(code) || PG_UNAVAILABLE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  const message = (error as { message?: unknown }).message;
  if (typeof message === 'string' && PG_UNAVAILABLE_MESSAGES.some((text) => message.includes(text))) {
    return true;
  }
  // AggregateError (connecting to several addresses) carries the socket errors inside.
  const inner = (error as { errors?: unknown }).errors;
  return Array.isArray(inner) && inner.some(isDatabaseUnavailable);
}
