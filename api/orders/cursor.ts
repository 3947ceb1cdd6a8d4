import type { OrderKey } from '../../store/order-views';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Opaque page cursors: base64url of `[createdMicros, id]`. Clients must not build them;
 * the shape may change.
 */
export function encodeCursor(key: OrderKey): string {
  return Buffer.from(JSON.stringify([key.createdUs, key.id])).toString('base64url');
}

/** The key a cursor names, or undefined when it is not one of ours. */
export function decodeCursor(cursor: string): OrderKey | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(decoded) || decoded.length !== 2) return undefined;
  const [createdUs, id] = decoded as unknown[];
  if (!Number.isSafeInteger(createdUs) || (createdUs as number) < 0) return undefined;
  if (typeof id !== 'string' || !UUID.test(id)) return undefined;
  return { createdUs: createdUs as number, id };
}
