import type { KvKey } from "../codec/key.js";
import type { KvWhere } from "./where/compile.js";

/** Metadata of an entry, returned when a read asks for `{ metadata: true }`. Times are epoch ms. */
export interface KvEntryMetadata {
  /** 1 for the first write, then +1 per write; restarts at 1 after a delete. */
  readonly version: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly expiresAt: number | null;
  readonly tags: readonly string[];
  readonly modifiedBy: string | null;
  readonly comment: string | null;
  /** Hex SHA-256 of the stored value. */
  readonly dataHash: string;
}

export interface KvEntry<T = unknown> {
  readonly key: KvKey;
  readonly value: T;
  readonly versionstamp: string;
  readonly metadata?: KvEntryMetadata;
}

/** An entry that may be absent: `value` and `versionstamp` are `null` then. */
export type KvEntryMaybe<T = unknown> =
  | KvEntry<T>
  | {
      readonly key: KvKey;
      readonly value: null;
      readonly versionstamp: null;
      readonly metadata?: undefined;
    };

export interface KvCommitResult {
  readonly ok: true;
  readonly versionstamp: string;
  /** What each `uuid()` placeholder of the operation resolved to, in creation order. */
  readonly uuids: readonly string[];
  /** One per `enqueue` of the operation: the message id, or the id of the message it duplicated. */
  readonly enqueued?: readonly { readonly id: string; readonly deduplicated: boolean }[];
}

export interface KvCommitError {
  readonly ok: false;
}

export type KvConsistencyLevel = "strong" | "eventual";

export interface KvReadOptions {
  /** Accepted for Deno KV compatibility; every read here is strongly consistent. */
  readonly consistency?: KvConsistencyLevel;
  /** Include {@link KvEntryMetadata}. Plain reads skip it and pay nothing for it. */
  readonly metadata?: boolean;
}

/** What a writer records with a write: kept in the entry's metadata and history. */
export interface KvWriteInfo {
  /** Replaces the entry's tags; omitted keeps the previous ones. */
  readonly tags?: readonly string[];
  readonly modifiedBy?: string;
  readonly comment?: string;
}

export interface KvSetOptions extends KvWriteInfo {
  /** Milliseconds until the entry expires: a positive integer. */
  readonly expireIn?: number;
}

export type KvListSelector =
  | { readonly prefix: KvKey }
  | { readonly prefix: KvKey; readonly start: KvKey }
  | { readonly prefix: KvKey; readonly end: KvKey }
  | { readonly start: KvKey; readonly end: KvKey };

export interface KvListOptions extends KvReadOptions {
  /** Stop after this many entries. */
  readonly limit?: number;
  /** Resume after (or, with `reverse`, before) the entry this cursor came from. */
  readonly cursor?: string;
  readonly reverse?: boolean;
  /** Entries fetched per round trip to the driver (default 100, at most 1000). */
  readonly batchSize?: number;
  /**
   * Only entries whose value matches this filter (see {@link KvWhere}); `limit` and pages count
   * matching entries.
   */
  readonly where?: KvWhere;
}

export interface KvPage<T = unknown> {
  readonly entries: KvEntry<T>[];
  /** Pass to the next `paginate` call; `null` when there is nothing more. */
  readonly cursor: string | null;
  readonly hasMore: boolean;
}

export interface KvRevision<T = unknown> {
  readonly version: number;
  readonly versionstamp: string;
  readonly timestamp: number;
  readonly modifiedBy: string | null;
  readonly comment: string | null;
  /** `null` marks a deletion. */
  readonly dataHash: string | null;
  /** Present for keys under a `history.keepValues` prefix. */
  readonly value?: T | null;
}
