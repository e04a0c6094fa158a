/**
 * The driver contract: what a storage engine must do for Cellar, in bytes.
 *
 * Keys are encoded keys (see `codec/key.ts`) compared as unsigned bytes; values are
 * {@link RawValue}s. A driver knows nothing of namespaces, selectors, cursors, watch streams or
 * retries: the core builds those from these few operations. Every driver passes the shared
 * conformance suite in `test/conformance/`.
 *
 * Time is an input, never read by the driver: every read and write carries `now`
 * (milliseconds since the epoch) from the core's clock, and an entry whose `expiresAt <= now`
 * is absent for that operation whether or not it has been swept yet.
 */
import type { RawValue } from "../codec/value.js";

/** A half-open byte range `[start, end)`. */
export interface KeyRange {
  readonly start: Uint8Array;
  readonly end: Uint8Array;
}

/** A range to read: at most `limit` live entries, ascending unless `reverse`. */
export interface ReadRange extends KeyRange {
  readonly limit: number;
  readonly reverse: boolean;
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
 * - `sum`/`min`/`max` combine a `u64` operand with the current `u64` value (wrap-around for
 *   `sum`); an absent key takes the operand. A current value of another encoding fails the
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
      readonly operand: bigint;
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
export interface AtomicWrite {
  readonly checks: readonly Check[];
  readonly mutations: readonly Mutation[];
  /** Queue messages committed with the mutations, or not at all. */
  readonly enqueues?: readonly Enqueue[];
  readonly now: number;
}

export interface CommitResult {
  /** Strictly greater than the versionstamp of every earlier commit of this database. */
  readonly versionstamp: string;
  /** One per enqueue, in order: the message's id, or the id of the message it duplicated. */
  readonly enqueued?: readonly EnqueueResult[];
}

/**
 * A message to put on a queue. Queues are named by bytes (the core uses the namespace prefix
 * and the encoded queue name), so namespaces isolate queues as they isolate keys.
 */
export interface Enqueue {
  readonly queue: Uint8Array;
  /** Unique id chosen by the caller (a UUIDv7). */
  readonly id: string;
  readonly value: RawValue;
  /** Not delivered before this instant (epoch ms). */
  readonly availableAt: number;
  /** Higher is delivered first; equal priorities are delivered in enqueue order. */
  readonly priority: number;
  /** Delay in ms before each retry; its length is the number of retries, so a message is
   *  delivered at most `backoffSchedule.length + 1` times before it is dead-lettered. */
  readonly backoffSchedule: readonly number[];
  /** Keys that receive the value, atomically with the dead-lettering, if it is never delivered. */
  readonly keysIfUndelivered: readonly Uint8Array[];
  /** While a message with this key enqueued on this queue is younger than `until`, this one is dropped. */
  readonly dedup?: { readonly key: string; readonly until: number };
}

export interface EnqueueResult {
  readonly id: string;
  /** True when an earlier message with the same dedup key made this enqueue a no-op. */
  readonly deduplicated: boolean;
}

/** A message leased to one consumer until `lockedUntil`, settled with its `token`. */
export interface LeasedMessage {
  readonly id: string;
  readonly value: RawValue;
  readonly priority: number;
  /** Deliveries so far, this one included. */
  readonly attempts: number;
  readonly maxAttempts: number;
  readonly enqueuedAt: number;
  readonly token: string;
  readonly lockedUntil: number;
}

export interface DeadMessage {
  readonly id: string;
  readonly value: RawValue;
  readonly priority: number;
  readonly attempts: number;
  readonly enqueuedAt: number;
  readonly failedAt: number;
  /** The last failure: a handler's message, or "lock expired". */
  readonly error: string | null;
}

export interface QueueStats {
  /** Ready for delivery now. */
  readonly pending: number;
  /** Waiting for their delay or a retry's backoff. */
  readonly delayed: number;
  /** Leased to a consumer. */
  readonly inFlight: number;
  /** In the dead-letter queue. */
  readonly dead: number;
  /** The earliest instant a delayed message becomes ready or a lease expires, if any. */
  readonly nextAt: number | null;
}

/**
 * How a consumer settles a leased message:
 * - `ack`: done, the message is deleted;
 * - `nack`: failed; retried after `delay` (default: its backoff schedule) or dead-lettered when
 *   its deliveries are used up;
 * - `extend`: keep the lease for `ms` more from now.
 */
export type Settlement =
  | { readonly type: "ack" }
  | { readonly type: "nack"; readonly delay?: number; readonly error?: string }
  | { readonly type: "extend"; readonly ms: number };

/** Keys a commit (or the expiry sweeper) changed, reported after it is durable. */
export interface ChangeEvent {
  readonly versionstamp: string;
  readonly keys: readonly Uint8Array[];
  /** Queues that got a message ready for delivery (enqueued, retried or requeued). */
  readonly queues?: readonly Uint8Array[];
  /** Changes may have been missed (a remote feed fell behind the log): every watcher re-reads. */
  readonly reset?: boolean;
}

/** A page of the change log: commits after a versionstamp, oldest first. */
export interface ChangePage {
  readonly changes: ChangeEvent[];
  /**
   * True when commits after the requested versionstamp were already pruned from the log: the
   * reader missed changes and must re-read the state it cares about.
   */
  readonly truncated: boolean;
  /** The versionstamp of the latest commit of the database when the page was read. */
  readonly head: string;
}

export interface KvDriver {
  /** Reads every range from one consistent snapshot. Result `i` holds range `i`'s entries. */
  snapshotRead(ranges: readonly ReadRange[], options: ReadOptions): Promise<RawEntry[][]>;

  /**
   * The same read, answered before returning: offered by drivers whose reads complete in this
   * process (memory, SQLite), so a point read costs no extra promise. Same results and errors
   * as {@link snapshotRead}.
   */
  snapshotReadSync?(ranges: readonly ReadRange[], options: ReadOptions): RawEntry[][];

  /** Number of live entries in the range. */
  count(range: KeyRange, options: ReadOptions): Promise<number>;

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

  /** Calls `listener` after every commit that changed keys. Returns the unsubscribe function. */
  onChange(listener: (change: ChangeEvent) => void): () => void;

  /**
   * Commits with a versionstamp greater than `after`, oldest first, at most `limit` of them.
   * The log keeps the most recent commits (at least the last 10,000); older ones are pruned.
   */
  readChanges(after: string, limit: number): Promise<ChangePage>;

  /**
   * Leases up to `limit` ready messages of `queue` for `visibilityTimeout` ms, highest priority
   * first, then oldest. A lease that expired first counts as a failed delivery: the message is
   * retried on its schedule, or dead-lettered when its deliveries are used up. Two callers never
   * hold the same message at once.
   */
  dequeue(
    queue: Uint8Array,
    options: { now: number; visibilityTimeout: number; limit: number },
  ): Promise<LeasedMessage[]>;

  /** Settles a leased message. False when `token` is unknown or its lease already expired. */
  settle(queue: Uint8Array, token: string, settlement: Settlement, now: number): Promise<boolean>;

  queueStats(queue: Uint8Array, now: number): Promise<QueueStats>;

  /** Dead messages, oldest failure first, after the message `after` (an id) when given. */
  listDead(queue: Uint8Array, options: { limit: number; after?: string }): Promise<DeadMessage[]>;

  getDead(queue: Uint8Array, id: string): Promise<DeadMessage | null>;

  /** Puts dead messages (all when `ids` is null) back on the queue with fresh deliveries. */
  requeueDead(queue: Uint8Array, ids: readonly string[] | null, now: number): Promise<number>;

  /** Deletes dead messages (all when `ids` is null). */
  deleteDead(queue: Uint8Array, ids: readonly string[] | null): Promise<number>;

  /** Finishes pending writes, then releases the storage. Later calls fail with `DATABASE_CLOSED`. */
  close(): Promise<void>;
}

/** Settings every storage driver takes from `openKv`. */
export interface DriverOptions {
  /** Revisions kept per key (default 10). */
  readonly historyDepth?: number;
  /** Commits kept in the change log (default 10,000). */
  readonly changeLogSize?: number;
  /** Largest stored value in bytes an `append`/`prepend` may produce (default: no limit). */
  readonly maxValueSize?: number;
  /** Hashes stored values for `dataHash` (default SHA-256, hex). */
  readonly hash?: (bytes: Uint8Array) => string;
}
