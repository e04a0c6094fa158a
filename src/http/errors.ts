/**
 * The one place error codes become HTTP statuses. Every error body is
 * `{ "error": { "code", "message" } }`; a 5xx means a bug or an unavailable database, never a
 * client mistake.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
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
  INVALID_PATTERN: 400,
  INVALID_FILTER: 400,
  INVALID_QUERY: 400,
  TOO_MANY_CHECKS: 400,
  TOO_MANY_MUTATIONS: 400,
  KEY_TOO_LARGE: 413,
  VALUE_TOO_LARGE: 413,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  // Another holder has the lock (RFC 4918's Locked); a lost lease is a conflict, as a stale token.
  LOCK_HELD: 423,
  LOCK_LOST: 409,
  CHECK_FAILED: 409,
  INVALID_TOKEN: 409,
  CONFLICT: 409,
  UNIQUE_VIOLATION: 409,
  ALREADY_EXISTS: 409,
  LIMIT_EXCEEDED: 429,
  SLOW_CONSUMER: 429,
  COMPACTED: 410,
  DATABASE_CLOSED: 503,
  UNAVAILABLE: 503,
  // The storage refused the write (a full disk, an I/O error): RFC 4918's Insufficient
  // Storage, so a client tells it apart from a bug, which stays a bare 500.
  STORAGE_ERROR: 507,
  UNSUPPORTED: 501,
};

/**
 * Headers some statuses carry: how to authenticate (RFC 9110 asks it of every 401), and when to
 * try again after a full server or a closing database.
 */
const HEADERS: Partial<Record<number, Record<string, string>>> = {
  401: { "WWW-Authenticate": 'Bearer realm="cellar"' },
  429: { "Retry-After": "1" },
  503: { "Retry-After": "1" },
};

export function statusOf(code: KvErrorCode): ContentfulStatusCode {
  return STATUS[code] ?? 500;
}

export function errorBody(
  code: KvErrorCode,
  message: string,
  details?: Readonly<Record<string, string>>,
) {
  return { error: { code, message: message.replace(/^\[cellar\] /, ""), ...details } };
}

/**
 * The status and body an error becomes: KvErrors keep their code, Hono's 4xx exceptions become
 * `PAYLOAD_TOO_LARGE`, `UNAUTHORIZED` or `INVALID_REQUEST`, anything else is a 500 and is logged.
 */
export function errorResponse(error: unknown): {
  status: ContentfulStatusCode;
  body: ReturnType<typeof errorBody>;
  headers?: Record<string, string>;
} {
  if (error instanceof KvError) {
    const status = statusOf(error.code);
    const headers = HEADERS[status];
    return {
      status,
      body: errorBody(error.code, error.message, error.details),
      ...(headers && { headers }),
    };
  }
  if (error instanceof HTTPException && error.status < 500) {
    const code =
      error.status === 413
        ? "PAYLOAD_TOO_LARGE"
        : error.status === 401
          ? "UNAUTHORIZED"
          : "INVALID_REQUEST";
    const status = statusOf(code);
    const headers = HEADERS[status];
    return {
      status,
      body: errorBody(code, error.message || "bad request"),
      ...(headers && { headers }),
    };
  }
  if (error instanceof SyntaxError) {
    return { status: 400, body: errorBody("INVALID_REQUEST", `malformed JSON: ${error.message}`) };
  }
  console.error(error);
  return { status: 500, body: errorBody("STORAGE_ERROR", "internal error") };
}

/**
 * What the Node adapter answers when it cannot make a web Request of what arrived (a malformed
 * Host, a target it refuses): a 400 with the usual error body, where it would send an empty one.
 */
export function adapterError(error: unknown): Response {
  const { status, body, headers } =
    error instanceof Error && error.name === "RequestError"
      ? {
          status: 400,
          body: errorBody(
            "INVALID_REQUEST",
            `the request's Host header or target is malformed (${error.message})`,
          ),
        }
      : errorResponse(error);
  return Response.json(body, { status, ...(headers && { headers }) });
}

/** Hono's `onError`, through `errorResponse`. */
export function onError(error: Error, c: Context) {
  const { status, body, headers } = errorResponse(error);
  return c.json(body, status, headers);
}
