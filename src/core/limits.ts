import { describe, fail } from "../errors.js";

/** Size and count limits. Every one is configurable through `openKv(…, { limits })`. */
export interface KvLimits {
  /** Encoded key bytes (default 2048). */
  readonly maxKeySize: number;
  /** Encoded value bytes (default 64 KiB; up to 256 MiB). */
  readonly maxValueSize: number;
  /** Checks in one atomic operation (default 100). */
  readonly maxChecks: number;
  /** Mutations in one atomic operation (default 1000). */
  readonly maxMutations: number;
  /** Keys in one `getMany` (default 1000). */
  readonly maxReadKeys: number;
}

export const DEFAULT_LIMITS: KvLimits = {
  maxKeySize: 2048,
  maxValueSize: 64 * 1024,
  maxChecks: 100,
  maxMutations: 1000,
  maxReadKeys: 1000,
};

const CEILINGS: KvLimits = {
  maxKeySize: 64 * 1024,
  maxValueSize: 256 * 1024 * 1024,
  maxChecks: 10_000,
  maxMutations: 100_000,
  maxReadKeys: 100_000,
};

export function resolveLimits(overrides: Partial<KvLimits> = {}): KvLimits {
  const limits = { ...DEFAULT_LIMITS, ...overrides };
  for (const name of Object.keys(DEFAULT_LIMITS) as (keyof KvLimits)[]) {
    const value = limits[name];
    if (!Number.isSafeInteger(value) || value < 1 || value > CEILINGS[name]) {
      fail(
        "INVALID_ARGUMENT",
        `limits.${name} must be an integer in [1, ${CEILINGS[name]}], got ${describe(value)}`,
      );
    }
  }
  return limits;
}

/** Returns the expiry instant for `expireIn`, or null. Throws `INVALID_ARGUMENT` for bad input. */
export function expiryFrom(expireIn: unknown, now: number): number | null {
  if (expireIn === undefined) return null;
  if (typeof expireIn !== "number" || !Number.isSafeInteger(expireIn) || expireIn <= 0) {
    fail(
      "INVALID_ARGUMENT",
      `expireIn must be a positive integer of milliseconds, got ${describe(expireIn)}`,
    );
  }
  if (now + expireIn > MAX_DATE) {
    fail(
      "INVALID_ARGUMENT",
      `expireIn ${expireIn} puts the expiry past the latest time a Date can hold (${MAX_DATE} ms)`,
    );
  }
  return now + expireIn;
}

/** The largest millisecond timestamp a `Date` can hold. */
const MAX_DATE = 8.64e15;

export function assertPositiveInteger(
  name: string,
  value: unknown,
  max = Number.MAX_SAFE_INTEGER,
): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > max) {
    fail("INVALID_ARGUMENT", `${name} must be an integer in [1, ${max}], got ${describe(value)}`);
  }
}

/** The options a write of a value takes: its expiry and what the writer records. */
export const SET_OPTIONS = ["expireIn", "tags", "modifiedBy", "comment"] as const;
const WRITE_INFO = ["tags", "modifiedBy", "comment"] as const;

/**
 * Throws `INVALID_ARGUMENT` naming any field of `options` not in `known`: a misspelt option
 * (`expirein`) must fail, not be dropped in silence.
 */
export function assertOptions(what: string, options: unknown, known: readonly string[]): void {
  if (options === undefined) return;
  if (typeof options !== "object" || options === null || Array.isArray(options))
    fail("INVALID_ARGUMENT", `${what} options are an object, got ${describe(options)}`);
  for (const name in options) {
    if (!known.includes(name)) {
      fail(
        "INVALID_ARGUMENT",
        `${what} takes no option ${JSON.stringify(name)}; it takes ${known.join(", ")}`,
      );
    }
  }
}

/**
 * Validates the metadata a writer passes along (with `SET_OPTIONS` as `known` for a write of a
 * value, whose `expireIn` the caller reads); returns it without unrelated fields.
 */
export function writeInfoFrom(
  options: { tags?: unknown; modifiedBy?: unknown; comment?: unknown } = {},
  known: readonly string[] = WRITE_INFO,
): { tags?: string[]; modifiedBy?: string; comment?: string } | undefined {
  assertOptions("a write", options, known);
  const { tags, modifiedBy, comment } = options;
  if (tags === undefined && modifiedBy === undefined && comment === undefined) return undefined;
  const info: { tags?: string[]; modifiedBy?: string; comment?: string } = {};
  if (tags !== undefined) {
    if (
      !Array.isArray(tags) ||
      tags.length > 64 ||
      !tags.every((t) => typeof t === "string" && t.length <= 256)
    ) {
      fail(
        "INVALID_ARGUMENT",
        "tags must be an array of at most 64 strings of at most 256 characters",
      );
    }
    info.tags = [...tags];
  }
  if (modifiedBy !== undefined) {
    if (typeof modifiedBy !== "string" || modifiedBy.length > 256) {
      fail(
        "INVALID_ARGUMENT",
        `modifiedBy must be a string of at most 256 characters, got ${describe(modifiedBy)}`,
      );
    }
    info.modifiedBy = modifiedBy;
  }
  if (comment !== undefined) {
    if (typeof comment !== "string" || comment.length > 4096) {
      fail(
        "INVALID_ARGUMENT",
        `comment must be a string of at most 4096 characters, got ${describe(comment)}`,
      );
    }
    info.comment = comment;
  }
  return info;
}
