import type { FastifyInstance } from 'fastify';
import { problems, type FieldError } from '../problems';

const MESSAGE = 'Must not contain the character U+0000';

/**
 * Postgres text and jsonb cannot hold U+0000 (it answers 22021 or 22P05), so a NUL anywhere
 * in a request's path parameters, query string or JSON body is refused here, before any
 * I/O, with a 400 naming the field — rather than a 500 half-way through, after the saga
 * has started.
 */
export function refuseNulCharacters(app: FastifyInstance): void {
  app.addHook('preValidation', (request, _reply, done) => {
    const errors = [...nulFields(request.params), ...nulFields(request.query), ...nulFields(request.body)];
    if (errors.length === 0) return done();
    done(
      problems.validation(
        errors,
        'The request contains the character U+0000, which is not accepted; see errors.',
      ),
    );
  });
}

/** JSON pointers to the strings (and keys) holding a NUL; iterative, so deep nesting is fine. */
function nulFields(root: unknown): FieldError[] {
  const errors: FieldError[] = [];
  const pending: Array<[unknown, string]> = [[root, '']];
  while (pending.length > 0 && errors.length < 20) {
    const [value, pointer] = pending.pop()!;
    if (typeof value === 'string') {
      if (value.includes('\u0000')) errors.push({ field: pointer, message: MESSAGE });
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    for (const [key, inner] of Object.entries(value)) {
      const field = `${pointer}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
      if (key.includes('\u0000')) errors.push({ field, message: MESSAGE });
      else pending.push([inner, field]);
    }
  }
  return errors;
}
