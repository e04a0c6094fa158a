/**
 * The change-feed contract: committed changes in commit order, pushed to listeners in this
 * process and readable from a bounded log, so a reader can resume where it stopped.
 */

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

export interface KvChangeFeed {
  /** Calls `listener` after every commit that changed keys. Returns the unsubscribe function. */
  onChange(listener: (change: ChangeEvent) => void): () => void;

  /**
   * Commits with a versionstamp greater than `after`, oldest first, at most `limit` of them.
   * The log keeps the most recent commits (at least the last 10,000); older ones are pruned.
   */
  readChanges(after: string, limit: number): Promise<ChangePage>;
}
