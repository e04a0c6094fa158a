/**
 * The state every view of one database shares: its driver, limits, clock, watch hub and expiry
 * sweeper. `Kv` objects (the root and each namespace) are thin views over one `Database`.
 *
 * Its methods are the core's internal surface (see `surface.ts`): the one commit pipeline
 * (`commit`) and the one scoped read path (`read`, `count`, `history`), the change feed and
 * queue access. The driver is private: nothing outside the core calls it.
 */
import { encodeKey, type KvKey, startsWith } from "../codec/key.js";
import { KvU64 } from "../codec/u64.js";
import { encodeValue, type RawValue } from "../codec/value.js";
import {
  type BackupInfo,
  type BackupOptions,
  type BackupTarget,
  type ChangeEvent,
  type ChangePage,
  type CommitResult,
  type Filter,
  hasQueues,
  type KeyRange,
  type KvDriver,
  type KvQueueStore,
  type RawEntry,
  type RawRevision,
  type ReadRange,
} from "../contract/index.js";
import { describe, fail, KvError } from "../errors.js";
import { assertReadKeySize, assertValueSize, planCommit, type WriteRequest } from "./commit.js";
import { EventHub } from "./events/hub.js";
import { IndexEngine } from "./indexes/engine.js";
import { RemoteIndexes } from "./indexes/remote.js";
import type { IndexService } from "./indexes/service.js";
import type { KvLimits } from "./limits.js";
import {
  commitOperation,
  databaseOperation,
  keyOperation,
  Observers,
  rangeOperation,
  readOperation,
} from "./observe.js";
import { QueueHandle } from "./queue-handle.js";
import { namespaceOf, type Scope, WHOLE_DATABASE } from "./scope.js";
import { unref } from "./timers.js";
import { warn } from "./warn.js";
import { WatchHub, watchStream } from "./watch.js";

export interface HistoryOptions {
  /** Revisions kept per key (default 10). */
  readonly depth?: number;
  /** Key prefixes whose revisions keep the written values, for audit and undo. */
  readonly keepValues?: readonly KvKey[];
}

export interface DatabaseOptions {
  readonly limits: KvLimits;
  readonly clock: () => number;
  readonly history?: HistoryOptions;
  /** Milliseconds between expiry sweeps; 0 disables the sweeper (reads still hide expired entries). */
  readonly sweepInterval: number;
}

const SWEEP_BATCH = 1000;

export class Database {
  readonly hub: WatchHub;
  /** Pattern subscriptions to the change feed (see `events/hub.ts`). */
  readonly events: EventHub;
  readonly limits: KvLimits;
  readonly now: () => number;
  /** Called around every operation below (see `observe.ts`). */
  readonly observers = new Observers();
  /**
   * Indexes and search indexes, kept in this database's commits; `null` when the driver's other
   * side keeps them (`driver.indexHost`, the remote driver).
   */
  readonly indexes: IndexEngine | null;
  /** What `Kv`'s index methods call: the engine, or the server's indexes over the network. */
  readonly indexService: IndexService;
  #closed = false;
  #closing: Promise<void> | null = null;
  #sweeper: ReturnType<typeof setTimeout> | null = null;
  readonly #keepValues: Uint8Array[];

  readonly #driver: KvDriver;

  constructor(driver: KvDriver, options: DatabaseOptions) {
    this.#driver = driver;
    this.limits = options.limits;
    this.now = options.clock;
    this.hub = new WatchHub(driver);
    this.indexes = driver.indexHost ? null : new IndexEngine(driver, options.clock);
    this.indexService = driver.indexHost ? new RemoteIndexes(driver.indexHost) : this.indexes!;
    this.events = new EventHub({
      onChange: (listener) => driver.onChange(listener),
      changes: (after, limit) => driver.readChanges(after, limit),
    });
    this.#keepValues = (options.history?.keepValues ?? []).map((prefix) => encodeKey(prefix));
    if (options.sweepInterval > 0) {
      this.#sweeper = setInterval(() => this.#sweepInBackground(), options.sweepInterval);
      unref(this.#sweeper);
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  assertOpen(): void {
    if (this.#closed) throw new KvError("DATABASE_CLOSED", "the database is closed");
  }

  #sweeping = false;

  /** A timer's sweep: never two at once, and a failure (say, a file locked by another process) waits for the next tick. */
  #sweepInBackground(): void {
    if (this.#sweeping) return;
    this.#sweeping = true;
    this.sweep()
      .catch((error) => warn(`cellar: expiry sweep failed: ${(error as Error).message}`))
      .finally(() => {
        this.#sweeping = false;
      });
  }

  /** Deletes expired entries, a batch at a time, until none is left. */
  async sweep(): Promise<number> {
    let total = 0;
    try {
      for (;;) {
        if (this.#closed) return total;
        const n = await this.#driver.deleteExpired(this.now(), SWEEP_BATCH);
        total += n;
        if (n < SWEEP_BATCH) return total;
      }
    } catch (error) {
      if (error instanceof KvError && error.code === "DATABASE_CLOSED") return total;
      throw error;
    }
  }

  /** Deletes up to `limit` entries expired at `now` (a caller's clock, for tests that move time). */
  deleteExpired(now: number, limit: number): Promise<number> {
    this.assertOpen();
    return this.#driver.deleteExpired(now, limit);
  }

  /** Encodes a value and enforces the size limit. */
  encodeValue(value: unknown): RawValue {
    const raw = encodeValue(value);
    assertValueSize(this.limits, raw);
    return raw;
  }

  /**
   * The commit pipeline: every write of every face goes through here. Checks the write against
   * the limits and `scope` (see `commit.ts`), then commits it all or nothing. Resolves `null`
   * when a check failed.
   */
  commit(write: WriteRequest, scope: Scope, now = this.now()): Promise<CommitResult | null> {
    if (this.observers.size === 0) return this.#commit(write, scope, now);
    return this.observers.observe(
      commitOperation(write, scope),
      () => this.#commit(write, scope, now),
      (result) => (result ? undefined : "CHECK_FAILED"),
    );
  }

  #commit(write: WriteRequest, scope: Scope, now: number): Promise<CommitResult | null> {
    this.assertOpen();
    if (write.enqueues && write.enqueues.length > 0) this.#queues();
    const plan = planCommit(this, write, scope, now);
    const done = this.indexes ? this.indexes.commit(plan) : this.#driver.atomicWrite(plan);
    if (!this.hub.watchesKeys) return done;
    // Watchers of the written keys capture the state this commit left before it resolves, so a
    // reader that keeps up sees each write acknowledged before the next (see `watch.ts`).
    return done.then(async (result) => {
      if (result) {
        const keys = plan.mutations.map((m) => m.key);
        await this.hub.settled(result.versionstamp, keys);
      }
      return result;
    });
  }

  /** Reads every range from one snapshot, each checked against `scope`. */
  read(
    ranges: readonly ReadRange[],
    scope: Scope,
    options: { now?: number; metadata?: boolean } = {},
  ): Promise<RawEntry[][]> {
    if (this.observers.size === 0) return this.#read(ranges, scope, options);
    return this.observers.observe(readOperation(ranges, scope), () =>
      this.#read(ranges, scope, options),
    );
  }

  #read(
    ranges: readonly ReadRange[],
    scope: Scope,
    options: { now?: number; metadata?: boolean },
  ): Promise<RawEntry[][]> {
    this.assertOpen();
    this.#assertRanges(ranges, scope);
    const read = { now: options.now ?? this.now(), metadata: options.metadata === true };
    const [only] = ranges;
    if (this.indexes && ranges.length === 1 && only?.where) {
      const where = only.where;
      return this.indexes
        .read({ ...only, where }, read)
        .then((found) => (found ? [found] : this.#driver.snapshotRead(ranges, read)));
    }
    return this.#driver.snapshotRead(ranges, read);
  }

  /** {@link read}, answered at once by drivers that read in this process; `null` from others. */
  readSync(
    ranges: readonly ReadRange[],
    scope: Scope,
    options: { metadata?: boolean } = {},
  ): RawEntry[][] | null {
    if (!this.#driver.snapshotReadSync) return null;
    if (this.observers.size === 0) return this.#readSync(ranges, scope, options);
    return this.observers.observe(readOperation(ranges, scope), () =>
      this.#readSync(ranges, scope, options),
    );
  }

  #readSync(
    ranges: readonly ReadRange[],
    scope: Scope,
    options: { metadata?: boolean },
  ): RawEntry[][] {
    this.assertOpen();
    this.#assertRanges(ranges, scope);
    return this.#driver.snapshotReadSync!(ranges, {
      now: this.now(),
      metadata: options.metadata === true,
    });
  }

  /** Live entries in `range`, checked against `scope`. */
  count(
    range: KeyRange & { readonly where?: Filter },
    scope: Scope,
    now = this.now(),
  ): Promise<number> {
    if (this.observers.size === 0) return this.#count(range, scope, now);
    return this.observers.observe(rangeOperation("count", range, scope), () =>
      this.#count(range, scope, now),
    );
  }

  #count(
    range: KeyRange & { readonly where?: Filter },
    scope: Scope,
    now: number,
  ): Promise<number> {
    this.assertOpen();
    this.#assertRanges([range], scope);
    const { where } = range;
    if (this.indexes && where)
      return this.indexes
        .count({ ...range, where }, now)
        .then((found) => found ?? this.#driver.count(range, { now }));
    return this.#driver.count(range, { now });
  }

  /** Revisions of `key`, newest first; values only where this database keeps them. */
  history(
    key: Uint8Array,
    scope: Scope,
    options: { limit: number; now?: number },
  ): Promise<RawRevision[]> {
    if (this.observers.size === 0) return this.#history(key, scope, options);
    return this.observers.observe(keyOperation("history", key, scope), () =>
      this.#history(key, scope, options),
    );
  }

  #history(
    key: Uint8Array,
    scope: Scope,
    options: { limit: number; now?: number },
  ): Promise<RawRevision[]> {
    this.assertOpen();
    const prefixLength = scope.prefixLength(key);
    assertReadKeySize(this.limits, key.length - prefixLength);
    return this.#driver.history(key, {
      limit: options.limit,
      now: options.now ?? this.now(),
      withValues: this.keepsValues(key.subarray(prefixLength)),
    });
  }

  /**
   * Drops the namespace whose stored prefix is `prefix` (which `scope` must allow): its entries,
   * expired or not, their revision history, and every message and dedup key of its queues, in
   * one storage transaction (see `KvStorage.purge`). Watchers of its keys see them deleted.
   * Resolves to the number of live entries removed.
   */
  purgeNamespace(prefix: Uint8Array, scope: Scope, now = this.now()): Promise<number> {
    if (this.observers.size === 0) return this.#purgeNamespace(prefix, scope, now);
    return this.observers.observe(keyOperation("dropNamespace", prefix, scope), () =>
      this.#purgeNamespace(prefix, scope, now),
    );
  }

  async #purgeNamespace(prefix: Uint8Array, scope: Scope, now: number): Promise<number> {
    this.assertOpen();
    if (scope.prefixLength(prefix) !== prefix.length)
      fail("INVALID_ARGUMENT", "purgeNamespace takes a namespace's prefix, nothing more");
    // Its indexes go first: a crash in between leaves entries without indexes, never the reverse.
    await this.indexes?.purgeNamespace(namespaceOf(prefix).name);
    return this.#driver.purge(prefix, now);
  }

  /**
   * Copies the whole database, every namespace, as of one commit, to `target` (see
   * `KvBackupStore`); only a caller whose scope is the whole database may ask.
   */
  backup(target: BackupTarget, scope: Scope, options: BackupOptions = {}): Promise<BackupInfo> {
    this.assertOpen();
    if (scope !== WHOLE_DATABASE)
      fail("FORBIDDEN", "a backup copies every namespace: it needs access to the whole database");
    if (!this.#driver.backup)
      fail(
        "UNSUPPORTED",
        "this database's driver cannot take a backup (SQLite and PostgreSQL can)",
      );
    return this.#driver.backup(target, options);
  }

  /**
   * The entries of the keys `ranges` read (point ranges, checked against `scope`): at once, then
   * again after every commit or expiry that changes any of them. `null` for an absent key.
   */
  watch(
    ranges: readonly ReadRange[],
    scope: Scope,
    options: { metadata?: boolean } = {},
  ): ReadableStream<(RawEntry | null)[]> {
    if (this.observers.size === 0) return this.#watch(ranges, scope, options);
    return this.observers.observe(readOperation(ranges, scope, "watch"), () =>
      this.#watch(ranges, scope, options),
    );
  }

  #watch(
    ranges: readonly ReadRange[],
    scope: Scope,
    options: { metadata?: boolean },
  ): ReadableStream<(RawEntry | null)[]> {
    this.assertOpen();
    this.#assertRanges(ranges, scope);
    for (const { start } of ranges)
      assertReadKeySize(this.limits, start.length - scope.prefixLength(start));
    const keys = ranges.map((range) => range.start);
    return watchStream(
      this.hub,
      {
        subscribe: (wake) => this.hub.subscribe(keys, wake),
        read: async () => {
          const results = await this.read(ranges, scope, { metadata: options.metadata === true });
          let nextExpiry: number | null = null;
          const value = ranges.map((_, i) => {
            const raw = results[i]?.[0] ?? null;
            if (raw?.expiresAt != null && (nextExpiry === null || raw.expiresAt < nextExpiry))
              nextExpiry = raw.expiresAt;
            return raw;
          });
          const signature = value.map((raw) => raw?.versionstamp ?? "-").join(",");
          return { value, signature, nextExpiry };
        },
      },
      this.now,
    );
  }

  /** Commits after `after`, oldest first, from the change log (every namespace: filter by scope). */
  changes(after: string, limit: number): Promise<ChangePage> {
    if (this.observers.size === 0) return this.#changes(after, limit);
    return this.observers.observe(databaseOperation("changes"), () => this.#changes(after, limit));
  }

  #changes(after: string, limit: number): Promise<ChangePage> {
    this.assertOpen();
    return this.#driver.readChanges(after, limit);
  }

  /**
   * Calls `listener` with the size of each group of writes the driver commits in one
   * transaction (see `KvStorage.onCommitGroup`); never, on a driver that does not group them.
   */
  onCommitGroup(listener: (size: number) => void): () => void {
    return this.#driver.onCommitGroup?.(listener) ?? (() => {});
  }

  /** Calls `listener` after every commit. Returns the unsubscribe function. */
  onChange(listener: (change: ChangeEvent) => void): () => void {
    return this.#driver.onChange(listener);
  }

  /** A queue of this database (`queue` is its stored name), checked against `scope`. */
  queue(queue: Uint8Array, scope: Scope): QueueHandle {
    scope.prefixLength(queue);
    return new QueueHandle(this, this.#queues(), queue);
  }

  #queues(): KvQueueStore {
    if (!hasQueues(this.#driver))
      throw new KvError("UNSUPPORTED", "this database's driver has no queues");
    return this.#driver;
  }

  #assertRanges(ranges: readonly KeyRange[], scope: Scope): void {
    for (const range of ranges) scope.assertRange(range.start, range.end);
  }

  /** Whether writes to this key (its bytes without the namespace) keep values in history. */
  keepsValues(userKey: Uint8Array): boolean {
    for (const prefix of this.#keepValues) if (startsWith(userKey, prefix)) return true;
    return false;
  }

  /**
   * The stored names of the queues in `range` (which `scope` must allow) that hold any message,
   * in byte order, at most `limit`. `UNSUPPORTED` when the driver has no queues or cannot list
   * them.
   */
  listQueues(
    range: { start: Uint8Array; end: Uint8Array },
    scope: Scope,
    limit: number,
  ): Promise<Uint8Array[]> {
    if (this.observers.size === 0) return this.#listQueues(range, scope, limit);
    return this.observers.observe(rangeOperation("listQueues", range, scope), () =>
      this.#listQueues(range, scope, limit),
    );
  }

  #listQueues(
    range: { start: Uint8Array; end: Uint8Array },
    scope: Scope,
    limit: number,
  ): Promise<Uint8Array[]> {
    this.assertOpen();
    this.#assertRanges([range], scope);
    const store = this.#queues();
    if (!store.listQueues)
      throw new KvError("UNSUPPORTED", "this database's driver cannot list its queues");
    return store.listQueues(range, limit);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      if (this.#sweeper) clearInterval(this.#sweeper);
      this.hub.close();
      this.events.close();
      // Commits made before close() that were still reading what their indexes need go first.
      await this.indexes?.idle();
      await this.#driver.close();
    })();
    return this.#closing;
  }
}

/**
 * Operand of `sum`/`min`/`max`: a `KvU64` or a bigint in its range, for a `KvU64` value; or a
 * finite number, for a plain number value (Redis' INCRBY and INCRBYFLOAT).
 */
export function numericOperand(type: string, value: unknown): bigint | number {
  if (value instanceof KvU64) return value.value;
  if (typeof value === "bigint") return new KvU64(value).value;
  if (typeof value === "number" && Number.isFinite(value)) return value;
  fail(
    "INVALID_MUTATION",
    `'${type}' takes a KvU64 or a bigint (for a KvU64), or a finite number (for a number), got ${describe(value)}`,
  );
}

/** Items of `append`/`prepend`: an array, stored encoded. */
export function arrayOperand(db: Database, type: string, items: unknown): RawValue {
  if (!Array.isArray(items))
    fail("INVALID_MUTATION", `'${type}' takes an array of items, got ${describe(items)}`);
  return db.encodeValue(items);
}
