import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level: equal documents, equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** What "the same body" means for Idempotency-Key: the digest of its canonical JSON. */
export const fingerprintOf = (body: unknown): string =>
  createHash('sha256').update(canonicalJson(body)).digest('hex');
