/**
 * The simulated providers' own idempotency records (activities/providers/simulated.ts): one
 * row per (provider, idempotency key), with how many calls reached it, the first request
 * and the answer that stands for that key. A real provider keeps these on its side.
 */
import type { Queryable } from './pool';

export interface ProviderRequest<T> {
  calls: number;
  request: Record<string, unknown>;
  response: T | null;
}

/** Counts a call under `key` (the first one's request is kept) and returns the stored answer, if any. */
export async function recordProviderCall<T>(
  db: Queryable,
  provider: string,
  key: string,
  request: Record<string, unknown> = {},
): Promise<{ calls: number; response: T | null }> {
  const { rows } = await db.query<{ calls: number; response: T | null }>(
    `INSERT INTO simulated_provider_requests (provider, idempotency_key, calls, request) VALUES ($1, $2, 1, $3)
     ON CONFLICT (provider, idempotency_key)
       DO UPDATE SET calls = simulated_provider_requests.calls + 1
     RETURNING calls, response`,
    [provider, key, JSON.stringify(request)],
  );
  return rows[0]!;
}

/**
 * One statement for a call whose answer does not depend on the calls before it: counts the
 * call and stores `answer` unless one stands for `key` (a voided key keeps its answer).
 * Returns the answer that stands.
 */
export async function answerProviderCall<T>(
  db: Queryable,
  provider: string,
  key: string,
  request: Record<string, unknown>,
  answer: T,
): Promise<T> {
  const { rows } = await db.query<{ response: T }>(
    `INSERT INTO simulated_provider_requests (provider, idempotency_key, calls, request, response)
     VALUES ($1, $2, 1, $3, $4)
     ON CONFLICT (provider, idempotency_key)
       DO UPDATE SET calls = simulated_provider_requests.calls + 1,
                     response = COALESCE(simulated_provider_requests.response, EXCLUDED.response)
     RETURNING response`,
    [provider, key, JSON.stringify(request), JSON.stringify(answer)],
  );
  return rows[0]!.response;
}

/**
 * Stores the answer for `key` unless another call stored one first; returns the one that
 * stands. The key's row must exist (recordProviderCall).
 */
export async function storeProviderResponse<T>(
  db: Queryable,
  provider: string,
  key: string,
  response: T,
): Promise<T> {
  const { rows } = await db.query<{ response: T }>(
    `UPDATE simulated_provider_requests SET response = COALESCE(response, $3::jsonb)
      WHERE provider = $1 AND idempotency_key = $2
      RETURNING response`,
    [provider, key, JSON.stringify(response)],
  );
  return rows[0]!.response;
}

/**
 * Voids `key` unless it already has an answer: `voided` becomes its answer for good, so a
 * call still on its way gets it. Returns the answer that stands (`voided`, or the one that
 * was there) and the request of the call that reached the key first (`{}` if none did).
 */
export async function voidProviderKey<T>(
  db: Queryable,
  provider: string,
  key: string,
  voided: T,
): Promise<{ response: T; request: Record<string, unknown> }> {
  const { rows } = await db.query<{ response: T; request: Record<string, unknown> }>(
    `INSERT INTO simulated_provider_requests (provider, idempotency_key, calls, request, response)
     VALUES ($1, $2, 0, '{}', $3)
     ON CONFLICT (provider, idempotency_key)
       DO UPDATE SET response = COALESCE(simulated_provider_requests.response, EXCLUDED.response)
     RETURNING response, request`,
    [provider, key, JSON.stringify(voided)],
  );
  return rows[0]!;
}

/** What the provider holds for `key`: its calls, first request and standing answer. */
export async function findProviderRequest<T>(
  db: Queryable,
  provider: string,
  key: string,
): Promise<ProviderRequest<T> | undefined> {
  const { rows } = await db.query<ProviderRequest<T>>(
    `SELECT calls, request, response FROM simulated_provider_requests
      WHERE provider = $1 AND idempotency_key = $2`,
    [provider, key],
  );
  return rows[0];
}
