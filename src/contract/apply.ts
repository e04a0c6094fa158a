/**
 * The contract's mutation semantics, executable: given the stored entry of a key and one
 * mutation, the key's next state, its metadata and what goes to its history. Every driver calls
 * this inside its write transaction, so memory, SQLite and PostgreSQL agree to the byte; the
 * core's transactions call it to show a callback its own buffered writes.
 *
 * History: a key's current revision is its entry; drivers archive only the revisions it
 * replaces (and, under value-keeping prefixes, a tombstone for a delete). A key's history is
 * then its current revision followed by its archive, newest first, ordered by versionstamp.
 */
// node:crypto in Node; a JavaScript SHA-256 elsewhere (package.json "imports").
import { hash } from "#crypto";
import { encodeKey } from "../codec/key.js";
import { KvU64, wrappingAdd } from "../codec/u64.js";
import { decodeValue, encodeValue, type RawValue, rawBytes, rawSize } from "../codec/value.js";
import { KvError } from "../errors.js";
import type { EntryMeta, Mutation, RawRevision } from "./index.js";

/** A key's state as a driver stores it. */
export interface StoredEntry {
  readonly value: RawValue;
  readonly versionstamp: string;
  readonly expiresAt: number | null;
  readonly meta: EntryMeta;
}

export interface ApplyContext {
  readonly now: number;
  readonly versionstamp: string;
  readonly hash: (bytes: Uint8Array) => string;
  /** Refuse values larger than this that a mutation builds from the stored one (`append`). */
  readonly maxValueSize?: number;
}

export interface Applied {
  /** The key's next state; `null` when the key is now absent. */
  readonly entry: StoredEntry | null;
  /** Revisions to add to the key's archive, oldest first. */
  readonly archive: readonly RawRevision[];
  /** Forget the key's archive first (a delete outside value-keeping prefixes, or an expiry). */
  readonly dropHistory: boolean;
}

/** The revision an entry stands for, as archived when it is replaced. */
export function revisionOf(entry: StoredEntry, withValue: boolean): RawRevision {
  return {
    version: entry.meta.version,
    versionstamp: entry.versionstamp,
    timestamp: entry.meta.updatedAt,
    modifiedBy: entry.meta.modifiedBy,
    comment: entry.meta.comment,
    dataHash: entry.meta.dataHash,
    ...(withValue && { value: entry.value }),
  };
}

/**
 * The key a mutation writes in a commit with `versionstamp`: its own, or for a
 * `versionstampSuffix` set its own followed by the versionstamp as a string part.
 */
export function writtenKey(mutation: Mutation, versionstamp: string): Uint8Array {
  if (mutation.type !== "set" || !mutation.versionstampSuffix) return mutation.key;
  return encodeKey([versionstamp], mutation.key);
}

/** Whether a driver must load the stored value to apply `mutation` (else metadata suffices). */
export function needsValue(mutation: Mutation): boolean {
  return mutation.keepValue === true || (mutation.type !== "set" && mutation.type !== "delete");
}

const NOTHING: readonly RawRevision[] = [];

export const DEFAULT_HISTORY_DEPTH = 10;
export const DEFAULT_CHANGE_LOG_SIZE = 10_000;

export function sha256(bytes: Uint8Array): string {
  return hash("sha256", bytes, "hex");
}

/** True when an entry with this expiry is visible at `now`. */
export function isLive(expiresAt: number | null, now: number): boolean {
  return expiresAt === null || expiresAt > now;
}

/**
 * The next state of a key. `stored` is what the driver holds, expired or not: an expired entry
 * counts as absent, and its history is dropped with it, so a key rewritten after expiring starts
 * over at version 1 whether or not the sweeper got there first.
 */
export function applyMutation(
  stored: StoredEntry | null,
  mutation: Mutation,
  context: ApplyContext,
): Applied {
  const expired = stored !== null && !isLive(stored.expiresAt, context.now);
  const applied = applyToLive(expired ? null : stored, mutation, context);
  return expired && !applied.dropHistory ? { ...applied, dropHistory: true } : applied;
}

function applyToLive(
  current: StoredEntry | null,
  mutation: Mutation,
  context: ApplyContext,
): Applied {
  const { now, versionstamp } = context;
  const info = mutation.info;
  const keep = mutation.keepValue === true;
  if (mutation.type === "delete") {
    if (current === null) return { entry: null, archive: NOTHING, dropHistory: false };
    if (!keep) return { entry: null, archive: NOTHING, dropHistory: true };
    const tombstone: RawRevision = {
      version: current.meta.version + 1,
      versionstamp,
      timestamp: now,
      modifiedBy: info?.modifiedBy ?? null,
      comment: info?.comment ?? null,
      dataHash: null,
    };
    return { entry: null, archive: [revisionOf(current, true), tombstone], dropHistory: false };
  }
  const value = nextValue(current, mutation);
  if (context.maxValueSize !== undefined && rawSize(value) > context.maxValueSize) {
    throw new KvError(
      "VALUE_TOO_LARGE",
      `'${mutation.type}' would make a value of ${rawSize(value)} bytes; the limit is ${context.maxValueSize}`,
    );
  }
  const dataHash = context.hash(rawBytes(value));
  const meta: EntryMeta = {
    version: (current?.meta.version ?? 0) + 1,
    createdAt: current?.meta.createdAt ?? now,
    updatedAt: now,
    tags: info?.tags ? [...info.tags] : (current?.meta.tags ?? []),
    modifiedBy: info?.modifiedBy ?? null,
    comment: info?.comment ?? null,
    dataHash,
  };
  return {
    entry: { value, versionstamp, expiresAt: mutation.expiresAt, meta },
    archive: current === null ? NOTHING : [revisionOf(current, keep)],
    dropHistory: false,
  };
}

function nextValue(
  current: StoredEntry | null,
  mutation: Exclude<Mutation, { type: "delete" }>,
): RawValue {
  switch (mutation.type) {
    case "set":
      return mutation.value;
    case "sum":
    case "min":
    case "max": {
      const { operand } = mutation;
      if (typeof operand === "number") return encodeValue(numeric(mutation.type, current, operand));
      if (current === null) return encodeValue(new KvU64(operand));
      if (current.value.encoding !== "u64") {
        throw new KvError(
          "INVALID_MUTATION",
          `cannot apply '${mutation.type}' to a value that is not a KvU64 (it is ${current.value.encoding})`,
        );
      }
      const existing = KvU64.fromBytes(current.value.data).value;
      const result =
        mutation.type === "sum"
          ? wrappingAdd(existing, operand)
          : mutation.type === "min"
            ? minOf(existing, operand)
            : maxOf(existing, operand);
      return encodeValue(new KvU64(result));
    }
    case "append":
    case "prepend": {
      const items = decodeValue(mutation.value) as unknown[];
      if (current === null) return mutation.value;
      const existing = decodeValue(current.value);
      if (!Array.isArray(existing)) {
        throw new KvError(
          "INVALID_MUTATION",
          `cannot apply '${mutation.type}' to a value that is not an array`,
        );
      }
      // concat, unlike spreading, keeps the holes of sparse arrays as structured clone does.
      return encodeValue(
        mutation.type === "append" ? existing.concat(items) : items.concat(existing),
      );
    }
  }
}

/** `sum`, `min` or `max` of a plain number into the current value, which must be a number. */
function numeric(
  type: "sum" | "min" | "max",
  current: StoredEntry | null,
  operand: number,
): number {
  if (current === null) return operand;
  const existing = current.value.encoding === "u64" ? null : decodeValue(current.value);
  if (typeof existing !== "number") {
    throw new KvError(
      "INVALID_MUTATION",
      `cannot apply '${type}' of a number to a value that is not a number`,
    );
  }
  return type === "sum"
    ? existing + operand
    : type === "min"
      ? Math.min(existing, operand)
      : Math.max(existing, operand);
}

// Math.min and Math.max do not take bigints.
const minOf = (a: bigint, b: bigint): bigint => (a < b ? a : b);
const maxOf = (a: bigint, b: bigint): bigint => (a > b ? a : b);
