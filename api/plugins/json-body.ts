import type { FastifyInstance } from 'fastify';
import { ProblemError } from '../problems';

/**
 * Only application/json bodies are accepted (anything else → 415), parsed with Fastify's
 * prototype-poisoning checks set to reject. An empty body is "no body", so bodiless
 * POSTs such as /cancel work from clients that always send a JSON content type.
 */
export function acceptJsonBodiesOnly(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body.length === 0) {
      done(null, undefined);
      return;
    }
    const text = typeof body === 'string' ? body : body.toString('utf8');
    void parseJson(request, text, (error, value) => {
      if (error === null) {
        done(null, value);
        return;
      }
      const parsed = parsePlainJson(text);
      done(parsed.ok ? forbiddenKeys(parsed.value) : error, undefined);
    });
  });
}

/**
 * Tells "not JSON" from "JSON with a __proto__ or constructor.prototype key". JSON.parse
 * makes such keys own properties (it never sets a prototype), so the result is safe to walk.
 */
function parsePlainJson(body: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(body) as unknown };
  } catch {
    return { ok: false };
  }
}

const pointer = (path: string, key: string): string =>
  `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;

/** JSON Pointers of every `__proto__` and `constructor.prototype` key in the document. */
function forbiddenPaths(value: unknown, path = ''): string[] {
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, child]: [string, unknown]) => {
    const here = pointer(path, key);
    if (key === '__proto__') return [here];
    if (
      key === 'constructor' &&
      typeof child === 'object' &&
      child !== null &&
      Object.hasOwn(child, 'prototype')
    ) {
      return [pointer(here, 'prototype')];
    }
    return forbiddenPaths(child, here);
  });
}

const forbiddenKeys = (document: unknown) =>
  new ProblemError(
    400,
    'forbidden-property',
    'Forbidden property',
    'The body contains a "__proto__" or "constructor.prototype" key, which is not accepted; see errors.',
    {
      errors: forbiddenPaths(document).map((field) => ({
        field,
        message: 'Keys named __proto__ or constructor.prototype are not accepted',
      })),
    },
  );
