import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { problems } from '../problems';
import { ANONYMOUS } from './auth';

export interface RateLimitSettings {
  max: number;
  windowMs: number;
}

/**
 * `max` requests per window per caller: an authenticated principal (every token of one API
 * key id, JWT subject, or all API_TOKENS share a budget), else the client address (req.ip, which honours
 * TRUST_PROXY). Over the limit: 429 problem with Retry-After. Routes opt out with
 * `config: { rateLimit: false }` (probes, metrics). Counters live in this process: with N
 * replicas behind a balancer a caller gets up to N × max.
 */
export function limitRequestRates(app: FastifyInstance, { max, windowMs }: RateLimitSettings): void {
  void app.register(rateLimit, {
    global: true,
    max,
    timeWindow: windowMs,
    // Runs after the app's onRequest hooks (auth has identified the caller by then).
    hook: 'onRequest',
    keyGenerator: (request) => (request.caller !== ANONYMOUS ? request.caller : `ip:${request.ip}`),
    errorResponseBuilder: (_request, context) =>
      problems.tooManyRequests(Math.max(1, Math.ceil(context.ttl / 1000))),
  });
}
