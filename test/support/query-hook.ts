import type { Pool } from '../../store/pool';

/**
 * `pool` with every `pool.query(text, …)` shown to `hook` first: the hook may record the
 * statement, or throw to make that query fail (a lost connection, say) without running it.
 * Everything else is the pool itself.
 */
export function withQueryHook(pool: Pool, hook: (text: string) => void): Pool {
  const query = async (text: unknown, ...rest: unknown[]): Promise<unknown> => {
    if (typeof text === 'string') hook(text);
    return (pool.query as (...args: unknown[]) => Promise<unknown>).call(pool, text, ...rest);
  };
  return new Proxy(pool, {
    get: (target, property, receiver): unknown =>
      property === 'query' ? query : (Reflect.get(target, property, receiver) as unknown),
  });
}
