import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable } from '../../store/errors';
import { isTemporalUnavailable } from '../dependency-errors';
import { PROBLEM_CONTENT_TYPE, ProblemError, problems, type FieldError } from '../problems';

const PART_NAMES: Record<string, string> = {
  body: 'The request body',
  querystring: 'The query string',
  params: 'The path',
  headers: 'The headers',
};

/** Fastify's validation errors (from the TypeBox compiler) as one entry per bad field. */
function fieldErrors(validation: NonNullable<FastifyError['validation']>): FieldError[] {
  const seen = new Set<string>();
  const errors: FieldError[] = [];
  for (const issue of validation) {
    // The first message for a field is the most telling ("Expected required property"
    // rather than the "Expected string" that follows it).
    if (seen.has(issue.instancePath)) continue;
    seen.add(issue.instancePath);
    errors.push({ field: issue.instancePath, message: issue.message ?? 'is invalid' });
  }
  return errors;
}

/** Every failure, ours or the framework's or a dependency's, as a problem. */
export function toProblem(error: unknown, bodyLimit: number): ProblemError {
  if (error instanceof ProblemError) return error;
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation) {
    const part = PART_NAMES[fastifyError.validationContext ?? 'body'] ?? 'The request';
    return problems.validation(fieldErrors(fastifyError.validation), `${part} is invalid; see errors.`);
  }
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problems.payloadTooLarge(bodyLimit);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problems.unsupportedMediaType();
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problems.malformedJson();
  }
  if (isDatabaseUnavailable(error)) return problems.unavailable('The database');
  if (isTemporalUnavailable(error)) return problems.unavailable('The workflow service');
  // Other 4xx from Fastify (bad content-length, bad URL encoding) carry safe messages.
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return new ProblemError(
      status,
      'bad-request',
      STATUS_CODES[status] ?? 'Bad request',
      fastifyError.message ?? '',
    );
  }
  return problems.internal();
}

/** The API's one error handler and its not-found handler, both answering problem+json. */
export function answerWithProblems(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((error, request, reply) => {
    const problem = toProblem(error, bodyLimit);
    if (problem.status >= 500) request.log.error({ err: error, problem: problem.type }, 'request failed');
    else request.log.info({ problem: problem.type, status: problem.status }, problem.title);
    return reply
      .code(problem.status)
      .headers(problem.headers)
      .type(PROBLEM_CONTENT_TYPE)
      .send(problem.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const problem = problems.notFound(`No route ${request.method} ${request.url.split('?')[0]}.`);
    return reply.code(404).type(PROBLEM_CONTENT_TYPE).send(problem.toBody());
  });
}

/**
 * Fastify's `frameworkErrors` option: the router's own refusals (a malformed %-escape, a
 * path parameter over maxParamLength) answer with a problem too, not Fastify's default JSON.
 */
export const answerFrameworkErrors =
  (bodyLimit: number) =>
  (error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void => {
    const problem = toProblem(error, bodyLimit);
    void reply
      .code(problem.status)
      .headers(problem.headers)
      .type(PROBLEM_CONTENT_TYPE)
      .send(problem.toBody());
  };
