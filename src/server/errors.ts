/**
 * The one place error codes become HTTP statuses. Every error body is
 * `{ "error": { "code", "message" } }`; a 5xx means a bug or an unavailable database, never a
 * client mistake.
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { KvError, type KvErrorCode } from "../errors.js";

const STATUS: Record<KvErrorCode, ContentfulStatusCode> = {
  INVALID_KEY: 400,
  INVALID_VALUE: 400,
  INVALID_ARGUMENT: 400,
  INVALID_SELECTOR: 400,
  INVALID_CURSOR: 400,
  INVALID_VERSIONSTAMP: 400,
  INVALID_MUTATION: 400,
  INVALID_REQUEST: 400,
  TOO_MANY_CHECKS: 400,
  TOO_MANY_MUTATIONS: 400,
  KEY_TOO_LARGE: 413,
  VALUE_TOO_LARGE: 413,
  PAYLOAD_TOO_LARGE: 413,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CHECK_FAILED: 409,
  INVALID_TOKEN: 409,
  CONFLICT: 409,
  LIMIT_EXCEEDED: 429,
  DATABASE_CLOSED: 503,
  UNAVAILABLE: 503,
  STORAGE_ERROR: 500,
};

export function statusOf(code: KvErrorCode): ContentfulStatusCode {
  return STATUS[code] ?? 500;
}

export function errorBody(code: KvErrorCode, message: string) {
  return { error: { code, message: message.replace(/^\[cellar\] /, "") } };
}

/** Hono's `onError`: KvErrors keep their code; anything else is a 500 and is logged. */
export function onError(error: Error, c: Context) {
  if (error instanceof KvError)
    return c.json(errorBody(error.code, error.message), statusOf(error.code));
  if (error instanceof SyntaxError)
    return c.json(errorBody("INVALID_REQUEST", `malformed JSON: ${error.message}`), 400);
  console.error(error);
  return c.json(errorBody("STORAGE_ERROR", "internal error"), 500);
}
