// Maps anything thrown in a route to Quarry's error body: QuarryErrors as they are, Fastify's
// own request errors to their Quarry codes, Redis faults (unreachable, refusing, frozen) to 503;
// everything else is a real fault (500, logged).
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, isQuarryError, QuarryError } from '../shared/errors.ts';
import { asRedisError, redisFailureCode } from '../shared/redis-errors.ts';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'QUARRY_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'QUARRY_ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'QUARRY_ERR_BODY_INVALID_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'QUARRY_ERR_BODY_INVALID_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'QUARRY_ERR_VALIDATION',
};

export function toQuarryError(error: unknown): QuarryError | undefined {
  if (isQuarryError(error)) return error;
  const fastifyError = error as FastifyError;
  const mapped = typeof fastifyError?.code === 'string' ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (mapped) return new QuarryError(mapped, fastifyError.message, { cause: error });
  if (fastifyError?.validation) {
    const field = fastifyError.validation[0]?.instancePath?.replace(/^\//, '').replaceAll('/', '.');
    return new QuarryError(
      'QUARRY_ERR_VALIDATION',
      fastifyError.message,
      field ? { field, cause: error } : { cause: error },
    );
  }
  if (
    typeof fastifyError?.statusCode === 'number' &&
    fastifyError.statusCode >= 400 &&
    fastifyError.statusCode < 500
  ) {
    return new QuarryError('QUARRY_ERR_VALIDATION', fastifyError.message, { cause: error });
  }
  // Unreachable, refusing (OOM, READONLY, …) or frozen (command timeout): a 503, never a 500.
  return asRedisError(error);
}

/**
 * Answers with Quarry's error body. Logging follows what the error says about the system: a 4xx is
 * an expected outcome (bad input, not found, cancelled, rate limited) told at `debug` without a
 * stack — the access line already counts it, with its code; a 5xx is a fault, logged at `error`
 * with its stack (the cause's too).
 */
export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const quarry = toQuarryError(error);
  if (quarry === undefined) {
    reply.errorCode = 'QUARRY_ERR_INTERNAL';
    request.log.error({ err: error, url: request.url }, 'unexpected error');
    return reply.code(500).send({
      error: {
        code: 'QUARRY_ERR_INTERNAL',
        message: 'an unexpected error occurred; the log has the details',
      },
    });
  }
  reply.errorCode = quarry.code;
  if (quarry.status >= 500) request.log.error({ err: error, code: quarry.code }, 'request failed');
  else
    request.log.debug({ code: quarry.code, field: quarry.field, reason: quarry.message }, 'request refused');
  if (quarry.retryAfterS !== undefined) reply.header('retry-after', String(quarry.retryAfterS));
  else if (redisFailureCode(quarry) !== undefined) reply.header('retry-after', '1');
  return reply.code(quarry.status).send(quarry.toJSON());
}
