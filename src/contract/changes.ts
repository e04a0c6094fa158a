/**
 * The change-feed contract: committed changes in commit order, pushed to listeners in this
 * process and readable from a bounded log, so a reader can resume where it stopped. Each change
 * says what a key became and what it was, so events can be replayed from the log exactly as
 * they were pushed live.
 */
import type { RawEntry } from "./storage.js";

/** How a commit changed a key: written, deleted, or removed by the expiry sweeper. */
export type ChangeType = "set" | "delete" | "expire";

/** One key's change in one commit. */
export interface KeyChange {
  readonly key: Uint8Array;
  readonly type: ChangeType;
  /** The entry the commit left, with metadata; `null` after a delete or an expiry. */
  readonly entry: RawEntry | null;
  /**
   * The live entry before the commit, with metadata; `null` when the key had none (a new key,
   * or one whose entry had expired). For an expiry, the entry that expired.
   */
  readonly previous: RawEntry | null;
}

/** Keys a commit (or the expiry sweeper) changed, reported after it is durable. */
export interface ChangeEvent {
  readonly versionstamp: string;
  /** Every key the commit wrote, including deletes of absent keys. */
  readonly keys: readonly Uint8Array[];
  /**
   * What the commit did to each key that changed (a delete of an absent key is not a change),
   * in key byte order. Present whenever `keys` is not empty, from the live feed and the log alike.
   */
  readonly entries?: readonly KeyChange[];
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
  /**
   * The oldest resume point the log still serves: reading after it (or after anything later)
   * misses nothing. Older resume points are `truncated`.
   */
  readonly oldest: string;
}

export interface KvChangeFeed {
  /** Calls `listener` after every commit that changed keys. Returns the unsubscribe function. */
  onChange(listener: (change: ChangeEvent) => void): () => void;

  /**
   * Commits with a versionstamp greater than `after`, oldest first, at most `limit` of them.
   * The log keeps the most recent commits (by default at least the last 10,000, see
   * `DriverOptions.changeLogSize`); older ones are pruned. Each change carries `entries`.
   */
  readChanges(after: string, limit: number): Promise<ChangePage>;
}
