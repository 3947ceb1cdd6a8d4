import type { FastifyInstance } from 'fastify';
import { problems, type FieldError } from '../problems';

const NUL = 'Must not contain the character U+0000';
const SURROGATE = 'Must be well-formed Unicode: an unpaired surrogate (\\uD800–\\uDFFF) has no UTF-8 form';
/** In a `u` regex a paired surrogate is one code point (not Cs): this matches only unpaired ones. */
const UNPAIRED_SURROGATE = /\p{Cs}/u;

/**
 * Text Postgres cannot store as sent is refused here, before any I/O, with a 400 naming
 * the field — rather than a 500 half-way through, after the saga has started, or a value
 * silently changed on the way in:
 * - U+0000: text and jsonb cannot hold it (Postgres answers 22021 or 22P05);
 * - an unpaired surrogate (JSON allows `"\ud800"`): it has no UTF-8 encoding, so the
 *   driver would write U+FFFD instead, and the order would not hold what the caller sent.
 * Checked in path parameters, the query string and the JSON body, keys included.
 */
export function refuseUnstorableText(app: FastifyInstance): void {
  app.addHook('preValidation', (request, _reply, done) => {
    const errors = [...badFields(request.params), ...badFields(request.query), ...badFields(request.body)];
    if (errors.length === 0) return done();
    done(
      problems.validation(
        errors,
        'The request contains text that cannot be stored (U+0000 or an unpaired surrogate); see errors.',
      ),
    );
  });
}

function problemWith(text: string): string | undefined {
  if (text.includes('\u0000')) return NUL;
  if (UNPAIRED_SURROGATE.test(text)) return SURROGATE;
  return undefined;
}

/** JSON pointers to the strings (and keys) that cannot be stored; iterative, so deep nesting is fine. */
function badFields(root: unknown): FieldError[] {
  const errors: FieldError[] = [];
  const pending: Array<[unknown, string]> = [[root, '']];
  while (pending.length > 0 && errors.length < 20) {
    const [value, pointer] = pending.pop()!;
    if (typeof value === 'string') {
      const message = problemWith(value);
      if (message) errors.push({ field: pointer, message });
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    for (const [key, inner] of Object.entries(value)) {
      const field = `${pointer}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
      const message = problemWith(key);
      if (message) errors.push({ field: `${field}`, message });
      else pending.push([inner, field]);
    }
  }
  return errors;
}
