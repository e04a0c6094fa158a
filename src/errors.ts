/**
 * Stable error codes. A code never changes meaning once released; the HTTP layer maps each code
 * to one status in one place.
 */
export type KvErrorCode =
  | "INVALID_KEY"
  | "KEY_TOO_LARGE"
  | "INVALID_VALUE"
  | "VALUE_TOO_LARGE"
  | "INVALID_ARGUMENT"
  | "INVALID_SELECTOR"
  | "INVALID_CURSOR"
  | "INVALID_VERSIONSTAMP"
  | "INVALID_MUTATION"
  | "TOO_MANY_CHECKS"
  | "TOO_MANY_MUTATIONS"
  | "CONFLICT"
  | "LOCK_HELD"
  | "LOCK_LOST"
  | "DATABASE_CLOSED"
  | "STORAGE_ERROR"
  | "UNSUPPORTED"
  | "CHECK_FAILED"
  | "INVALID_TOKEN"
  | "INVALID_REQUEST"
  | "PAYLOAD_TOO_LARGE"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "LIMIT_EXCEEDED"
  | "UNAVAILABLE"
  | "INVALID_PATTERN"
  | "COMPACTED"
  | "SLOW_CONSUMER"
  | "INVALID_FILTER"
  | "INVALID_QUERY"
  | "UNIQUE_VIOLATION"
  | "ALREADY_EXISTS";

/**
 * The one error class Cellar throws for its own reasons. Catch it and switch on `code`.
 *
 * @example
 * try {
 *   await kv.set([{}], 1);
 * } catch (error) {
 *   if (error instanceof KvError && error.code === "INVALID_KEY") console.log(error.message);
 * }
 */
export class KvError extends Error {
  override readonly name = "KvError";
  readonly code: KvErrorCode;
  /**
   * Facts a caller acts on, by name: for `COMPACTED`, `oldest` (the oldest versionstamp a
   * subscription can still resume after); for `SLOW_CONSUMER`, `resume` (where to resume).
   */
  readonly details?: Readonly<Record<string, string>>;

  constructor(
    code: KvErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Readonly<Record<string, string>> },
  ) {
    super(`[cellar] ${message}`, options);
    this.code = code;
    if (options?.details) this.details = options.details;
  }
}

/** An error's message without the `[cellar] ` mark, to quote it inside another message or body. */
export function bareMessage(error: Error): string {
  return error.message.replace(/^\[cellar\] /, "");
}

/**
 * A database URL fit to print: its password replaced by `***`. A string that is not a URL (a
 * file path, `:memory:`) is returned as it is, since it holds no password.
 *
 * @example
 * redactUrl("postgres://app:secret@db:5432/prod"); // "postgres://app:***@db:5432/prod"
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? "(unparsable URL)" : url;
  }
  if (!parsed.password) return url;
  parsed.password = "***";
  return parsed.toString();
}

/**
 * Whether `error` says the storage is failing for now (a full disk, a lost PostgreSQL server)
 * rather than that the request was wrong: long-lived readers try again later on such errors.
 */
export function isOutage(error: unknown): error is KvError {
  return (
    error instanceof KvError && (error.code === "STORAGE_ERROR" || error.code === "UNAVAILABLE")
  );
}

/** Shorthand for throwing inside validation code. */
export function fail(code: KvErrorCode, message: string): never {
  throw new KvError(code, message);
}

/** Describes a value for an error message without dumping large payloads. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "symbol") return value.toString();
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  }
  if (typeof value === "object") {
    const name = Object.getPrototypeOf(value)?.constructor?.name;
    return name ? `an object (${name})` : "an object";
  }
  return String(value);
}
