/**
 * The SQLite driver (better-sqlite3, WAL). The durable default for embedded use.
 *
 * Group commit: atomic writes that arrive in the same turn of the event loop are applied in
 * one `BEGIN IMMEDIATE … COMMIT`, each with its own versionstamp, so a burst of N concurrent
 * writes costs one fsync instead of N. A write whose checks fail or whose mutation throws is
 * computed before anything is stored, so it changes nothing and the rest of the group commits.
 *
 * Search indexes are FTS5 tables whose documents change in the savepoint of their write (see
 * `search.ts`).
 *
 * Several processes may open one file: `BEGIN IMMEDIATE` serialises writers and the commit
 * counter lives in the file, so versionstamps stay strictly increasing across processes.
 */

import Database from "better-sqlite3";
import { keyId } from "../../codec/key.js";
import { ENCODING_TAG } from "../../codec/value.js";
import { formatVersionstamp, parseVersionstamp } from "../../codec/versionstamp.js";
import {
  type Applied,
  applyMutation,
  DEFAULT_CHANGE_LOG_SIZE,
  DEFAULT_HISTORY_DEPTH,
  revisionOf,
  type StoredEntry,
  sha256,
  writtenKey,
} from "../../contract/apply.js";
import type { Filter } from "../../contract/filter.js";
import type {
  AtomicWrite,
  BackupInfo,
  BackupOptions,
  BackupTarget,
  ChangeEvent,
  ChangePage,
  CommitResult,
  DriverOptions,
  KeyChange,
  KvDriver,
  Mutation,
  RawEntry,
  RawRevision,
  ReadOptions,
  ReadRange,
  SearchHit,
  SearchIndexSpec,
  SearchRequest,
  Settlement,
} from "../../contract/index.js";
import { KvError } from "../../errors.js";
import { GroupCommit, type Outcome } from "../shared/group-commit.js";
import { inKeyOrder, type StoredChange, storedChange, toKeyChange } from "../shared/key-changes.js";
import { isPoint, prefixEnd } from "../shared/range.js";
import { backupSqlite } from "./backup.js";
import { isFileFault, storageError } from "./errors.js";
import { packChanges } from "./packed-changes.js";
import { prepareLocation } from "./path.js";
import { QUEUE_SCHEMA, SqliteQueues } from "./queues.js";
import {
  groupChanges,
  hashFromColumn,
  hashToColumn,
  kvRow,
  type LogRow,
  META_COLUMNS,
  migrate,
  prepareStatements,
  type Row,
  SCHEMA,
  storedOf,
  toEntry,
  toRawValue,
} from "./schema.js";
import { SqliteSearch } from "./search.js";
import { SqliteWhere } from "./where.js";

export interface SqliteDriverOptions extends DriverOptions {
  /**
   * `"full"` (default): every commit group is fsynced before its writes resolve, so an
   * acknowledged write survives power loss. `"normal"`: WAL is fsynced at checkpoints only; an
   * acknowledged write survives a process crash but the last ones may be lost on power loss.
   */
  readonly durability?: "full" | "normal";
  /** How long a writer waits for another process's write lock, in ms (default 5000). */
  readonly busyTimeout?: number;
  /** How often, in ms, to look for other processes' commits to the file (default 20). */
  readonly crossProcessInterval?: number;
}

/** What a job sees inside its group's write transaction. */
export interface Tx {
  /** Applies checks then mutations under the next versionstamp; null when a check fails. */
  commit(
    checks: AtomicWrite["checks"],
    mutations: readonly Mutation[],
    now: number,
    /** The mutations are the expiry sweeper's deletes: report them as `expire` changes. */
    expiry?: boolean,
  ): { versionstamp: string } | null;
  /** Reports a queue with a message ready for delivery, once the group is durable. */
  ready(queue: Uint8Array): void;
}

/**
 * A commit writing at least this many keys reads their stored rows this many to a statement
 * rather than one by one.
 */
const MANY_KEYS = 64;

/**
 * A job of a group commit: what it does inside the group's write transaction. A `lease` job
 * (a dequeue, an extend) only moves leases: see `#runGroup`.
 */
type Job = ((tx: Tx) => unknown) & { readonly lease?: boolean };

/**
 * Opens (creating if missing) a SQLite database file.
 *
 * @example
 * const kv = await openKv("data/app.db", { durability: "normal" });
 */
export function sqliteDriver(path: string, options: SqliteDriverOptions = {}): KvDriver {
  if (path !== ":memory:") prepareLocation(path);
  const timeout = options.busyTimeout ?? 5000;
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { timeout });
    const opened = db;
    retryWhileBusy(timeout, () => prepareFile(opened, options));
    return new SqliteDriver(db, options);
  } catch (cause) {
    db?.close();
    if (cause instanceof KvError) throw cause;
    throw storageError(cause, path, "open");
  }
}

/** Switches the file to WAL and creates or migrates its schema. */
function prepareFile(db: Database.Database, options: SqliteDriverOptions): void {
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${options.durability === "normal" ? "NORMAL" : "FULL"}`);
  // Group commits dirty many pages at once: checkpoint the WAL less often (every ~40 MB) and
  // keep more pages in cache (64 MB), which measured 1.6× faster bursts of concurrent writes.
  db.pragma("wal_autocheckpoint = 10000");
  db.pragma("cache_size = -65536");
  assertCellarTables(db);
  try {
    db.exec("BEGIN IMMEDIATE");
    db.exec(SCHEMA);
    db.exec(QUEUE_SCHEMA);
    migrate(db);
    db.exec("COMMIT");
  } catch (error) {
    if (db.inTransaction) db.exec("ROLLBACK");
    throw error;
  }
}

/**
 * Cellar shares a file with other applications' tables, its own all named `cellar_…`; but a
 * file with some of those names and no `cellar_meta` was not made by Cellar, and writing into
 * tables of another shape would corrupt that application's data.
 */
function assertCellarTables(db: Database.Database): void {
  const names = db
    .prepare(
      "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'cellar\\_%' ESCAPE '\\'",
    )
    .pluck()
    .all() as string[];
  if (names.length === 0 || names.includes("cellar_meta")) return;
  throw new KvError(
    "INVALID_ARGUMENT",
    `cannot open SQLite database ${db.name}: it holds tables named like Cellar's (${names.join(", ")}) that Cellar did not create`,
  );
}

/**
 * Runs `fn` again while SQLite reports the file busy, for up to `timeout` ms. SQLite skips the
 * busy handler where waiting could deadlock — two processes switching a new file to WAL at
 * once — and returns SQLITE_BUSY at once; backing off and retrying resolves it.
 */
function retryWhileBusy(timeout: number, fn: () => void): void {
  const deadline = Date.now() + timeout;
  for (let attempt = 0; ; attempt++) {
    try {
      fn();
      return;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      const busy = typeof code === "string" && code.startsWith("SQLITE_BUSY");
      if (!busy || Date.now() >= deadline) throw error;
      const pause = Math.min(100, 2 ** attempt) * (0.5 + Math.random());
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pause);
    }
  }
}

class SqliteDriver implements KvDriver {
  readonly #db: Database.Database;
  readonly #depth: number;
  readonly #logSize: number;
  readonly #logAge: number;
  readonly #maxValueSize: number | undefined;
  readonly #crossProcessInterval: number;
  #prunedAt = 0;
  readonly #hash: (bytes: Uint8Array) => string;
  readonly #listeners = new Set<(change: ChangeEvent) => void>();
  /** Highest commit version reported to listeners, ours or another process's. */
  #reported = 0;
  #dataVersion = 0;
  #watcher: NodeJS.Timeout | null = null;
  readonly #group = new GroupCommit<Job>((jobs) => this.#runGroup(jobs));
  #closed = false;
  readonly #stmt: ReturnType<typeof prepareStatements>;
  readonly #queues: SqliteQueues;
  /** With durability `full`: the statements that turn the fsync of each commit off and on. */
  readonly #fullSync: {
    readonly off: Database.Statement;
    readonly on: Database.Statement;
    isOn: boolean;
  } | null;
  readonly #where: SqliteWhere;
  readonly #search: SqliteSearch;
  readonly #storedInCache = new Map<number, Database.Statement>();

  constructor(db: Database.Database, options: SqliteDriverOptions) {
    this.#db = db;
    this.#depth = options.historyDepth ?? DEFAULT_HISTORY_DEPTH;
    this.#logSize = options.changeLogSize ?? DEFAULT_CHANGE_LOG_SIZE;
    this.#logAge = options.changeLogAge ?? 0;
    this.#maxValueSize = options.maxValueSize;
    this.#crossProcessInterval = options.crossProcessInterval ?? 20;
    this.#hash = options.hash ?? sha256;
    this.#queues = new SqliteQueues(db);
    this.#fullSync =
      options.durability === "normal"
        ? null
        : {
            off: db.prepare("PRAGMA synchronous = NORMAL"),
            on: db.prepare("PRAGMA synchronous = FULL"),
            isOn: true,
          };
    this.#stmt = prepareStatements(db);
    this.#where = new SqliteWhere(db);
    this.#search = new SqliteSearch(db, this.#where, this.#hash);
  }

  snapshotReadSync(ranges: readonly ReadRange[], options: ReadOptions): RawEntry[][] {
    this.#assertOpen();
    if (ranges.length === 1) return [this.#readRange(ranges[0]!, options)];
    return this.#db.transaction(() => ranges.map((range) => this.#readRange(range, options)))();
  }

  async snapshotRead(ranges: readonly ReadRange[], options: ReadOptions): Promise<RawEntry[][]> {
    return this.snapshotReadSync(ranges, options);
  }

  async count(
    range: { start: Uint8Array; end: Uint8Array; where?: Filter },
    options: ReadOptions,
  ): Promise<number> {
    this.#assertOpen();
    if (range.where) return this.#where.count(range, range.where, options.now);
    return this.#stmt.count.get({ start: range.start, end: range.end, now: options.now }) as number;
  }

  atomicWrite(write: AtomicWrite): Promise<CommitResult | null> {
    return this.#write((tx): CommitResult | null => {
      // Inside the group's transaction, so the counts are those the commit would change.
      for (const { start, end, count } of write.rangeChecks ?? []) {
        if (this.#stmt.count.get({ start, end, now: write.now }) !== count) return null;
      }
      const done = tx.commit(write.checks, write.mutations, write.now);
      if (!done) return null;
      if (write.searchDocs) this.#search.apply(write.searchDocs);
      const enqueued = (write.enqueues ?? []).map((e) => this.#queues.enqueue(tx, e, write.now));
      return { versionstamp: done.versionstamp, ...(enqueued.length > 0 && { enqueued }) };
    });
  }

  dequeue(queue: Uint8Array, options: { now: number; visibilityTimeout: number; limit: number }) {
    return this.#write(
      (tx) =>
        this.#queues.dequeue(tx, queue, options.now, options.visibilityTimeout, options.limit),
      { lease: true },
    );
  }

  settle(queue: Uint8Array, token: string, settlement: Settlement, now: number) {
    return this.#write((tx) => this.#queues.settle(tx, queue, token, settlement, now), {
      lease: settlement.type === "extend",
    });
  }

  async queueStats(queue: Uint8Array, now: number) {
    this.#assertOpen();
    return this.#queues.stats(queue, now);
  }

  async listDead(queue: Uint8Array, options: { limit: number; after?: string }) {
    this.#assertOpen();
    return this.#queues.listDead(queue, options.limit, options.after);
  }

  async getDead(queue: Uint8Array, id: string) {
    this.#assertOpen();
    return this.#queues.getDead(queue, id);
  }

  requeueDead(queue: Uint8Array, ids: readonly string[] | null, now: number) {
    return this.#write((tx) => this.#queues.requeueDead(tx, queue, ids, now));
  }

  deleteDead(queue: Uint8Array, ids: readonly string[] | null) {
    return this.#write(() => this.#queues.deleteDead(queue, ids));
  }

  /** Queues `run` for the next group commit; `lease`: it only moves leases (see `Job`). */
  #write<T>(run: (tx: Tx) => T, { lease = false } = {}): Promise<T> {
    return this.#group.submit<T>(lease ? Object.assign((tx: Tx) => run(tx), { lease }) : run);
  }

  async history(
    key: Uint8Array,
    { limit, now, withValues }: { limit: number; now: number; withValues: boolean },
  ): Promise<RawRevision[]> {
    this.#assertOpen();
    const max = Math.min(limit, this.#depth);
    const { current, rows } = this.#db.transaction(() => ({
      current: this.#stmt.pointMeta.get({ key, now }) as Row | undefined,
      rows: this.#stmt.history.all(key, max) as {
        revision: number;
        vs: number;
        timestamp: number;
        modified_by: string | null;
        comment: string | null;
        data_hash: string | Buffer | null;
        value: string | Buffer | null;
        encoding: number | null;
      }[],
    }))();
    const archived = rows.map(
      (row): RawRevision => ({
        version: row.revision,
        versionstamp: formatVersionstamp(row.vs),
        timestamp: row.timestamp,
        modifiedBy: row.modified_by,
        comment: row.comment,
        dataHash: hashFromColumn(row.data_hash),
        ...(row.value !== null &&
          row.encoding !== null && { value: toRawValue(row.value, row.encoding) }),
      }),
    );
    if (!current) return archived;
    return [
      revisionOf(storedOf(toEntry(current, true, this.#hash)), withValues),
      ...archived,
    ].slice(0, max);
  }

  deleteExpired(now: number, limit: number): Promise<number> {
    return this.#write((tx) => {
      this.#queues.pruneDedup(now);
      const expired = this.#stmt.expired.all(now, limit) as Buffer[];
      if (expired.length > 0) {
        tx.commit(
          [],
          expired.map((key) => ({ type: "delete", key })),
          now,
          true,
        );
        this.#search.forget(expired);
      }
      return expired.length;
    });
  }

  purge(prefix: Uint8Array, now: number): Promise<number> {
    const end = prefixEnd(prefix);
    return this.#write((tx) => {
      const stored = this.#stmt.storedKeys.all({ start: prefix, end, now }) as [Buffer, number][];
      // Deleting through the commit path logs the keys under one versionstamp for the feed; the
      // revisions those deletes archive go with the rest of the range's history just after.
      if (stored.length > 0) {
        tx.commit(
          [],
          stored.map(([key]) => ({ type: "delete", key })),
          now,
        );
      }
      this.#stmt.dropHistoryRange.run(prefix, end);
      this.#search.forgetRange(prefix, end);
      this.#queues.purge(prefix, end);
      return stored.filter(([, live]) => live === 1).length;
    });
  }

  createSearchIndex(spec: SearchIndexSpec): Promise<void> {
    return this.#write(() => this.#search.create(spec));
  }

  dropSearchIndex(id: number): Promise<void> {
    return this.#write(() => this.#search.drop(id));
  }

  async search(request: SearchRequest): Promise<SearchHit[]> {
    this.#assertOpen();
    return this.#search.search(request);
  }

  async readChanges(after: string, limit: number): Promise<ChangePage> {
    this.#assertOpen();
    const from = parseVersionstamp(after);
    const { rows, pruned, head } = this.#db.transaction(() => ({
      rows: this.#stmt.changes.all({ after: from, limit }) as LogRow[],
      pruned: this.#stmt.getPruned.get() as number,
      head: this.#stmt.getVersion.get() as number,
    }))();
    return {
      changes: groupChanges(rows, this.#hash),
      truncated: from < pruned,
      head: formatVersionstamp(head),
      oldest: formatVersionstamp(pruned),
    };
  }

  onChange(listener: (change: ChangeEvent) => void): () => void {
    this.#listeners.add(listener);
    if (!this.#watcher) {
      this.#reported = this.#stmt.getVersion.get() as number;
      this.#dataVersion = this.#stmt.dataVersion.get() as number;
      this.#watcher = setInterval(() => this.#checkOtherProcesses(), this.#crossProcessInterval);
      this.#watcher.unref();
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0 && this.#watcher) {
        clearInterval(this.#watcher);
        this.#watcher = null;
      }
    };
  }

  /**
   * Other processes' commits: SQLite's data version changes when another connection commits;
   * then the change log says which keys changed, and any queue with ready messages is woken.
   */
  #checkOtherProcesses(): void {
    if (this.#closed) return;
    const dataVersion = this.#stmt.dataVersion.get() as number;
    if (dataVersion === this.#dataVersion) return;
    this.#dataVersion = dataVersion;
    const { changes, queues } = this.#db.transaction(() => ({
      changes: this.#foreignChanges(this.#stmt.getVersion.get() as number),
      queues: this.#queues.readyQueues(),
    }))();
    for (const change of changes) this.#emit(change);
    if (queues.length > 0)
      this.#emit({ versionstamp: formatVersionstamp(this.#reported), keys: [], queues });
  }

  /** Commits in the log after the last reported one, up to `head`, as change events. */
  #foreignChanges(head: number): ChangeEvent[] {
    if (head <= this.#reported) return [];
    const rows = this.#stmt.changesUpTo.all(this.#reported, head) as LogRow[];
    this.#reported = head;
    return groupChanges(rows, this.#hash);
  }

  onCommitGroup(listener: (size: number) => void): () => void {
    return this.#group.onGroup(listener);
  }

  /** A consistent copy of the file, taken on this connection between commit groups: see `backup.ts`. */
  async backup(target: BackupTarget, options: BackupOptions): Promise<BackupInfo> {
    this.#assertOpen();
    if (!("file" in target))
      throw new KvError(
        "UNSUPPORTED",
        "a SQLite database backs up into a file, not a PostgreSQL schema",
      );
    return backupSqlite(this.#db, target.file, options);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#group.close();
    if (this.#watcher) clearInterval(this.#watcher);
    this.#listeners.clear();
    this.#db.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new KvError("DATABASE_CLOSED", "the database is closed");
  }

  #readRange(range: ReadRange, options: ReadOptions): RawEntry[] {
    const meta = options.metadata === true;
    const { start, end, limit, where } = range;
    if (where) {
      if (limit <= 0 || Buffer.compare(start, end) >= 0) return [];
      return this.#where
        .read({ ...range, where }, options.now, meta)
        .map((row) => toEntry(row, meta, this.#hash));
    }
    if (limit === 1 && isPoint(start, end)) {
      const row = (
        meta
          ? this.#stmt.pointMeta.get({ key: start, now: options.now })
          : this.#stmt.point.get(start, options.now)
      ) as Row | undefined;
      if (!row) return [];
      row[0] = start as Buffer;
      return [toEntry(row, meta, this.#hash)];
    }
    if (limit <= 0 || Buffer.compare(start, end) >= 0) return [];
    const stmt = range.reverse
      ? meta
        ? this.#stmt.rangeDescMeta
        : this.#stmt.rangeDesc
      : meta
        ? this.#stmt.rangeMeta
        : this.#stmt.range;
    const rows = stmt.all({ start, end, limit, now: options.now }) as Row[];
    return rows.map((row) => toEntry(row, meta, this.#hash));
  }

  /**
   * Runs a group's jobs in one write transaction, each under its own savepoint. With durability
   * `full`, a group of leases alone commits without an fsync of its own: it reaches the disk with
   * the next group that has one. A lease lost to a power loss is a lease that expired, its message
   * delivered again; a process that dies loses nothing, the write being in the WAL already.
   */
  #runGroup(batch: readonly Job[]): Outcome[] {
    const outcomes: Outcome[] = [];
    const changes: ChangeEvent[] = [];
    const ready = new Map<string, Uint8Array>();
    const prunedAt = this.#prunedAt;
    const unsynced = this.#fullSync !== null && batch.every((job) => job.lease === true);
    try {
      this.#rollback();
      this.#syncEachCommit(!unsynced);
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        let version = this.#stmt.getVersion.get() as number;
        const started = version;
        let lastNow = 0;
        // Commits of other processes since the last report come first, in order.
        if (this.#listeners.size > 0) changes.push(...this.#foreignChanges(version));
        const tx: Tx = {
          commit: (checks, mutations, now, expiry = false) => {
            const written = this.#apply(checks, mutations, now, version + 1, expiry);
            if (written === null) return null;
            version++;
            lastNow = Math.max(lastNow, now);
            const versionstamp = formatVersionstamp(version);
            if (written.length > 0) this.#stmt.logChange.run(version, now, packChanges(written));
            // Reported in this process only to listeners: without them, no objects to make.
            if (written.length > 0 && this.#listeners.size > 0) {
              const keys = written.map(([key]) => key);
              const entries: KeyChange[] = [];
              for (const [key, change] of written)
                if (change) entries.push(toKeyChange(key, change));
              changes.push({ versionstamp, keys, entries: inKeyOrder(entries) });
            }
            return { versionstamp };
          },
          ready: (queue) => ready.set(keyId(queue), queue),
        };
        for (const job of batch) {
          // Each job runs under its own savepoint: one that fails (its input refused, or a
          // constraint of the file) is undone alone and the rest of the group commits.
          const mark = { version, changes: changes.length };
          this.#stmt.savepoint.run();
          try {
            outcomes.push({ ok: true, value: job(tx) });
            this.#stmt.release.run();
          } catch (cause) {
            // A full disk or an I/O error is the file's, not this job's: the rest of the group
            // cannot commit either, and SQLite may already have rolled the transaction back.
            if (isFileFault(cause)) throw cause;
            this.#stmt.rollbackTo.run();
            this.#stmt.release.run();
            version = mark.version;
            changes.length = mark.changes;
            const error =
              cause instanceof KvError ? cause : storageError(cause, this.#db.name, "write to");
            outcomes.push({ ok: false, error });
          }
        }
        if (version !== started) this.#stmt.setVersion.run(version);
        this.#pruneLog(version, lastNow);
        this.#db.exec("COMMIT");
        if (unsynced && version !== started) {
          // A dequeue that dead-lettered a message wrote its keysIfUndelivered: a one-row commit
          // with an fsync takes them to the disk before the group resolves.
          this.#syncEachCommit(true);
          this.#db.exec("BEGIN IMMEDIATE");
          this.#stmt.setVersion.run(version);
          this.#db.exec("COMMIT");
        }
        this.#reported = Math.max(this.#reported, version);
        if (ready.size > 0) {
          changes.push({
            versionstamp: formatVersionstamp(version),
            keys: [],
            queues: [...ready.values()],
          });
        }
      } catch (error) {
        this.#rollback();
        this.#prunedAt = prunedAt;
        throw error;
      }
    } catch (cause) {
      throw storageError(cause, this.#db.name, "commit to");
    }
    for (const change of changes) this.#emit(change);
    return outcomes;
  }

  /** With durability `full`, turns the fsync of each commit on or off (outside a transaction). */
  #syncEachCommit(on: boolean): void {
    if (this.#fullSync === null || this.#fullSync.isOn === on) return;
    (on ? this.#fullSync.on : this.#fullSync.off).run();
    this.#fullSync.isOn = on;
  }

  /**
   * Ends a failed group's transaction. A COMMIT refused for a full disk leaves the transaction
   * open; an I/O error may have ended it already, or make ROLLBACK fail too. The group's jobs
   * are refused either way, and the next group calls this again before its BEGIN, so one failed
   * ROLLBACK does not wedge the driver.
   */
  #rollback(): void {
    if (!this.#db.inTransaction) return;
    try {
      this.#db.exec("ROLLBACK");
    } catch {
      // Reported by the caller's own error; retried before the next group.
    }
  }

  /**
   * Applies checks then mutations inside the open transaction: each written key with the change
   * it saw (null: none a reader could see); null when a check fails.
   */
  #apply(
    checks: AtomicWrite["checks"],
    mutations: readonly Mutation[],
    now: number,
    version: number,
    expiry: boolean,
  ): [Uint8Array, StoredChange | null][] | null {
    for (const check of checks) {
      const vs = this.#stmt.checkVs.get({ key: check.key, now }) as number | undefined;
      const current = vs === undefined ? null : formatVersionstamp(vs);
      if (current !== check.versionstamp) return null;
    }
    const context = {
      now,
      versionstamp: formatVersionstamp(version),
      hash: this.#hash,
      maxValueSize: this.#maxValueSize,
    };
    // Compute every mutation before storing any, so a throwing one leaves the file untouched.
    const staged = new Map<
      string,
      { key: Uint8Array; before: StoredEntry | null; after: StoredEntry | null }
    >();
    const applied: [Uint8Array, Applied][] = [];
    const keys = mutations.map((mutation) => writtenKey(mutation, context.versionstamp));
    const found = keys.length >= MANY_KEYS ? this.#storedRows(keys) : null;
    for (const [i, mutation] of mutations.entries()) {
      const key = keys[i]!;
      const id = keyId(key);
      let state = staged.get(id);
      if (!state) {
        // The whole entry, value included: the change log reports what the key was.
        const row = (found ? found.get(id) : this.#stmt.stored.get(key)) as Row | undefined;
        const before = row ? storedOf(toEntry(row, true, this.#hash)) : null;
        state = { key, before, after: before };
        staged.set(id, state);
      }
      const result = applyMutation(state.after, mutation, context);
      state.after = result.entry;
      applied.push([key, result]);
    }
    for (const [key, result] of applied) this.#store(key, result, version);
    return [...staged.values()].map(({ key, before, after }) => [
      key,
      storedChange(before, after, now, expiry),
    ]);
  }

  /** The stored rows of `keys`, by `keyId`, read `MANY_KEYS` to a statement. */
  #storedRows(keys: readonly Uint8Array[]): Map<string, Row> {
    const rows = new Map<string, Row>();
    for (let i = 0; i < keys.length; i += MANY_KEYS) {
      const chunk = keys.slice(i, i + MANY_KEYS);
      for (const row of this.#storedIn(chunk.length).all(chunk) as Row[])
        rows.set(keyId(row[0]), row);
    }
    return rows;
  }

  /** `stored` for `count` keys at once, prepared on first use. */
  #storedIn(count: number): Database.Statement {
    let statement = this.#storedInCache.get(count);
    if (!statement) {
      statement = this.#db
        .prepare(
          `SELECT ${META_COLUMNS} FROM cellar_kv WHERE key IN (${Array(count).fill("?").join(", ")})`,
        )
        .raw();
      this.#storedInCache.set(count, statement);
    }
    return statement;
  }

  #store(key: Uint8Array, applied: Applied, version: number): void {
    const { entry, archive } = applied;
    if (entry) {
      this.#stmt.upsert.run(
        kvRow(
          key,
          entry.value.data,
          ENCODING_TAG[entry.value.encoding],
          version,
          entry.expiresAt,
          entry.meta,
        ),
      );
    } else {
      this.#stmt.remove.run(key);
    }
    if (applied.dropHistory) this.#stmt.dropHistory.run(key);
    for (const revision of archive) {
      this.#stmt.addRevision.run(
        key,
        parseVersionstamp(revision.versionstamp),
        revision.version,
        revision.timestamp,
        revision.modifiedBy,
        revision.comment,
        hashToColumn(revision.dataHash),
        revision.value?.data ?? null,
        revision.value ? ENCODING_TAG[revision.value.encoding] : null,
      );
    }
    // Pruning every few revisions keeps the archive within twice its depth at a fraction of the cost.
    const last = archive.at(-1);
    if (last && (last.dataHash === null || last.version % 8 === 0))
      this.#stmt.pruneHistory.run({ key, keep: this.#depth });
  }

  /**
   * Trims the change log in steps of a tenth of its size, inside the write transaction, keeping
   * commits younger than `changeLogAge` at the group's time `now`.
   */
  #pruneLog(version: number, now: number): void {
    let horizon = version - this.#logSize;
    if (horizon <= 0 || horizon - this.#prunedAt < this.#logSize / 10) return;
    if (this.#logAge > 0) {
      const aged = this.#stmt.agedVersion.get({ before: now - this.#logAge }) as number | null;
      horizon = Math.min(horizon, aged ?? 0);
      if (horizon <= this.#prunedAt) return;
    }
    this.#stmt.prune.run(horizon);
    this.#stmt.setPruned.run(horizon);
    this.#prunedAt = horizon;
  }

  #emit(change: ChangeEvent): void {
    for (const listener of this.#listeners) listener(change);
  }

  async listQueues(range: { start: Uint8Array; end: Uint8Array }, limit: number) {
    this.#assertOpen();
    // The (queue, id) index holds the names in order: the scan reads one name per queue.
    const rows = this.#db
      .prepare(
        "SELECT DISTINCT queue FROM cellar_queue WHERE queue >= ? AND queue < ? ORDER BY queue LIMIT ?",
      )
      .all(range.start, range.end, limit) as { queue: Uint8Array }[];
    return rows.map((row) => new Uint8Array(row.queue));
  }
}
