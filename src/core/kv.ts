/**
 * `Kv`: the public API, the same over every driver. A `Kv` is a view of one namespace of a
 * database; `kv.namespace(name)` returns another view of the same database.
 */
import type { KvKey } from "../codec/key.js";
import { decodeValue } from "../codec/value.js";
import { assertVersionstamp, NEWEST_VERSIONSTAMP } from "../codec/versionstamp.js";
import type { Filter, RawEntry } from "../contract/index.js";
import { describe, fail } from "../errors.js";
import { AtomicOperation, COMMIT_VERSIONSTAMP } from "./atomic.js";
import type { Database } from "./database.js";
import { takeDecoded } from "./decoded.js";
import { batchStream } from "./events/batches.js";
import {
  assertSubscribeOptions,
  eventStream,
  type KvEvent,
  type KvEventListenerOptions,
  type KvEventStreamOptions,
  type KvPattern,
  type KvProgress,
  kvEventOf,
  listen,
} from "./events/index.js";
import { ANY, compilePattern, REST } from "./events/pattern.js";
import type { IndexService, IndexWalk } from "./indexes/service.js";
import type {
  KvExplain,
  KvIndexInfo,
  KvIndexOptions,
  KvIndexSelector,
  KvSearchIndexInfo,
  KvSearchIndexOptions,
  KvSearchOptions,
  KvSearchResult,
} from "./indexes/types.js";
import { assertNamespaceName, Keyspace } from "./keyspace.js";
import {
  assertOptions,
  assertPositiveInteger,
  expiryFrom,
  SET_OPTIONS,
  writeInfoFrom,
} from "./limits.js";
import { encodeCursor, KvListIterator, rangeAfterCursor, resolveSelector } from "./list.js";
import { acquireLock, type KvLock, type KvLockOptions, runWithLock } from "./locks/index.js";
import type { KvObserver } from "./observe.js";
import {
  DEFAULT_QUEUE,
  type KvEnqueueOptions,
  type KvEnqueueResult,
  KvQueue,
  type ListenOptions,
  type QueueHandler,
} from "./queue.js";
import {
  type KvTransaction,
  type KvTransactionOptions,
  type KvTransactionResult,
  runTransaction,
} from "./transaction.js";
import type {
  KvCommitError,
  KvCommitResult,
  KvEntry,
  KvEntryMaybe,
  KvEntryMetadata,
  KvListOptions,
  KvListSelector,
  KvPage,
  KvReadOptions,
  KvRevision,
  KvSetOptions,
  KvWriteInfo,
} from "./types.js";
import type { ChangeBatch } from "./watch.js";
import { compileWhere, type KvWhere } from "./where/compile.js";

const READ_OPTIONS = ["consistency", "metadata"];
const PAGE_OPTIONS = ["limit", "cursor", "reverse", "metadata", "where"];
const LIST_OPTIONS = [...PAGE_OPTIONS, "batchSize", "consistency"];
const DEFAULT_BATCH = 100;
const EXPIRE_ATTEMPTS = 100;
const MAX_BATCH = 1000;
const DELETE_BATCH = 500;

const isIndexSelector = (selector: unknown): selector is KvIndexSelector =>
  typeof selector === "object" && selector !== null && "index" in selector;

const views = new WeakMap<Kv, { db: Database; keyspace: Keyspace }>();

/** @internal The database and keyspace behind a view; faces reach them through `surface.ts`. */
export function viewOf(kv: Kv): { db: Database; keyspace: Keyspace } {
  const view = views.get(kv);
  if (!view) fail("INVALID_ARGUMENT", `expected a Kv from openKv(), got ${describe(kv)}`);
  return view;
}

export class Kv implements AsyncDisposable {
  readonly #db: Database;
  readonly #keyspace: Keyspace;

  /** @internal Use `openKv()`. */
  constructor(db: Database, namespace = "") {
    this.#db = db;
    this.#keyspace = new Keyspace(namespace, db.limits);
    views.set(this, { db, keyspace: this.#keyspace });
  }

  /** The namespace this view reads and writes; `""` for the default one. */
  get namespaceName(): string {
    return this.#keyspace.namespace;
  }

  /**
   * Reads one key. Absent (or expired) keys give `{ key, value: null, versionstamp: null }`.
   *
   * @example
   * const { value, versionstamp } = await kv.get<User>(["users", id]);
   */
  get<T = unknown>(key: KvKey, options: KvReadOptions = {}): Promise<KvEntryMaybe<T>> {
    try {
      this.#db.assertOpen();
      assertOptions("get", options, READ_OPTIONS);
      const ranges = [this.#keyspace.encodePoint(key)];
      const read = { metadata: options.metadata === true };
      // In-process drivers answer at once: one promise per get instead of three.
      const answered = this.#db.readSync(ranges, this.#keyspace, read);
      if (answered) return Promise.resolve(this.#point<T>(answered, key));
      return this.#db
        .read(ranges, this.#keyspace, read)
        .then((result) => this.#point<T>(result, key));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #point<T>([entries]: RawEntry[][], key: KvKey): KvEntryMaybe<T> {
    const raw = entries?.[0];
    return raw ? this.#entry<T>(raw, key) : { key, value: null, versionstamp: null };
  }

  /**
   * Reads several keys from one snapshot, in the order given.
   *
   * @example
   * const [a, b] = await kv.getMany<[string, number]>([["a"], ["b"]]);
   */
  async getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: KvKey }],
    options: KvReadOptions = {},
  ): Promise<{ [K in keyof T]: KvEntryMaybe<T[K]> }> {
    this.#db.assertOpen();
    assertOptions("getMany", options, READ_OPTIONS);
    if (!Array.isArray(keys))
      fail("INVALID_ARGUMENT", `getMany takes an array of keys, got ${describe(keys)}`);
    if (keys.length > this.#db.limits.maxReadKeys) {
      fail(
        "INVALID_ARGUMENT",
        `getMany takes at most ${this.#db.limits.maxReadKeys} keys, got ${keys.length}`,
      );
    }
    const ranges = keys.map((key) => this.#keyspace.encodePoint(key));
    const results = await this.#db.read(ranges, this.#keyspace, {
      metadata: options.metadata === true,
    });
    return keys.map((key, i) => {
      const raw = results[i]?.[0];
      return raw ? this.#entry(raw, key) : { key, value: null, versionstamp: null };
    }) as { [K in keyof T]: KvEntryMaybe<T[K]> };
  }

  /**
   * Writes one key. `expireIn` (ms) makes it expire; `tags`, `modifiedBy` and `comment` go to
   * its metadata and history.
   *
   * @example
   * await kv.set(["session", token], data, { expireIn: 60_000 });
   */
  async set(key: KvKey, value: unknown, options: KvSetOptions = {}): Promise<KvCommitResult> {
    this.#db.assertOpen();
    const bytes = this.#keyspace.encode(key);
    const raw = this.#db.encodeValue(value);
    const now = this.#db.now();
    const expiresAt = expiryFrom(options.expireIn, now);
    const info = writeInfoFrom(options, SET_OPTIONS);
    const result = await this.#db.commit(
      {
        checks: [],
        mutations: [{ type: "set", key: bytes, value: raw, expiresAt, ...(info && { info }) }],
      },
      this.#keyspace,
      now,
    );
    return { ok: true, versionstamp: result!.versionstamp, uuids: [] };
  }

  /**
   * Changes when an entry expires without sending its value again: `expireIn` ms from now, or
   * never with `null`. It is a write (a new versionstamp and version; tags are kept), committed
   * only if the entry did not change meanwhile. Resolves `{ ok: false }` when the key is absent.
   *
   * @example
   * await kv.expire(["session", token], 15 * 60_000); // extend a session
   */
  async expire(
    key: KvKey,
    expireIn: number | null,
    info?: KvWriteInfo,
  ): Promise<KvCommitResult | KvCommitError> {
    this.#db.assertOpen();
    const point = this.#keyspace.encodePoint(key);
    const checked = writeInfoFrom(info);
    for (let attempt = 1; ; attempt++) {
      const now = this.#db.now();
      const expiresAt = expireIn === null ? null : expiryFrom(expireIn, now);
      const [[current] = []] = await this.#db.read([point], this.#keyspace);
      if (!current) return { ok: false };
      const result = await this.#db.commit(
        {
          checks: [{ key: current.key, versionstamp: current.versionstamp }],
          mutations: [
            {
              type: "set",
              key: current.key,
              value: current.value,
              expiresAt,
              ...(checked && { info: checked }),
            },
          ],
        },
        this.#keyspace,
        now,
      );
      if (result) return { ok: true, versionstamp: result.versionstamp, uuids: [] };
      // A write came between the read and the commit: read the entry again, a bounded number of times.
      if (attempt === EXPIRE_ATTEMPTS)
        fail("CONFLICT", `the entry changed under expire() ${EXPIRE_ATTEMPTS} times in a row`);
    }
  }

  /** Deletes one key; deleting an absent key is not an error. */
  async delete(key: KvKey, info?: KvWriteInfo): Promise<void> {
    this.#db.assertOpen();
    const bytes = this.#keyspace.encode(key);
    const checked = writeInfoFrom(info);
    await this.#db.commit(
      {
        checks: [],
        mutations: [{ type: "delete", key: bytes, ...(checked && { info: checked }) }],
      },
      this.#keyspace,
    );
  }

  /**
   * Iterates a range of keys in key order (or reverse), fetching `batchSize` at a time.
   *
   * @example
   * for await (const { key, value } of kv.list({ prefix: ["users"] }, { limit: 50 })) {}
   */
  list<T = unknown>(
    selector: KvListSelector | KvIndexSelector,
    options: KvListOptions = {},
  ): KvListIterator<T> {
    this.#db.assertOpen();
    assertOptions("list", options, LIST_OPTIONS);
    assertPositiveInteger("limit", options.limit);
    assertPositiveInteger("batchSize", options.batchSize, MAX_BATCH);
    if (isIndexSelector(selector)) return this.#listByIndex<T>(selector, options);
    const resolved = resolveSelector(selector, this.#keyspace);
    if (options.cursor !== undefined)
      rangeAfterCursor(resolved, options.cursor, options.reverse === true);
    const batchSize = options.batchSize ?? Math.min(options.limit ?? DEFAULT_BATCH, 500);
    const metadata = options.metadata === true;
    const where = this.#where(options.where);
    return new KvListIterator<T>(
      resolved,
      async (range, limit, reverse) => {
        this.#db.assertOpen();
        const read = { ...range, limit, reverse, ...(where && { where }) };
        const [entries = []] = await this.#db.read([read], this.#keyspace, { metadata });
        const filtered = where !== undefined;
        return entries.map((raw) => ({
          entry: this.#entry<T>(raw, undefined, filtered),
          key: raw.key,
        }));
      },
      {
        ...(options.limit !== undefined && { limit: options.limit }),
        ...(options.cursor !== undefined && { cursor: options.cursor }),
        reverse: options.reverse === true,
        batchSize,
      },
    );
  }

  /** `list()` walking an index: entries in the order of its fields' values, then of their keys. */
  #listByIndex<T>(selector: KvIndexSelector, options: KvListOptions): KvListIterator<T> {
    const engine = this.#indexes();
    const where = this.#where(options.where);
    const metadata = options.metadata === true;
    let walk: IndexWalk | null = null;
    return new KvListIterator<T>(
      async () => {
        walk = await engine.walk(this.#keyspace.namespace, selector);
        return { start: walk.start, end: walk.end, prefix: walk.prefix, common: walk.common };
      },
      async (range, limit, reverse) => {
        this.#db.assertOpen();
        const found = await walk!.pull(range, limit, reverse, where, metadata);
        return found.map(({ entry, key }) => ({
          entry: this.#entry<T>(entry, undefined, true),
          key,
        }));
      },
      {
        ...(options.limit !== undefined && { limit: options.limit }),
        ...(options.cursor !== undefined && { cursor: options.cursor }),
        reverse: options.reverse === true,
        batchSize: options.batchSize ?? Math.min(options.limit ?? DEFAULT_BATCH, 500),
      },
    );
  }

  #indexes(): IndexService {
    this.#db.assertOpen();
    return this.#db.indexService;
  }

  /**
   * Creates index `name` of this namespace on value `fields` of the entries under `prefix`, and
   * indexes the entries already there (a batch per commit, reporting progress; writers go on
   * meanwhile). From then on every write keeps it current in its own commit, and lists with a
   * where filter on its fields read it. A `unique` index refuses a write that would give two
   * entries the same values with `UNIQUE_VIOLATION`, writing nothing.
   *
   * @example
   * await kv.createIndex("byEmail", { prefix: ["users"], fields: ["email"], unique: true });
   * const { entries } = await kv.paginate({ prefix: ["users"] }, { where: { email: "ada@example.com" } });
   */
  createIndex(name: string, options: KvIndexOptions): Promise<KvIndexInfo> {
    return this.#indexes().createIndex(this.#keyspace.namespace, name, options);
  }

  /**
   * How `list(selector, { where })` would be answered: the index it would read, or `null` for a
   * scan of the range.
   *
   * @example
   * await kv.explain({ prefix: ["users"] }, { where: { email: "ada@example.com" } }); // { index: "byEmail", ordered: true, ranges: 1 }
   */
  async explain(selector: KvListSelector, options: { where?: KvWhere } = {}): Promise<KvExplain> {
    assertOptions("explain", options, ["where"]);
    const { start, end } = resolveSelector(selector, this.#keyspace);
    const where = this.#where(options.where);
    if (!where) return { index: null, ordered: false, ranges: 0 };
    return this.#indexes().explain({ start, end, limit: 1, reverse: false, where });
  }

  /** Drops index `name` of this namespace; `NOT_FOUND` when there is none. */
  dropIndex(name: string): Promise<void> {
    return this.#indexes().dropIndex(this.#keyspace.namespace, name);
  }

  /** The indexes of this namespace. */
  listIndexes(): Promise<KvIndexInfo[]> {
    return this.#indexes().listIndexes(this.#keyspace.namespace);
  }

  /**
   * Creates full-text search index `name` on the text `fields` of the entries under `prefix`,
   * and indexes the entries already there. Every write keeps it current in its own commit.
   *
   * @example
   * await kv.createSearchIndex("posts", { prefix: ["posts"], fields: ["title", "body"], tokenizer: "stemmed" });
   */
  createSearchIndex(name: string, options: KvSearchIndexOptions): Promise<KvSearchIndexInfo> {
    return this.#indexes().createSearchIndex(this.#keyspace.namespace, name, options);
  }

  /** Drops search index `name` of this namespace; `NOT_FOUND` when there is none. */
  dropSearchIndex(name: string): Promise<void> {
    return this.#indexes().dropSearchIndex(this.#keyspace.namespace, name);
  }

  /** The search indexes of this namespace. */
  listSearchIndexes(): Promise<KvSearchIndexInfo[]> {
    return this.#indexes().listSearchIndexes(this.#keyspace.namespace);
  }

  /**
   * Entries of search index `name` matching `query`, best first: words (all must match),
   * `"a phrase"`, `prefix*`, `-excluded`, `this OR that`. `where` filters the hits by value;
   * `highlight` returns snippets with the matches marked.
   *
   * @example
   * const { hits, cursor } = await kv.search("posts", 'sqlite "write ahead" -draft', { limit: 10, highlight: true });
   */
  async search<T = unknown>(
    name: string,
    query: string,
    options: KvSearchOptions = {},
  ): Promise<KvSearchResult<T>> {
    assertOptions("search", options, ["where", "limit", "cursor", "highlight", "metadata"]);
    const { hits, fields, cursor } = await this.#indexes().search(
      this.#keyspace.namespace,
      name,
      query,
      {
        where: this.#where(options.where),
        limit: options.limit ?? 20,
        cursor: options.cursor,
        highlight: options.highlight,
        metadata: options.metadata === true,
      },
    );
    return {
      hits: hits.map((hit) => {
        const entry = this.#entry<T>(hit.entry);
        if (!hit.highlights) return { ...entry, score: hit.score };
        const highlights: Record<string, string | null> = {};
        fields.forEach((field, i) => {
          highlights[field] = hit.highlights![i] ?? null;
        });
        return { ...entry, score: hit.score, highlights };
      }),
      cursor,
    };
  }

  /**
   * One page of a range: up to `limit` entries (default 100, at most 1000), and the cursor of
   * the next page, or `null` when this is the last.
   *
   * @example
   * let page = await kv.paginate({ prefix: ["logs"] }, { limit: 20 });
   * while (page.cursor) page = await kv.paginate({ prefix: ["logs"] }, { limit: 20, cursor: page.cursor });
   */
  async paginate<T = unknown>(
    selector: KvListSelector,
    options: {
      limit?: number;
      cursor?: string;
      reverse?: boolean;
      metadata?: boolean;
      where?: KvWhere;
    } = {},
  ): Promise<KvPage<T>> {
    this.#db.assertOpen();
    assertOptions("paginate", options, PAGE_OPTIONS);
    assertPositiveInteger("limit", options.limit, MAX_BATCH);
    const limit = options.limit ?? DEFAULT_BATCH;
    const resolved = resolveSelector(selector, this.#keyspace);
    const reverse = options.reverse === true;
    const range = rangeAfterCursor(resolved, options.cursor, reverse);
    const where = this.#where(options.where);
    const [raws = []] = await this.#db.read(
      [{ ...range, limit: limit + 1, reverse, ...(where && { where }) }],
      this.#keyspace,
      { metadata: options.metadata === true },
    );
    const hasMore = raws.length > limit;
    const page = raws.slice(0, limit);
    const last = page.at(-1);
    return {
      entries: page.map((raw) => this.#entry<T>(raw, undefined, where !== undefined)),
      cursor: hasMore && last ? encodeCursor(resolved, last.key) : null,
      hasMore,
    };
  }

  /** Number of live entries the selector covers (that match `options.where`, when given). */
  async count(selector: KvListSelector, options: { where?: KvWhere } = {}): Promise<number> {
    this.#db.assertOpen();
    assertOptions("count", options, ["where"]);
    const { start, end } = resolveSelector(selector, this.#keyspace);
    const where = this.#where(options.where);
    return this.#db.count({ start, end, ...(where && { where }) }, this.#keyspace);
  }

  /** A user's where filter, compiled against this moment (for `$now`). */
  #where(where: KvWhere | undefined): Filter | undefined {
    return where === undefined ? undefined : compileWhere(where, this.#db.now());
  }

  /**
   * Deletes every entry the selector covers, in atomic batches of up to 500 keys; resolves to
   * how many it deleted. A concurrent writer may add keys behind it: the whole call is not one
   * transaction, each batch is.
   */
  async deleteMany(selector: KvListSelector, info?: KvWriteInfo): Promise<number> {
    this.#db.assertOpen();
    const { start, end } = resolveSelector(selector, this.#keyspace);
    return this.#deleteRange(this.#keyspace, start, end, writeInfoFrom(info));
  }

  /**
   * Puts a message on the namespace's default queue (Deno KV's `enqueue`). See {@link KvQueue}
   * for named queues and the lower-level API.
   *
   * @example
   * await kv.enqueue({ kind: "welcome", user: id }, { delay: 60_000, keysIfUndelivered: [["failed", id]] });
   */
  async enqueue(value: unknown, options?: KvEnqueueOptions): Promise<KvEnqueueResult> {
    return this.queue(DEFAULT_QUEUE).enqueue(value, options);
  }

  /**
   * Delivers the default queue's messages to `handler` (Deno KV's `listenQueue`), at least once:
   * a handler that throws is retried on the message's backoff schedule, then the message is
   * dead-lettered and its value written to its `keysIfUndelivered`. Resolves when the database
   * closes or `signal` aborts.
   */
  async listenQueue<T = unknown>(handler: QueueHandler<T>, options?: ListenOptions): Promise<void> {
    return this.queue<T>(DEFAULT_QUEUE).listen(handler, options);
  }

  /** A named queue of this namespace. */
  queue<T = unknown>(name: string): KvQueue<T> {
    this.#db.assertOpen();
    return new KvQueue<T>(this.#db, this.#keyspace, name);
  }

  /**
   * A placeholder for the commit's own versionstamp, usable as the last part of a key set in an
   * atomic operation (Deno KV's `kv.commitVersionstamp()`).
   *
   * @example
   * await kv.atomic().set(["log", kv.commitVersionstamp()], event).commit();
   */
  commitVersionstamp(): typeof COMMIT_VERSIONSTAMP {
    return COMMIT_VERSIONSTAMP;
  }

  /** Starts an atomic operation. */
  atomic(): AtomicOperation {
    this.#db.assertOpen();
    return new AtomicOperation(this.#db, this.#keyspace);
  }

  /**
   * Runs `fn` with tracked reads and buffered writes, commits them atomically, and retries the
   * whole function on conflict.
   *
   * @example
   * const res = await kv.transaction(async (tx) => {
   *   const from = await tx.get<number>(["balance", "a"]);
   *   tx.set(["balance", "a"], (from.value ?? 0) - 10);
   *   return from.value;
   * });
   */
  transaction<R>(
    fn: (tx: KvTransaction) => R | Promise<R>,
    options?: KvTransactionOptions,
  ): Promise<KvTransactionResult<R>> {
    return runTransaction(this.#db, this.#keyspace, fn, options);
  }

  /**
   * Takes lock `name` of this namespace for `ttl` ms (default 30 s), renewed every third of that
   * while held. Fails with `LOCK_HELD` when another holder has it, at once or after waiting up to
   * `wait` ms. The lock's `token` grows with every acquisition: fence writes with
   * `atomic().checkLock(lock)`, which commit only while the lease is still this holder's.
   *
   * @example
   * await using lock = await kv.lock("billing", { ttl: 10_000, wait: 5_000 });
   * await kv.atomic().checkLock(lock).set(["billing", "run"], Date.now()).commit();
   */
  lock(name: string, options?: KvLockOptions): Promise<KvLock> {
    return acquireLock(this.#db, this.#keyspace.namespace, name, options);
  }

  /**
   * Runs `fn` holding lock `name` (see {@link lock}) and releases the lock after, whether `fn`
   * returned or threw. `lock.signal` aborts if the lease is lost meanwhile.
   *
   * @example
   * await kv.withLock("migrate", async (lock) => migrate(kv, lock), { wait: 60_000 });
   */
  withLock<R>(
    name: string,
    fn: (lock: KvLock) => R | Promise<R>,
    options?: KvLockOptions,
  ): Promise<R> {
    return runWithLock(this.#db, this.#keyspace.namespace, name, fn, options);
  }

  /**
   * A stream that emits the current entries of `keys` at once, then again after each commit or
   * expiry that changes any of them, never the same state twice in a row. A reader that falls
   * behind skips to the latest state; a reader that keeps up gets the state each write through
   * this database left, when each write is acknowledged before the next starts (a write
   * resolves once watchers of its keys have read it). Commits that land together (group-committed
   * in one tick, or other processes' between two reads) may show as one emission. Cancel the
   * stream (or close the database) to stop.
   *
   * @example
   * for await (const [config] of kv.watch([["config"]])) apply(config.value);
   */
  watch<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: KvKey }],
    options: { metadata?: boolean } = {},
  ): ReadableStream<{ [K in keyof T]: KvEntryMaybe<T[K]> }> {
    this.#db.assertOpen();
    assertOptions("watch", options, ["metadata"]);
    if (!Array.isArray(keys))
      fail("INVALID_ARGUMENT", `watch takes an array of keys, got ${describe(keys)}`);
    if (keys.length > this.#db.limits.maxReadKeys) {
      fail("INVALID_ARGUMENT", `watch takes at most ${this.#db.limits.maxReadKeys} keys`);
    }
    const ranges = keys.map((key) => this.#keyspace.encodePoint(key));
    type Entries = { [K in keyof T]: KvEntryMaybe<T[K]> };
    return this.#db.watch(ranges, this.#keyspace, options).pipeThrough(
      new TransformStream<(RawEntry | null)[], Entries>({
        transform: (raws, controller) => {
          controller.enqueue(
            keys.map((key, i) => {
              const raw = raws[i];
              return raw ? this.#entry(raw, key) : { key, value: null, versionstamp: null };
            }) as Entries,
          );
        },
      }),
    );
  }

  /**
   * A stream of the commits that change keys under `prefix` (keys longer than it, as `list`
   * selects them): one batch per commit, oldest first, with the entry each changed key had after
   * that commit, in key order.
   * Starts after the latest commit, or after `options.after` (a versionstamp from an earlier
   * batch) to resume without missing a commit while the change log still holds it.
   *
   * @example
   * for await (const { versionstamp, entries } of kv.watchPrefix(["orders"])) save(versionstamp, entries);
   */
  watchPrefix<T = unknown>(
    prefix: KvKey,
    options: { after?: string; metadata?: boolean } = {},
  ): ReadableStream<ChangeBatch<KvEntryMaybe<T>>> {
    this.#db.assertOpen();
    assertOptions("watchPrefix", options, ["after", "metadata"]);
    if (options.after !== undefined) assertVersionstamp(options.after);
    this.#keyspace.encodeBound(prefix);
    const pattern = compilePattern([...prefix, ANY, REST], this.#keyspace.prefix);
    const metadata = options.metadata === true;
    return batchStream<KvEntryMaybe<T>>({
      hub: this.#db.events,
      pattern,
      after: options.after ?? undefined,
      head: () => this.currentVersionstamp(),
      entry: (event, raw) => {
        const { key, entry } = event.as(kvEventOf) as KvEvent<T>;
        if (!raw || !entry) return { key, value: null, versionstamp: null };
        return metadata ? entry : { key, value: entry.value, versionstamp: entry.versionstamp };
      },
    });
  }

  /**
   * Calls `listener` with an event for every change to a key matching `pattern` (see
   * {@link KvPattern}: `ANY` matches one part, a last `REST` zero or more), in commit order.
   * With `since`, first replays the matching events after that versionstamp. Returns the
   * unsubscribe function.
   *
   * @example
   * const stop = kv.subscribe(["users", ANY, "settings"], (event) => {
   *   console.log(event.type, event.key, event.previous?.value, "→", event.entry?.value);
   * });
   */
  subscribe<T = unknown>(
    pattern: KvPattern,
    listener: (event: KvEvent<T>) => void,
    options: KvEventListenerOptions = {},
  ): () => void {
    this.#db.assertOpen();
    assertOptions("subscribe", options, ["since", "progressInterval", "onProgress", "onError"]);
    assertSubscribeOptions(options);
    const compiled = compilePattern(pattern, this.#keyspace.prefix);
    return listen(this.#db.events, compiled, listener, options);
  }

  /**
   * The events of {@link subscribe} as a stream (an async iterable), with progress markers
   * (`{ type: "progress", versionstamp }`) after `progressInterval` ms of quiet when asked for.
   * A reader more than `bufferSize` events behind gets `SLOW_CONSUMER`, naming where to resume.
   *
   * @example
   * for await (const event of kv.events(["orders", REST], { since })) handle(event);
   */
  events<T = unknown>(
    pattern: KvPattern,
    options: KvEventStreamOptions = {},
  ): ReadableStream<KvEvent<T> | KvProgress> {
    this.#db.assertOpen();
    assertOptions("events", options, ["since", "progressInterval", "bufferSize"]);
    assertSubscribeOptions(options);
    const compiled = compilePattern(pattern, this.#keyspace.prefix);
    return eventStream<T>(this.#db.events, compiled, options);
  }

  /** The versionstamp of the database's latest commit (etcd's revision), in any namespace. */
  async currentVersionstamp(): Promise<string> {
    this.#db.assertOpen();
    return (await this.#db.changes(NEWEST_VERSIONSTAMP, 0)).head;
  }

  /** Past revisions of `key`, newest first (the current one included). */
  async history<T = unknown>(
    key: KvKey,
    options: { limit?: number } = {},
  ): Promise<KvRevision<T>[]> {
    this.#db.assertOpen();
    assertOptions("history", options, ["limit"]);
    assertPositiveInteger("limit", options.limit, 10_000);
    const stored = this.#keyspace.encode(key);
    const revisions = await this.#db.history(stored, this.#keyspace, {
      limit: options.limit ?? 100,
    });
    return revisions.map((r) => ({
      version: r.version,
      versionstamp: r.versionstamp,
      timestamp: r.timestamp,
      modifiedBy: r.modifiedBy,
      comment: r.comment,
      dataHash: r.dataHash,
      ...(r.value !== undefined && { value: decodeValue(r.value) as T }),
    }));
  }

  /**
   * A view of the same database confined to namespace `name`: its keys, lists, counts and
   * watches never see another namespace's. Names are 1–256 characters, without NUL, not
   * starting with `$`.
   */
  namespace(name: string): Kv {
    assertNamespaceName(name);
    if (this.#keyspace.namespace !== "") {
      fail(
        "INVALID_ARGUMENT",
        `namespaces do not nest: this Kv is namespace ${JSON.stringify(this.#keyspace.namespace)}; call namespace() on the root Kv, or (remote) openKv the URL again with { namespace }`,
      );
    }
    return new Kv(this.#db, name);
  }

  /**
   * Drops namespace `name`, in one storage transaction: every entry (expired ones too) with its
   * revision history, and every message of its queues (pending, delayed, leased or dead) with
   * their dedup keys. Watchers of its keys see them deleted. Resolves to the number of live
   * entries removed.
   */
  async dropNamespace(name: string): Promise<number> {
    this.#db.assertOpen();
    assertNamespaceName(name);
    if (this.#keyspace.namespace !== "") {
      fail(
        "INVALID_ARGUMENT",
        `a namespace cannot drop another: this Kv is namespace ${JSON.stringify(this.#keyspace.namespace)}; call dropNamespace() on the root Kv (remote: with a token for every namespace)`,
      );
    }
    const keyspace = new Keyspace(name, this.#db.limits);
    return this.#db.purgeNamespace(keyspace.prefix, keyspace);
  }

  /** Runs the expiry sweeper now; resolves to how many expired entries it deleted. */
  sweepExpired(): Promise<number> {
    this.#db.assertOpen();
    return this.#db.sweep();
  }

  /**
   * Calls `observer` synchronously as each operation of this database starts — through any
   * view, any face (the HTTP routes, the driver protocol, KV Connect), reads, commits, queue
   * calls — with what it is (`op`, `namespace`, `keyCount`, `keys()`); the function it returns,
   * if any, is called as the operation ends, with `{ ok, code?, error?, durationMs }`. An
   * observer that throws is reported as a process warning and the operation goes on. Returns
   * the function that removes it. `withLogging` and `withMetrics` (`cellar/observe`) are
   * observers.
   *
   * @example
   * const stop = kv.observe(({ op, namespace }) => {
   *   const started = Date.now();
   *   return ({ ok, code }) => console.log(op, namespace, ok ? "ok" : code, Date.now() - started);
   * });
   */
  observe(observer: KvObserver): () => void {
    return this.#db.observers.add(observer);
  }

  /** Closes the database (every view of it) after pending writes finish. */
  close(): Promise<void> {
    return this.#db.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #deleteRange(
    keyspace: Keyspace,
    start: Uint8Array,
    end: Uint8Array,
    info: KvWriteInfo | undefined,
  ): Promise<number> {
    let deleted = 0;
    for (;;) {
      const [batch = []] = await this.#db.read(
        [{ start, end, limit: DELETE_BATCH, reverse: false }],
        keyspace,
      );
      if (batch.length === 0) return deleted;
      await this.#db.commit(
        {
          checks: [],
          mutations: batch.map((raw) => ({
            type: "delete" as const,
            key: raw.key,
            ...(info && { info }),
          })),
        },
        keyspace,
      );
      deleted += batch.length;
      if (batch.length < DELETE_BATCH) return deleted;
    }
  }

  /**
   * The entry of a raw one. `filtered`: it came through a where filter, which may have decoded
   * its value already (an index's candidate, see `decoded.ts`); point reads never look.
   */
  #entry<T>(raw: RawEntry, key?: KvKey, filtered = false): KvEntry<T> {
    const taken = filtered ? takeDecoded(raw) : null;
    const entry: KvEntry<T> = {
      key: key ?? this.#keyspace.decode(raw.key),
      value: (taken ? taken.value : decodeValue(raw.value)) as T,
      versionstamp: raw.versionstamp,
    };
    if (!raw.meta) return entry;
    const metadata: KvEntryMetadata = { ...raw.meta, expiresAt: raw.expiresAt };
    return { ...entry, metadata };
  }
}
