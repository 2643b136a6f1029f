// Classifies what ioredis throws into Quarry's Redis codes, in one place, so callers branch on
// `code` and never on message text: a server that cannot be reached is
// QUARRY_ERR_REDIS_UNAVAILABLE; one that answers with a refusal (its reply's first word, the
// error prefix Redis defines) or does not answer within the command timeout is
// QUARRY_ERR_REDIS_REFUSED. Both are 503s with Retry-After and are retried by workers.
import { isQuarryError, QuarryError } from './errors.ts';

/**
 * Reply prefixes that mean "this server cannot take the command now", not "the command is
 * wrong": out of memory (noeviction at maxmemory), a replica or a failed-over primary, a failing
 * RDB/AOF save, a dataset still loading, too few replicas for min-replicas-to-write, a busy
 * script, a cluster or sentinel setup without a reachable primary. EXECABORT is how MULTI
 * reports any of these when it happened while queueing.
 */
const REFUSAL_PREFIXES = new Set([
  'OOM',
  'READONLY',
  'MISCONF',
  'EXECABORT',
  'LOADING',
  'NOREPLICAS',
  'BUSY',
  'MASTERDOWN',
  'CLUSTERDOWN',
  'TRYAGAIN',
]);

// ioredis' own errors carry no code; their messages are fixed strings of the library.
const TIMEOUT_MESSAGE = 'Command timed out';
// A reply ioredis cannot parse: the server at the URL does not speak Redis' protocol (the port
// of a Redis that went away, taken by another service). ioredis appends "Please report this."
const PROTOCOL_MESSAGES = /^(Unknown RESP type|Protocol error)|Please report this\.$/;
const CLOSED_MESSAGES = /^(Connection is closed|Stream isn't writeable|.*enableOfflineQueue)/;
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
]);

export type RedisFailure = 'QUARRY_ERR_REDIS_UNAVAILABLE' | 'QUARRY_ERR_REDIS_REFUSED';

/**
 * The Redis code an error stands for, or undefined when it is not a Redis availability fault.
 * `connected: false` says the connection was down: a command that timed out then waited in
 * the offline queue for a server that is away, not for one that is frozen.
 */
export function redisFailureCode(error: unknown, connected = true): RedisFailure | undefined {
  if (!(error instanceof Error)) return undefined;
  if (isQuarryError(error)) {
    return error.code === 'QUARRY_ERR_REDIS_UNAVAILABLE' || error.code === 'QUARRY_ERR_REDIS_REFUSED'
      ? error.code
      : undefined;
  }
  if (error.name === 'ReplyError') {
    const prefix = error.message.split(' ', 1)[0] ?? '';
    return REFUSAL_PREFIXES.has(prefix) ? 'QUARRY_ERR_REDIS_REFUSED' : undefined;
  }
  if (error.name === 'MaxRetriesPerRequestError') return 'QUARRY_ERR_REDIS_UNAVAILABLE';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return 'QUARRY_ERR_REDIS_UNAVAILABLE';
  if (error.message === TIMEOUT_MESSAGE) {
    return connected ? 'QUARRY_ERR_REDIS_REFUSED' : 'QUARRY_ERR_REDIS_UNAVAILABLE';
  }
  if (CLOSED_MESSAGES.test(error.message)) return 'QUARRY_ERR_REDIS_UNAVAILABLE';
  if (PROTOCOL_MESSAGES.test(error.message)) return 'QUARRY_ERR_REDIS_UNAVAILABLE';
  return undefined;
}

/** The QuarryError (503, Retry-After 1 s) for a Redis fault; undefined for anything else. */
export function asRedisError(error: unknown, connected = true): QuarryError | undefined {
  const code = redisFailureCode(error, connected);
  if (code === undefined) return undefined;
  if (isQuarryError(error)) return error;
  const message =
    code === 'QUARRY_ERR_REDIS_REFUSED'
      ? `a Redis server refused the command or did not answer in time: ${(error as Error).message}`
      : PROTOCOL_MESSAGES.test((error as Error).message)
        ? `a server Quarry reaches as Redis does not speak Redis' protocol (check the Redis URLs): ${(error as Error).message}`
        : 'a Redis server Quarry depends on is not reachable';
  return new QuarryError(code, message, { cause: error, retryAfterS: 1 });
}

/** Rethrows a Redis fault as its QuarryError, anything else as it is (for `.catch`). */
export function rethrowRedis(error: unknown, connected = true): never {
  throw asRedisError(error, connected) ?? error;
}
