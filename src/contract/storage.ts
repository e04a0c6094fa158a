/**
 * The storage contract: what every engine must do for Cellar, in bytes.
 *
 * Keys are encoded keys (see `codec/key.ts`) compared as unsigned bytes; values are
 * {@link RawValue}s. A driver knows nothing of namespaces, selectors, cursors, watch streams or
 * retries: the core builds those from these few operations, and checks every limit before a
 * write reaches the driver.
 *
 * Time is an input, never read by the driver: every read and write carries `now`
 * (milliseconds since the epoch) from the core's clock, and an entry whose `expiresAt <= now`
 * is absent for that operation whether or not it has been swept yet.
 */
import type { RawValue } from "../codec/value.js";
import type { Filter } from "./filter.js";
import type { KvIndexHost } from "./indexes.js";
import type { Enqueue, EnqueueResult } from "./queues.js";
import type { SearchDoc } from "./search.js";

/** A half-open byte range `[start, end)`. */
export interface KeyRange {
  readonly start: Uint8Array;
  readonly end: Uint8Array;
}

/** A range to read: at most `limit` live entries, ascending unless `reverse`. */
export interface ReadRange extends KeyRange {
  readonly limit: number;
  readonly reverse: boolean;
  /**
   * Only entries whose decoded value matches (see `filter.ts`: exactly what `matchesFilter`
   * selects); `limit` counts matching entries, so a page is short only at the range's end.
   */
  readonly where?: Filter;
}

export interface ReadOptions {
  readonly now: number;
  /** Include {@link EntryMeta} in each entry. Without it drivers skip the metadata columns. */
  readonly metadata?: boolean;
}

/** Per-entry metadata, maintained by the driver on every write. Times are epoch milliseconds. */
export interface EntryMeta {
  /** 1 for the first write of a key, then +1 per write; restarts at 1 after a delete. */
  readonly version: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly tags: readonly string[];
  readonly modifiedBy: string | null;
  readonly comment: string | null;
  /** Hex SHA-256 (by default) of the stored value: its encoding tag, then its bytes. */
  readonly dataHash: string;
}

export interface RawEntry {
  readonly key: Uint8Array;
  readonly value: RawValue;
  readonly versionstamp: string;
  readonly expiresAt: number | null;
  readonly meta?: EntryMeta;
}

/** One past state of a key, kept in its bounded revision history. */
export interface RawRevision {
  readonly version: number;
  readonly versionstamp: string;
  readonly timestamp: number;
  readonly modifiedBy: string | null;
  readonly comment: string | null;
  /** `null` marks a deletion. */
  readonly dataHash: string | null;
  /** Present only for keys whose history keeps values. */
  readonly value?: RawValue;
}

/** What the writer says about a write; recorded in metadata and history. */
export interface WriteInfo {
  /** Replaces the entry's tags; omitted keeps the previous tags. */
  readonly tags?: readonly string[];
  readonly modifiedBy?: string;
  readonly comment?: string;
}

interface MutationBase {
  readonly key: Uint8Array;
  readonly info?: WriteInfo;
  /** Keep the written value in the key's revision history. */
  readonly keepValue?: boolean;
}

/**
 * One mutation of an atomic write.
 *
 * - `set` stores `value`.
 * - `delete` removes the key (no error if absent).
 * - `sum`/`min`/`max` combine a `bigint` operand with the current `u64` value (wrap-around for
 *   `sum`), or a `number` operand with a current number (IEEE 754, as JavaScript adds); an
 *   absent key takes the operand. A current value of another kind fails the
 *   whole write with `INVALID_MUTATION`.
 * - `append`/`prepend` concatenate the items of `value` (an encoded array) after/before the
 *   current array; an absent key takes the items. A current non-array fails with
 *   `INVALID_MUTATION`.
 *
 * `expiresAt` (epoch ms, or null for never) applies to the resulting entry.
 */
export type Mutation =
  | (MutationBase & {
      readonly type: "set" | "append" | "prepend";
      readonly value: RawValue;
      readonly expiresAt: number | null;
      /**
       * `set` only: the key written is `key` followed by the commit's own versionstamp as a
       * string part (Deno KV's versionstamped keys), so it sorts in commit order.
       */
      readonly versionstampSuffix?: boolean;
    })
  | (MutationBase & {
      readonly type: "sum" | "min" | "max";
      /** A bigint in [0, 2^64) for a `KvU64`; a finite number for a plain number. */
      readonly operand: bigint | number;
      readonly expiresAt: number | null;
    })
  | (MutationBase & { readonly type: "delete" });

/**
 * A versionstamp precondition: the key's current versionstamp must equal `versionstamp`, or the
 * key must be absent (or expired) when it is `null`.
 */
export interface Check {
  readonly key: Uint8Array;
  readonly versionstamp: string | null;
}

/**
 * An all-or-nothing write. The driver evaluates every check and applies every mutation, in
 * order, inside one storage transaction: if any check fails nothing is written and the result
 * is `null`; if a mutation throws nothing is written and the error propagates.
 */
/**
 * A range precondition: `[start, end)` must hold exactly `count` live entries. With a
 * {@link Check} on each key a read of the range returned, it fails the write if any key in the
 * range was written, deleted, added or expired since that read: a transaction's range read.
 */
export interface RangeCheck {
  readonly start: Uint8Array;
  readonly end: Uint8Array;
  readonly count: number;
}

export interface AtomicWrite {
  readonly checks: readonly Check[];
  /** Evaluated with `checks`, inside the same storage transaction; a failure is a failed check. */
  readonly rangeChecks?: readonly RangeCheck[];
  readonly mutations: readonly Mutation[];
  /** Queue messages committed with the mutations, or not at all. */
  readonly enqueues?: readonly Enqueue[];
  /** Search documents of the keys written, applied after the mutations (see `search.ts`). */
  readonly searchDocs?: readonly SearchDoc[];
  readonly now: number;
}

export interface CommitResult {
  /** Strictly greater than the versionstamp of every earlier commit of this database. */
  readonly versionstamp: string;
  /** One per enqueue, in order: the message's id, or the id of the message it duplicated. */
  readonly enqueued?: readonly EnqueueResult[];
}

/** Reads and atomic writes of entries, their metadata and history. Every driver has it. */
export interface KvStorage {
  /** Reads every range from one consistent snapshot. Result `i` holds range `i`'s entries. */
  snapshotRead(ranges: readonly ReadRange[], options: ReadOptions): Promise<RawEntry[][]>;

  /**
   * The same read, answered before returning: offered by drivers whose reads complete in this
   * process (memory, SQLite), so a point read costs no extra promise. Same results and errors
   * as {@link snapshotRead}.
   */
  snapshotReadSync?(ranges: readonly ReadRange[], options: ReadOptions): RawEntry[][];

  /** Number of live entries in the range (that match `range.where`, when given). */
  count(range: KeyRange & { readonly where?: Filter }, options: ReadOptions): Promise<number>;

  /** See {@link AtomicWrite}. Resolves once the write is as durable as the driver promises. */
  atomicWrite(write: AtomicWrite): Promise<CommitResult | null>;

  /**
   * Revisions of `key`, newest first, at most `limit`: its live entry's revision (with its value
   * when `withValues`), then the revisions it replaced (with values where they were kept).
   */
  history(
    key: Uint8Array,
    options: { limit: number; now: number; withValues: boolean },
  ): Promise<RawRevision[]>;

  /** Deletes up to `limit` entries with `expiresAt <= now`; resolves to how many it deleted. */
  deleteExpired(now: number, limit: number): Promise<number>;

  /**
   * Removes everything stored under `prefix`, in one storage transaction: every entry whose key
   * starts with `prefix` (expired or not) and the revision history of every such key (deleted
   * keys' included); in a driver with queues, also every message (ready, leased or dead) and
   * dedup key of each queue whose name starts with `prefix`. The removed entries' keys are
   * reported to the change feed as one commit, under a new versionstamp; nothing is reported
   * when no entry was stored. Resolves to the number of live entries (as of `now`) removed.
   * `prefix` has a byte below 0xff (every namespace prefix does); another is `INVALID_ARGUMENT`.
   */
  purge(prefix: Uint8Array, now: number): Promise<number>;

  /**
   * Calls `listener` with the number of jobs (writes, queue transitions, sweeps) of each group
   * the driver commits in one transaction, as the group starts; for metrics. Offered by drivers
   * that group concurrent writes (SQLite, PostgreSQL). Returns the function that removes it.
   */
  onCommitGroup?(listener: (size: number) => void): () => void;

  /**
   * Set by a driver that is a client of another Cellar: that Cellar keeps the indexes and search
   * indexes, so the core sends index calls here and adds no index work to its writes.
   */
  readonly indexHost?: KvIndexHost;

  /** Finishes pending writes, then releases the storage. Later calls fail with `DATABASE_CLOSED`. */
  close(): Promise<void>;
}

/** Settings every storage driver takes from `openKv`. */
export interface DriverOptions {
  /** Revisions kept per key (default 10). */
  readonly historyDepth?: number;
  /** Commits kept in the change log (default 10,000). */
  readonly changeLogSize?: number;
  /**
   * Milliseconds of commits the change log keeps on top of `changeLogSize`: a commit is pruned
   * only once it is both more than `changeLogSize` commits old and older than this (default 0).
   */
  readonly changeLogAge?: number;
  /** Largest stored value in bytes an `append`/`prepend` may produce (default: no limit). */
  readonly maxValueSize?: number;
  /** Hashes stored values for `dataHash` (default SHA-256, hex). */
  readonly hash?: (bytes: Uint8Array) => string;
}
