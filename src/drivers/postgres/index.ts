/**
 * The PostgreSQL driver (node-postgres). Any number of processes may open one database: commits
 * are serialised by a commit lock in the database, so versionstamps increase strictly across
 * all of them, and each process learns of the others' commits through LISTEN/NOTIFY and the
 * change log, which records each key's entry before and after every commit (see `feed.ts`).
 *
 * - Commits: group commit in one transaction per event-loop turn, in one statement when the
 *   state of every key it touches is cached (see `group.ts`).
 * - Reads: one statement (on a connection held for them while idle, see `reader.ts`),
 *   or one REPEATABLE READ transaction when several ranges must come from one snapshot;
 *   expired entries are filtered in SQL.
 * - Queues: `FOR UPDATE SKIP LOCKED` leases (see `queues.ts`).
 * - Search: tsvector and pg_trgm documents stored in the commit of their write (see `search.ts`).
 * - Tables live in one schema (`?schema=` in the URL or the `schema` option, default
 *   `public`), created and migrated by the driver (see `schema.ts`).
 *
 * Every statement is parameterized; the schema name, the only identifier that varies, is
 * checked to be a plain identifier and quoted.
 */

import { randomBytes } from "node:crypto";
import pg from "pg";
import { keyId } from "../../codec/key.js";
import { formatVersionstamp, parseVersionstamp } from "../../codec/versionstamp.js";
import { DEFAULT_CHANGE_LOG_SIZE, DEFAULT_HISTORY_DEPTH, sha256 } from "../../contract/apply.js";
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
  KeyRange,
  KvDriver,
  RawEntry,
  RawRevision,
  ReadOptions,
  ReadRange,
  SearchHit,
  SearchIndexSpec,
  SearchRequest,
  Settlement,
} from "../../contract/index.js";
import { KvError, redactUrl } from "../../errors.js";
import { isPoint, prefixEnd } from "../shared/range.js";
import { backupPostgres } from "./backup.js";
import { CHANGE_COLUMNS } from "./change-log.js";
import { keysOf, uniqueKeys } from "./commit.js";
import { type CommitSql, commitSql } from "./commit-sql.js";
import { connectionLost, RECONNECT_WINDOW, reconnectDelay, unavailable } from "./faults.js";
import { ChangeFeed, feedSql, type SinceRow, sinceChanges } from "./feed.js";
import { Committer } from "./group.js";
import { PostgresQueues, queueSql } from "./queues.js";
import { Reader } from "./reader.js";
import {
  BASE_COLUMNS,
  entryOf,
  type KvRow,
  live,
  META_COLUMNS,
  pipeline,
  rawValueOf,
  statement,
  TYPES,
} from "./rows.js";
import { channelOf, migrate, quoteSchema } from "./schema.js";
import { PostgresSearch } from "./search.js";
import { PostgresWhere } from "./where.js";

export interface PostgresDriverOptions extends DriverOptions {
  /** The schema holding Cellar's tables (default: the URL's `schema` parameter, else `public`). */
  readonly schema?: string;
  /**
   * Connections in the pool (default 8), one of them kept for single-statement reads when there
   * are at least two; one more listens for other processes' commits.
   */
  readonly poolSize?: number;
  /**
   * Bytes of recently used entries kept in memory (default 32 MiB), so that commits on them
   * skip a round trip; 0 turns the cache off.
   */
  readonly cacheSize?: number;
}

/**
 * Opens (creating or upgrading its tables if needed) a database in a PostgreSQL schema.
 *
 * @example
 * const kv = await openKv("postgres://app@db.internal:5432/app?schema=cellar");
 */
export async function postgresDriver(
  url: string,
  options: PostgresDriverOptions = {},
): Promise<KvDriver> {
  const { connectionString, schema } = parseUrl(url, options.schema);
  const s = quoteSchema(schema);
  const size = options.poolSize ?? 8;
  if (!Number.isSafeInteger(size) || size < 1) {
    throw new KvError("INVALID_ARGUMENT", `poolSize is a positive integer, got ${size}`);
  }
  const warm = Math.min(2, size);
  const pool = new pg.Pool({
    connectionString,
    max: size,
    min: warm,
    pipeline: true,
    types: TYPES,
    allowExitOnIdle: true,
  } as pg.PoolConfig);
  // An idle connection that breaks is replaced on next use; the pool must not crash the process.
  pool.on("error", () => undefined);
  // Nor may one in use: a terminated backend's FATAL, or the reset that follows it, arrives as an
  // `error` event when no query is waiting for it. The next query on it fails and drops it.
  pool.on("connect", (client) => client.on("error", () => undefined));
  const origin = randomBytes(8).toString("hex");
  const feed = new ChangeFeed(
    pool,
    { connectionString },
    feedSql(s),
    channelOf(schema),
    origin,
    options.cacheSize ?? 32 * 2 ** 20,
  );
  try {
    const client = await pool.connect();
    try {
      await migrate(client, schema);
    } finally {
      client.release();
    }
    // Readers and the committer each find a connection ready instead of waiting for a new one.
    const ready = await Promise.all(Array.from({ length: warm }, () => pool.connect()));
    for (const connection of ready) connection.release();
    await feed.start();
  } catch (cause) {
    await feed.close();
    await pool.end().catch(() => undefined);
    if (cause instanceof KvError) throw cause;
    throw new KvError(
      "STORAGE_ERROR",
      `cannot open PostgreSQL database ${redactUrl(url)}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  return new PostgresDriver(pool, feed, s, schema, options);
}

function parseUrl(
  url: string,
  schema: string | undefined,
): { connectionString: string; schema: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new KvError(
      "INVALID_ARGUMENT",
      "a PostgreSQL URL looks like postgres://user@host:5432/database",
    );
  }
  const fromUrl = parsed.searchParams.get("schema");
  parsed.searchParams.delete("schema");
  // Every statement is named and written for a generic plan; left to choose, PostgreSQL keeps
  // planning the commit statement on each run, because the plan cannot see how short its arrays are.
  const startup = parsed.searchParams.get("options");
  parsed.searchParams.set(
    "options",
    `${startup ? `${startup} ` : ""}-c plan_cache_mode=force_generic_plan`,
  );
  return { connectionString: parsed.toString(), schema: schema ?? fromUrl ?? "public" };
}

function readSql(s: string) {
  const kv = `${s}.cellar_kv`;
  const range = (name: string, columns: string, order: string) =>
    statement(
      name,
      `SELECT ${columns} FROM ${kv} WHERE key >= $1 AND key < $2 AND ${live(3)} ORDER BY key ${order} LIMIT $4`,
    );
  // A join against unnest() plans as index lookups, where `key = ANY($1)` may not.
  const points = (name: string, columns: string) =>
    statement(
      name,
      `SELECT ${columns} FROM unnest($1::bytea[]) AS u(k) JOIN ${kv} ON key = u.k WHERE ${live(2)}`,
    );
  const point = (name: string, columns: string) =>
    statement(name, `SELECT ${columns} FROM ${kv} WHERE key = $1 AND ${live(2)}`);
  return {
    point: point("cellar_point", BASE_COLUMNS),
    pointMeta: point("cellar_point_meta", META_COLUMNS),
    points: points("cellar_points", BASE_COLUMNS),
    pointsMeta: points("cellar_points_meta", META_COLUMNS),
    range: range("cellar_range", BASE_COLUMNS, "ASC"),
    rangeMeta: range("cellar_range_meta", META_COLUMNS, "ASC"),
    rangeDesc: range("cellar_range_desc", BASE_COLUMNS, "DESC"),
    rangeDescMeta: range("cellar_range_desc_meta", META_COLUMNS, "DESC"),
    count: statement(
      "cellar_count",
      `SELECT count(*) AS n FROM ${kv} WHERE key >= $1 AND key < $2 AND ${live(3)}`,
    ),
    history: statement(
      "cellar_history",
      `SELECT 0 AS src, revision, vs, updated_at AS timestamp, modified_by, comment, data_hash, value_json, value_bin, encoding
        FROM ${kv} WHERE key = $1 AND ${live(2)}
      UNION ALL
      (SELECT 1, revision, vs, timestamp, modified_by, comment, data_hash, value_json, value_bin, encoding
        FROM ${s}.cellar_history WHERE key = $1 ORDER BY vs DESC LIMIT $3)
      ORDER BY src, vs DESC`,
    ),
    changes: statement(
      "cellar_changes",
      `SELECT h.value AS head, p.value AS pruned, c.*
      FROM ${s}.cellar_meta h CROSS JOIN ${s}.cellar_meta p
      LEFT JOIN LATERAL (
        SELECT ${CHANGE_COLUMNS} FROM ${s}.cellar_changes WHERE vs > $1 AND vs <= (
          SELECT max(vs) FROM (SELECT DISTINCT vs FROM ${s}.cellar_changes WHERE vs > $1 ORDER BY vs LIMIT $2) d)
        ORDER BY vs, key
      ) c ON true
      WHERE h.name = 'version' AND p.name = 'pruned'`,
    ),
  };
}

interface HistoryRow {
  src: number;
  revision: number;
  vs: number;
  timestamp: number;
  modified_by: string | null;
  comment: string | null;
  data_hash: string | null;
  value_json: string | null;
  value_bin: Buffer | null;
  encoding: number | null;
}

class PostgresDriver implements KvDriver {
  readonly #pool: pg.Pool;
  readonly #reader: Reader;
  readonly #feed: ChangeFeed;
  readonly #sql: ReturnType<typeof readSql>;
  readonly #where: PostgresWhere;
  readonly #committer: Committer;
  readonly #commitSql: CommitSql;
  readonly #queues: PostgresQueues;
  readonly #search: PostgresSearch;
  readonly #depth: number;
  readonly #schema: string;
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(
    pool: pg.Pool,
    feed: ChangeFeed,
    s: string,
    schema: string,
    options: PostgresDriverOptions,
  ) {
    this.#pool = pool;
    this.#schema = schema;
    this.#reader = new Reader(pool);
    this.#feed = feed;
    this.#sql = readSql(s);
    this.#where = new PostgresWhere(s);
    this.#depth = options.historyDepth ?? DEFAULT_HISTORY_DEPTH;
    this.#commitSql = commitSql(s);
    this.#search = new PostgresSearch(s, schema, {
      read: (query) => this.#query(query),
      transaction: (work) => this.#committer.transaction(work),
    });
    this.#committer = new Committer({
      pool,
      sql: this.#commitSql,
      feed,
      channel: channelOf(schema),
      batch: {
        depth: this.#depth,
        hash: options.hash ?? sha256,
        ...(options.maxValueSize !== undefined && { maxValueSize: options.maxValueSize }),
        search: this.#search,
      },
      logSize: options.changeLogSize ?? DEFAULT_CHANGE_LOG_SIZE,
      logAge: options.changeLogAge ?? 0,
    });
    this.#queues = new PostgresQueues(queueSql(s), this.#committer);
  }

  async snapshotRead(ranges: readonly ReadRange[], options: ReadOptions): Promise<RawEntry[][]> {
    this.#assertOpen();
    const meta = options.metadata === true;
    const out: RawEntry[][] = ranges.map(() => []);
    const wanted = [...ranges.keys()].filter(
      (i) => ranges[i]!.limit > 0 && Buffer.compare(ranges[i]!.start, ranges[i]!.end) < 0,
    );
    if (wanted.length === 0) return out;
    if (wanted.some((i) => ranges[i]!.where))
      return this.#readFiltered(ranges, wanted, out, meta, options.now);
    if (wanted.every((i) => isPoint(ranges[i]!.start, ranges[i]!.end))) {
      const keys = wanted.map((i) => ranges[i]!.start);
      const { rows } = await this.#query(
        keys.length === 1
          ? (meta ? this.#sql.pointMeta : this.#sql.point)(keys[0], options.now)
          : (meta ? this.#sql.pointsMeta : this.#sql.points)(keys, options.now),
      );
      const found = new Map((rows as KvRow[]).map((row) => [keyId(row.key), entryOf(row, meta)]));
      for (const i of wanted) {
        const entry = found.get(keyId(ranges[i]!.start));
        if (entry) out[i] = [entry];
      }
      return out;
    }
    const queries = wanted.map((i) => this.#rangeQuery(ranges[i]!, options.now, meta));
    const results =
      queries.length === 1 ? [await this.#query(queries[0]!)] : await this.#snapshot(queries);
    wanted.forEach((i, n) => {
      out[i] = (results[n]!.rows as KvRow[]).map((row) => entryOf(row, meta));
    });
    return out;
  }

  /**
   * Reads with a filter: one statement for a single range when its first batch settles the
   * page, else every range in one REPEATABLE READ transaction, batch after batch.
   */
  async #readFiltered(
    ranges: readonly ReadRange[],
    wanted: readonly number[],
    out: RawEntry[][],
    meta: boolean,
    now: number,
  ): Promise<RawEntry[][]> {
    const only = wanted.length === 1 ? ranges[wanted[0]!]! : null;
    if (only?.where) {
      const read = (query: pg.QueryConfig) => this.#query(query);
      const entries = await this.#where.read(read, { ...only, where: only.where }, now, meta, true);
      if (entries) {
        out[wanted[0]!] = entries;
        return out;
      }
    }
    return this.#committer.transaction(
      async (client) => {
        const read = (query: pg.QueryConfig) => client.query(query);
        await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
        for (const i of wanted) {
          const range = ranges[i]!;
          out[i] = range.where
            ? (await this.#where.read(read, { ...range, where: range.where }, now, meta, false))!
            : ((await read(this.#rangeQuery(range, now, meta))).rows as KvRow[]).map((row) =>
                entryOf(row, meta),
              );
        }
        await client.query("COMMIT");
        return out;
      },
      { idempotent: true },
    );
  }

  async count(range: KeyRange & { where?: Filter }, options: ReadOptions): Promise<number> {
    this.#assertOpen();
    if (range.where) {
      const read = (query: pg.QueryConfig) => this.#query(query);
      return this.#where.count(read, range, range.where, options.now);
    }
    const { rows } = await this.#query(this.#sql.count(range.start, range.end, options.now));
    return (rows[0] as { n: number }).n;
  }

  atomicWrite(write: AtomicWrite): Promise<CommitResult | null> {
    // Documents of an index this process has not seen yet (made by another): learn it first.
    if (write.searchDocs?.length && !this.#search.knows(write.searchDocs)) {
      return this.#ifOpen(async () => {
        await this.#search.refresh();
        return this.#write(write);
      });
    }
    return this.#ifOpen(() => this.#write(write));
  }

  #write(write: AtomicWrite): Promise<CommitResult | null> {
    if (write.rangeChecks?.length) return this.#writeCounted(write);
    return this.#committer.write(write);
  }

  /**
   * A write with range checks, in a transaction of its own: the ranges are counted under the
   * commit lock, in the round trip that reads the write's keys, so no commit comes between the
   * counts and the write.
   */
  #writeCounted(write: AtomicWrite): Promise<CommitResult | null> {
    const checks = write.rangeChecks ?? [];
    return this.#committer.transaction(async (client) => {
      const opened = await this.#committer.open(client, {
        begin: true,
        keys: uniqueKeys(keysOf(write.checks, write.mutations).keys),
        valueKeys: keysOf([], write.mutations).valueKeys,
        dedup: (write.enqueues ?? []).flatMap((e) =>
          e.dedup ? [{ queue: e.queue, key: e.dedup.key }] : [],
        ),
        extra: checks.map((c) => this.#sql.count(c.start, c.end, write.now)),
      });
      const counted = opened.extra.every(
        (result, i) => Number((result.rows[0] as { n: string }).n) === checks[i]!.count,
      );
      const done = counted
        ? opened.batch.commit(
            write.checks,
            write.mutations,
            write.now,
            write.enqueues,
            false,
            write.searchDocs,
          )
        : null;
      await this.#committer.finish(client, opened, []);
      if (!done) return null;
      return write.enqueues?.length
        ? { versionstamp: done.versionstamp, enqueued: done.enqueued }
        : { versionstamp: done.versionstamp };
    });
  }

  async history(
    key: Uint8Array,
    { limit, now, withValues }: { limit: number; now: number; withValues: boolean },
  ): Promise<RawRevision[]> {
    this.#assertOpen();
    const max = Math.min(limit, this.#depth);
    if (max <= 0) return [];
    const { rows } = await this.#query(this.#sql.history(key, now, max));
    return (rows as HistoryRow[])
      .slice(0, max)
      .map((row) => revisionOf(row, row.src === 0 ? withValues : true));
  }

  deleteExpired(now: number, limit: number): Promise<number> {
    return this.#ifOpen(() => this.#committer.expire(now, limit));
  }

  /**
   * One transaction under the commit lock: the range's entries are deleted as one commit (its
   * change event names them), then their history, queues and dedup keys go in the same round
   * trip as that commit's statement.
   */
  purge(prefix: Uint8Array, now: number): Promise<number> {
    const end = prefixEnd(prefix);
    const sql = this.#commitSql;
    return this.#ifOpen(() =>
      this.#committer.transaction(async (client) => {
        const opened = await this.#committer.open(client, {
          begin: true,
          keys: [],
          valueKeys: [],
          dedup: [],
          extra: [sql.inRange(prefix, end)],
        });
        const live = opened.batch.purge(opened.extra[0]!.rows as KvRow[], now);
        await this.#committer.finish(client, opened, [
          sql.purgeSearch(prefix, end),
          sql.dropHistoryRange(prefix, end),
          sql.purgeQueues(prefix, end),
          sql.purgeDedup(prefix, end),
        ]);
        return live;
      }),
    );
  }

  createSearchIndex(spec: SearchIndexSpec): Promise<void> {
    return this.#ifOpen(() => this.#search.create(spec));
  }

  dropSearchIndex(id: number): Promise<void> {
    return this.#ifOpen(() => this.#search.drop(id));
  }

  search(request: SearchRequest): Promise<SearchHit[]> {
    return this.#ifOpen(() => this.#search.search(request));
  }

  onChange(listener: (change: ChangeEvent) => void): () => void {
    return this.#feed.onChange(listener);
  }

  /** A copy of the schema into a new schema, from one snapshot: see `backup.ts`. */
  async backup(target: BackupTarget, options: BackupOptions): Promise<BackupInfo> {
    this.#assertOpen();
    if (!("schema" in target))
      throw new KvError(
        "UNSUPPORTED",
        "a PostgreSQL database backs up into a new schema of the same database (a postgres://…?schema= URL), not a file",
      );
    const client = await this.#pool.connect();
    try {
      return await backupPostgres(client, this.#schema, target.schema, options);
    } finally {
      client.release();
    }
  }

  async readChanges(after: string, limit: number): Promise<ChangePage> {
    this.#assertOpen();
    const from = parseVersionstamp(after);
    // Versions are below 2^53; anything above means "after every commit".
    const bounded = Math.min(from, Number.MAX_SAFE_INTEGER);
    const { rows } = await this.#query(this.#sql.changes(bounded, limit));
    const meta = rows[0] as SinceRow | undefined;
    if (!meta) throw new KvError("STORAGE_ERROR", "cellar_meta lacks its version and pruned rows");
    return {
      changes: sinceChanges(rows as SinceRow[]),
      truncated: from < meta.pruned,
      head: formatVersionstamp(meta.head),
      oldest: formatVersionstamp(meta.pruned),
    };
  }

  dequeue(queue: Uint8Array, options: { now: number; visibilityTimeout: number; limit: number }) {
    return this.#ifOpen(() =>
      this.#queues.dequeue(queue, options.now, options.visibilityTimeout, options.limit),
    );
  }

  settle(queue: Uint8Array, token: string, settlement: Settlement, now: number) {
    return this.#ifOpen(() => this.#queues.settle(queue, token, settlement, now));
  }

  queueStats(queue: Uint8Array, now: number) {
    return this.#ifOpen(() => this.#queues.stats(queue, now));
  }

  listDead(queue: Uint8Array, options: { limit: number; after?: string }) {
    return this.#ifOpen(() => this.#queues.listDead(queue, options.limit, options.after));
  }

  getDead(queue: Uint8Array, id: string) {
    return this.#ifOpen(() => this.#queues.getDead(queue, id));
  }

  requeueDead(queue: Uint8Array, ids: readonly string[] | null, now: number) {
    return this.#ifOpen(() => this.#queues.requeueDead(queue, ids, now));
  }

  deleteDead(queue: Uint8Array, ids: readonly string[] | null) {
    return this.#ifOpen(() => this.#queues.deleteDead(queue, ids));
  }

  onCommitGroup(listener: (size: number) => void): () => void {
    return this.#committer.onGroup(listener);
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      // Idle connections do not hold the process open (`allowExitOnIdle`, an unref'd listener):
      // without a timer, a process with nothing else to do would exit before the close resolves.
      const hold = setInterval(() => undefined, 60_000);
      try {
        await this.#committer.drain();
        this.#reader.close();
        await this.#feed.close();
        await this.#pool.end();
      } finally {
        clearInterval(hold);
      }
    })();
    return this.#closing;
  }

  #assertOpen(): void {
    if (this.#closed) throw new KvError("DATABASE_CLOSED", "the database is closed");
  }

  async #ifOpen<T>(run: () => Promise<T>): Promise<T> {
    this.#assertOpen();
    return run();
  }

  #rangeQuery(range: ReadRange, now: number, meta: boolean): pg.QueryConfig {
    const sql = this.#sql;
    const stmt = range.reverse
      ? meta
        ? sql.rangeDescMeta
        : sql.rangeDesc
      : meta
        ? sql.rangeMeta
        : sql.range;
    return stmt(range.start, range.end, now, range.limit);
  }

  /** One read statement, run again on a new connection while connections are being lost. */
  async #query(query: pg.QueryConfig): Promise<pg.QueryResult> {
    const deadline = Date.now() + RECONNECT_WINDOW;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#reader.query(query);
      } catch (cause) {
        if (!connectionLost(cause)) {
          throw new KvError("STORAGE_ERROR", `PostgreSQL: ${(cause as Error).message}`, { cause });
        }
        if (this.#closed || Date.now() >= deadline) throw unavailable(cause, false);
        await reconnectDelay(attempt);
      }
    }
  }

  /** Runs read queries in one REPEATABLE READ transaction, so they share one snapshot. */
  async #snapshot(queries: readonly pg.QueryConfig[]): Promise<pg.QueryResult[]> {
    return this.#committer.transaction(
      async (client) => {
        const results = await pipeline(client, [
          { text: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY" },
          ...queries,
          { text: "COMMIT" },
        ]);
        return results.slice(1, -1);
      },
      { idempotent: true },
    );
  }

  listQueues(range: { start: Uint8Array; end: Uint8Array }, limit: number) {
    return this.#ifOpen(() => this.#queues.names(range.start, range.end, limit));
  }
}

function revisionOf(row: HistoryRow, withValue: boolean): RawRevision {
  return {
    version: row.revision,
    versionstamp: formatVersionstamp(row.vs),
    timestamp: row.timestamp,
    modifiedBy: row.modified_by,
    comment: row.comment,
    dataHash: row.data_hash,
    ...(withValue &&
      row.encoding !== null && { value: rawValueOf(row.value_json, row.value_bin, row.encoding) }),
  };
}
