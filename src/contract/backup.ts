/**
 * The backup capability: a consistent copy of a whole database, taken while it is being written,
 * and its restoration into a new database, optionally as of an earlier commit.
 *
 * A backup holds the database as of exactly one commit (its `versionstamp`): every entry, the
 * revision history, the change log, queues and search indexes, never part of a commit. Each
 * driver writes the kind of target its engine can: SQLite a file, PostgreSQL a schema of the
 * same database.
 */

/** Where a backup goes: a new SQLite file, or a new schema beside the database's own. */
export type BackupTarget = { readonly file: string } | { readonly schema: string };

/** Options of a backup or a restore. */
export interface BackupOptions {
  /** Replace an existing target (default: refuse with `ALREADY_EXISTS`). */
  readonly force?: boolean;
  /** Called as the copy advances: what is copied so far and the total, in the driver's unit. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** What a finished, verified backup or restore holds. */
export interface BackupInfo {
  /** Where the copy is (a file path or a schema name). */
  readonly target: string;
  /** The commit the copy holds the database as of. */
  readonly versionstamp: string;
  /** Entries stored in the copy (expired ones not yet swept included). */
  readonly entries: number;
  /** The copy's size in bytes. */
  readonly bytes: number;
}

/** Options of a restore. */
export interface RestoreOptions extends BackupOptions {
  /**
   * Restore the state as of this versionstamp, which must lie within the backup's change-log
   * window (`COMPACTED` otherwise) and not after the backup (`INVALID_VERSIONSTAMP`).
   */
  readonly at?: string;
}

/** A driver that can copy its whole database, consistently, while it runs. */
export interface KvBackupStore {
  /**
   * Copies the whole database as of one commit to `target` and verifies the copy before it
   * appears there; a failed backup leaves nothing at `target`. A kind of target the driver
   * cannot write is refused with `UNSUPPORTED`.
   */
  backup(target: BackupTarget, options: BackupOptions): Promise<BackupInfo>;
}
