import { describe, fail } from "../errors.js";

const PATTERN = /^[0-9a-f]{20}$/;

/**
 * A versionstamp is 10 bytes as 20 lowercase hex characters: an 8-byte commit version, strictly
 * increasing over every commit of a database, then 2 bytes of zero. Comparing two versionstamps
 * as strings orders their commits.
 */
export function formatVersionstamp(version: number): string {
  return `${version.toString(16).padStart(16, "0")}0000`;
}

export function parseVersionstamp(versionstamp: string): number {
  return Number.parseInt(versionstamp.slice(0, 16), 16);
}

/** Throws `INVALID_VERSIONSTAMP` unless `value` is `null` or 20 lowercase hex characters. */
export function assertVersionstamp(value: unknown): asserts value is string | null {
  if (value === null) return;
  if (typeof value !== "string" || !PATTERN.test(value)) {
    fail(
      "INVALID_VERSIONSTAMP",
      `a versionstamp is null or 20 lowercase hex characters, got ${describe(value)}`,
    );
  }
}

/** Greater than every versionstamp a database will reach: reading changes after it reads none. */
export const NEWEST_VERSIONSTAMP = "ffffffffffffffff0000";
