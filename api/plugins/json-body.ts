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
      done(isPlainJson(text) ? forbiddenKey() : error, undefined);
    });
  });
}

/** Tells "not JSON" from "JSON with a __proto__ or constructor.prototype key". */
function isPlainJson(body: string): boolean {
  try {
    JSON.parse(body);
    return true;
  } catch {
    return false;
  }
}

const forbiddenKey = () =>
  new ProblemError(
    400,
    'forbidden-property',
    'Forbidden property',
    'The body contains a "__proto__" or "constructor.prototype" key, which is not accepted.',
  );
