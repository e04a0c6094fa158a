/**
 * KV commits on PostgreSQL. A {@link CommitBatch} takes the commit lock (the `version` row of
 * `cellar_meta`, locked `FOR UPDATE`) inside an open transaction and reads the stored state of
 * every key its commits touch in the same round trip, or starts from state already known (see
 * `cache.ts`); it applies the commits in memory with the shared `applyMutation` semantics,
 * each under the next version, and hands back one statement that stores the net result and
 * logs what each commit did to each key (see `commit-sql.ts`). Its change events report the
 * same; a value they name that the batch never read comes back from that statement.
 *
 * Holding the commit lock from the first read to `COMMIT` makes every commit of every process
 * run in one total order, the order of their versions: each reads (under READ COMMITTED, with a
 * fresh snapshot per statement) everything the commits before it wrote.
 */

import type pg from "pg";
import { keyId } from "../../codec/key.js";
import type { RawValue } from "../../codec/value.js";
import { formatVersionstamp, parseVersionstamp } from "../../codec/versionstamp.js";
import {
  type Applied,
  applyMutation,
  isLive,
  needsValue,
  type StoredEntry,
  writtenKey,
} from "../../contract/apply.js";
import type {
  ChangeEvent,
  Check,
  Enqueue,
  EnqueueResult,
  KeyChange,
  Mutation,
  RawEntry,
  RawRevision,
  SearchDoc,
} from "../../contract/index.js";
import { expiryChange, inKeyOrder, keyChange } from "../shared/key-changes.js";
import { type LoggedChange, loggedColumns } from "./change-log.js";
import {
  type CommitSql,
  historyColumns,
  type MessageRow,
  messageColumns,
  type Part,
  searchedColumns,
  upsertColumns,
} from "./commit-sql.js";
import { assertStorableText, type KvRow, pipeline, rawValueOf, storedOf, UNREAD } from "./rows.js";
import type { StagedDoc } from "./search.js";

/** What a batch reads in its first round trip besides the commit lock. */
export interface CommitPlan {
  /** Send `BEGIN` first (false when the caller's transaction is already open). */
  readonly begin: boolean;
  /** Keys the commits check or mutate. */
  readonly keys: readonly Uint8Array[];
  /** Those of `keys` whose stored value a mutation needs (see `needsValue`). */
  readonly valueKeys: readonly Uint8Array[];
  /** Dedup keys of the enqueues. */
  readonly dedup: readonly { readonly queue: Uint8Array; readonly key: string }[];
  /** More queries to run after the lock in the same round trip; their results come back in order. */
  readonly extra?: readonly pg.QueryConfig[];
}

export interface BatchOptions {
  readonly depth: number;
  readonly hash: (bytes: Uint8Array) => string;
  /** Largest value an `append`/`prepend` may build. */
  readonly maxValueSize?: number;
  /** Prepares search documents for storing (see `PostgresSearch.stage`). */
  readonly search?: { stage(doc: SearchDoc): StagedDoc | null };
}

interface KeyHistory {
  readonly key: Uint8Array;
  drop: boolean;
  prune: boolean;
  readonly rows: Map<string, RawRevision>;
}

interface Dedup {
  readonly queue: Uint8Array;
  readonly key: string;
  readonly id: string;
  readonly until: number;
}

/** A stored value the commit statement sent back, to complete a change event. */
export interface RecalledRow {
  readonly key: Buffer;
  readonly vs: number;
  readonly value_json: string | null;
  readonly value_bin: Buffer | null;
  readonly encoding: number;
}

/** The keys and value keys a list of checks and mutations needs read. */
export function keysOf(
  checks: readonly Check[],
  mutations: readonly Mutation[],
): {
  keys: Uint8Array[];
  valueKeys: Uint8Array[];
} {
  return {
    keys: [...checks.map((c) => c.key), ...mutations.map((m) => m.key)],
    valueKeys: mutations.filter(needsValue).map((m) => m.key),
  };
}

/** Uniques by bytes, keeping first occurrences. */
export function uniqueKeys(keys: Iterable<Uint8Array>): Uint8Array[] {
  const seen = new Map<string, Uint8Array>();
  for (const key of keys) {
    const id = keyId(key);
    if (!seen.has(id)) seen.set(id, key);
  }
  return [...seen.values()];
}

export class CommitBatch {
  readonly base: number;
  #version: number;
  readonly #sql: CommitSql;
  readonly #options: BatchOptions;
  readonly #loaded = new Map<string, { key: Uint8Array; entry: StoredEntry | null }>();
  readonly #staged = new Map<string, { key: Uint8Array; entry: StoredEntry | null }>();
  readonly #history = new Map<string, KeyHistory>();
  readonly #log: LoggedChange[] = [];
  readonly #commits: { versionstamp: string; keys: Uint8Array[]; entries: KeyChange[] }[] = [];
  /** Values of entries before the batch that its change events name but it did not read. */
  readonly #recalled = new Map<string, RawValue>();
  #now = 0;
  readonly #messages: MessageRow[] = [];
  readonly #dedupLoaded = new Map<string, Dedup>();
  readonly #dedupStaged = new Map<string, Dedup>();
  readonly #ready = new Map<string, Uint8Array>();
  /** Search documents to store, the last one of each index and key. */
  readonly #docs = new Map<string, StagedDoc>();
  /** Keys swept: their documents go from every index before the commit statement. */
  readonly #swept: Uint8Array[] = [];

  private constructor(sql: CommitSql, options: BatchOptions, version: number) {
    this.#sql = sql;
    this.#options = options;
    this.base = version;
    this.#version = version;
  }

  /** Takes the commit lock and reads what `plan` names, in one round trip. */
  static async open(
    client: pg.ClientBase,
    sql: CommitSql,
    options: BatchOptions,
    plan: CommitPlan,
  ): Promise<{ batch: CommitBatch; extra: pg.QueryResult[] }> {
    const keys = uniqueKeys(plan.keys);
    const queries: pg.QueryConfig[] = [
      ...(plan.begin ? [{ text: "BEGIN" }] : []),
      sql.lock(),
      ...(keys.length > 0 ? [sql.stored(keys, uniqueKeys(plan.valueKeys))] : []),
      ...(plan.dedup.length > 0
        ? [
            sql.dedup(
              plan.dedup.map((d) => d.queue),
              plan.dedup.map((d) => d.key),
            ),
          ]
        : []),
      ...(plan.extra ?? []),
    ];
    const results = await pipeline(client, queries);
    let at = plan.begin ? 1 : 0;
    const version = (results[at++]!.rows[0] as { value: number } | undefined)?.value;
    if (version === undefined)
      throw new Error("the commit counter row is missing from cellar_meta");
    const batch = new CommitBatch(sql, options, version);
    for (const key of keys) batch.#loaded.set(keyId(key), { key, entry: null });
    if (keys.length > 0) batch.load(results[at++]!.rows as KvRow[]);
    if (plan.dedup.length > 0) {
      for (const row of results[at++]!.rows as Dedup[])
        batch.#dedupLoaded.set(dedupId(row.queue, row.key), row);
    }
    return { batch, extra: results.slice(at) };
  }

  /**
   * A batch on stored state already known as of `version` (see `EntryCache`): it reads nothing,
   * and its commit must check, under the commit lock, that `version` is still the latest.
   */
  static fromKnown(
    sql: CommitSql,
    options: BatchOptions,
    version: number,
    keys: readonly Uint8Array[],
    known: ReadonlyMap<string, StoredEntry | null>,
  ): CommitBatch {
    const batch = new CommitBatch(sql, options, version);
    for (const key of keys) {
      const id = keyId(key);
      batch.#loaded.set(id, { key, entry: known.get(id) ?? null });
    }
    return batch;
  }

  /** Every key the batch read or wrote, with its stored state once the batch is committed. */
  *known(): Iterable<readonly [Uint8Array, StoredEntry | null]> {
    for (const [id, { key, entry }] of this.#loaded) if (!this.#staged.has(id)) yield [key, entry];
    for (const { key, entry } of this.#staged.values()) yield [key, entry];
  }

  /** The latest version this batch assigned (its base when it committed nothing). */
  get version(): number {
    return this.#version;
  }

  /**
   * The change events of this batch's commits, oldest first; once it is written, with the
   * values its statement recalled (see {@link recall}).
   */
  get events(): ChangeEvent[] {
    return this.#commits.map(({ versionstamp, keys, entries }) => ({
      versionstamp,
      keys,
      entries: entries.map((change) => {
        const previous = change.previous;
        if (previous?.value !== UNREAD) return change;
        const value = this.#recalled.get(recallId(change.key, previous.versionstamp));
        if (value === undefined) throw new Error("a commit did not recall a value it needs");
        return { ...change, previous: { ...previous, value } };
      }),
    }));
  }

  /** Takes the values the commit statement recalled: the rows its result holds. */
  recall(rows: readonly RecalledRow[]): void {
    for (const row of rows) {
      if (!row.key) continue;
      const value = rawValueOf(row.value_json, row.value_bin, row.encoding);
      this.#recalled.set(recallId(row.key, formatVersionstamp(row.vs)), value);
    }
  }

  /** Queues that got a message ready for delivery. */
  get readyQueues(): Uint8Array[] {
    return [...this.#ready.values()];
  }

  /** Registers stored rows read by an extra query. */
  load(rows: readonly KvRow[]): void {
    for (const row of rows) {
      const id = keyId(row.key);
      if (!this.#loaded.get(id)?.entry)
        this.#loaded.set(id, { key: row.key, entry: storedOf(row) });
    }
  }

  /** Marks a queue as having a message ready, for the wake-ups sent after commit. */
  ready(queue: Uint8Array): void {
    this.#ready.set(keyId(queue), queue);
  }

  /**
   * Applies one atomic write under the next version: null (and nothing staged) when a check
   * fails. A mutation or search document that throws leaves the batch as it was.
   */
  commit(
    checks: readonly Check[],
    mutations: readonly Mutation[],
    now: number,
    enqueues: readonly Enqueue[] = [],
    expiry = false,
    searchDocs: readonly SearchDoc[] = [],
  ): { versionstamp: string; enqueued: EnqueueResult[] } | null {
    for (const check of checks) {
      const current = this.#current(check.key, false);
      const versionstamp = current && isLive(current.expiresAt, now) ? current.versionstamp : null;
      if (versionstamp !== check.versionstamp) return null;
    }
    const version = this.#version + 1;
    const { hash, maxValueSize } = this.#options;
    const context = {
      now,
      versionstamp: formatVersionstamp(version),
      hash,
      ...(maxValueSize !== undefined && { maxValueSize }),
    };
    const local = new Map<
      string,
      { key: Uint8Array; before: StoredEntry | null; entry: StoredEntry | null }
    >();
    const applied: [string, Applied][] = [];
    for (const mutation of mutations) {
      assertStorableText("modifiedBy", mutation.info?.modifiedBy);
      assertStorableText("comment", mutation.info?.comment);
      const key = writtenKey(mutation, context.versionstamp);
      const id = keyId(key);
      const state = local.get(id);
      // A versionstamped key is named by this very commit, so no batch could have read it.
      const current = state
        ? state.entry
        : key === mutation.key
          ? this.#current(key, needsValue(mutation))
          : null;
      const result = applyMutation(current, mutation, context);
      if (state) state.entry = result.entry;
      else local.set(id, { key, before: current, entry: result.entry });
      applied.push([id, result]);
    }
    const docs =
      searchDocs.length > 0
        ? searchDocs.flatMap((doc) => this.#options.search?.stage(doc) ?? [])
        : NO_DOCS;
    const { enqueued, dedups } = this.#enqueue(enqueues, now);
    this.#version = version;
    this.#now = Math.max(this.#now, now);
    for (const [id, { key, entry }] of local) this.#staged.set(id, { key, entry });
    for (const [id, result] of applied) this.#archive(id, local.get(id)!.key, result);
    for (const dedup of dedups) this.#dedupStaged.set(dedupId(dedup.queue, dedup.key), dedup);
    for (const doc of docs) this.#docs.set(`${doc.index}\u0000${keyId(doc.key)}`, doc);
    const keys: Uint8Array[] = [];
    const entries: KeyChange[] = [];
    for (const { key, before, entry } of local.values()) {
      const change =
        expiry && before ? expiryChange(key, before) : keyChange(key, before, entry, now);
      keys.push(key);
      if (change) entries.push(change);
      this.#log.push({ version, at: now, key, change });
    }
    if (keys.length > 0) {
      this.#commits.push({
        versionstamp: context.versionstamp,
        keys,
        entries: inKeyOrder(entries),
      });
    }
    return { versionstamp: context.versionstamp, enqueued };
  }

  /**
   * Deletes those of `rows` (read by {@link CommitPlan.extra}) that are still expired at `now`
   * after the batch's earlier commits, as one commit. Resolves to how many it deleted.
   */
  expire(rows: readonly KvRow[], now: number): number {
    this.load(rows);
    const keys = rows
      .map((row) => row.key)
      .filter((key) => {
        const current = this.#current(key, false);
        return current !== null && !isLive(current.expiresAt, now);
      });
    if (keys.length > 0) {
      this.commit(
        [],
        keys.map((key): Mutation => ({ type: "delete", key })),
        now,
        [],
        true,
      );
      // Documents the batch staged for them go too; stored ones, with `sweptKeys`.
      const swept = new Set(keys.map(keyId));
      for (const [id, doc] of this.#docs) if (swept.has(keyId(doc.key))) this.#docs.delete(id);
      this.#swept.push(...keys);
    }
    return keys.length;
  }

  /** The keys this batch swept, whose stored search documents must go before it is written. */
  get sweptKeys(): readonly Uint8Array[] {
    return this.#swept;
  }

  /**
   * Deletes every key of `rows` (read by {@link CommitPlan.extra}) as one commit, dropping their
   * revision history with the revisions that commit archives. Resolves to how many were live.
   */
  purge(rows: readonly KvRow[], now: number): number {
    this.load(rows);
    const keys = rows.map((row) => row.key);
    const live = keys.filter((key) => {
      const current = this.#current(key, false);
      return current !== null && isLive(current.expiresAt, now);
    }).length;
    if (keys.length === 0) return 0;
    this.commit(
      [],
      keys.map((key): Mutation => ({ type: "delete", key })),
      now,
    );
    for (const key of keys) {
      const history = this.#history.get(keyId(key));
      if (!history) continue;
      history.drop = true;
      history.prune = false;
      history.rows.clear();
    }
    return live;
  }

  /** Whether the batch assigned a version, and so has something to store. */
  get committed(): boolean {
    return this.#version > this.base;
  }

  /** The latest time a commit of the batch was made at (0 before its first). */
  get now(): number {
    return this.#now;
  }

  /**
   * The statement that stores everything the batch committed (see `commitText`); it also trims
   * the change log up to `trim.horizon`, but only through commits made at `trim.before` or
   * earlier unless that is null, and, when `notify` is given, sends it if a process other than
   * `notify.origin` listens. Its result rows name the values to {@link recall}.
   */
  write(
    notify: { channel: string; payload: string; origin: string } | null,
    trim: { horizon: number; before: number | null } | null,
  ): pg.QueryConfig {
    const staged = [...this.#staged.values()];
    const deleted = staged.filter((s) => s.entry === null).map((s) => s.key);
    const upserts = staged.filter(
      (s): s is { key: Uint8Array; entry: StoredEntry } => s.entry !== null,
    );
    const histories = [...this.#history.values()];
    const dropped = histories.filter((h) => h.drop).map((h) => h.key);
    const revisions = histories.flatMap((h) =>
      [...h.rows.values()].map((r) => [h.key, r] as const),
    );
    const pruned = histories.filter((h) => h.prune && !h.drop).map((h) => h.key);
    const dedups = [...this.#dedupStaged.values()];
    const parts: [Part, unknown[]][] = [];
    if (deleted.length > 0) parts.push(["deleted", [deleted]]);
    if (upserts.length > 0) parts.push(["upserted", upsertColumns(upserts)]);
    if (dropped.length > 0) parts.push(["dropped", [dropped]]);
    if (revisions.length > 0) parts.push(["archived", historyColumns(revisions)]);
    if (pruned.length > 0) parts.push(["pruned", [pruned, this.#options.depth]]);
    if (this.#log.length > 0) {
      parts.push(["logged", loggedColumns(this.#log, this.base, this.#staged)]);
      const recalled = this.#unread();
      if (recalled.length > 0) {
        parts.push([
          "recalled",
          [recalled.map((e) => e.key), recalled.map((e) => parseVersionstamp(e.versionstamp))],
        ]);
      }
    }
    if (this.#messages.length > 0) parts.push(["enqueued", messageColumns(this.#messages)]);
    if (dedups.length > 0) {
      parts.push([
        "deduped",
        [
          dedups.map((d) => d.queue),
          dedups.map((d) => d.key),
          dedups.map((d) => d.id),
          dedups.map((d) => d.until),
        ],
      ]);
    }
    if (this.#docs.size > 0) parts.push(...this.#searchParts());
    if (trim) parts.push(["trimmed", [trim.horizon, trim.before]]);
    if (notify) parts.push(["notified", [notify.channel, notify.payload, notify.origin]]);
    return this.#sql.commit.build(this.base, this.#version, parts);
  }

  /** The parts storing and removing the batch's search documents. */
  #searchParts(): [Part, unknown[]][] {
    const docs = [...this.#docs.values()];
    const searched = docs.filter(
      (doc): doc is StagedDoc & { fields: readonly string[] } => doc.fields !== null,
    );
    const unsearched = docs.filter((doc) => doc.fields === null);
    const parts: [Part, unknown[]][] = [];
    if (searched.length > 0) parts.push(["searched", searchedColumns(searched)]);
    if (unsearched.length > 0) {
      parts.push([
        "unsearched",
        [unsearched.map((doc) => doc.index), unsearched.map((doc) => doc.key)],
      ]);
    }
    return parts;
  }

  /** The entries before the batch that its change events name without their value. */
  #unread(): RawEntry[] {
    const unread = new Map<string, RawEntry>();
    for (const { change } of this.#log) {
      const previous = change?.previous;
      if (previous?.value === UNREAD)
        unread.set(recallId(previous.key, previous.versionstamp), previous);
    }
    return [...unread.values()];
  }

  #current(key: Uint8Array, withValue: boolean): StoredEntry | null {
    const id = keyId(key);
    const staged = this.#staged.get(id);
    if (staged) return staged.entry;
    const loaded = this.#loaded.get(id);
    if (loaded === undefined) throw new Error("a commit touched a key its batch did not read");
    if (withValue && loaded.entry !== null && loaded.entry.value === UNREAD) {
      throw new Error("a commit needs a stored value its batch did not read");
    }
    return loaded.entry;
  }

  #enqueue(
    enqueues: readonly Enqueue[],
    now: number,
  ): { enqueued: EnqueueResult[]; dedups: Dedup[] } {
    const local = new Map<string, Dedup>();
    const enqueued: EnqueueResult[] = [];
    const messages: MessageRow[] = [];
    for (const enqueue of enqueues) {
      if (enqueue.dedup) {
        assertStorableText("dedupKey", enqueue.dedup.key);
        const id = dedupId(enqueue.queue, enqueue.dedup.key);
        const seen = local.get(id) ?? this.#dedupStaged.get(id) ?? this.#dedupLoaded.get(id);
        if (seen && seen.until > now) {
          enqueued.push({ id: seen.id, deduplicated: true });
          continue;
        }
        local.set(id, {
          queue: enqueue.queue,
          key: enqueue.dedup.key,
          id: enqueue.id,
          until: enqueue.dedup.until,
        });
      }
      messages.push({ queue: enqueue.queue, enqueue, now });
      enqueued.push({ id: enqueue.id, deduplicated: false });
    }
    this.#messages.push(...messages);
    for (const message of messages) this.ready(message.queue);
    return { enqueued, dedups: [...local.values()] };
  }

  #archive(id: string, key: Uint8Array, result: Applied): void {
    if (!result.dropHistory && result.archive.length === 0) return;
    const history = this.#history.get(id) ?? { key, drop: false, prune: false, rows: new Map() };
    this.#history.set(id, history);
    if (result.dropHistory) {
      history.drop = true;
      history.rows.clear();
    }
    for (const revision of result.archive) history.rows.set(revision.versionstamp, revision);
    // Pruning every few revisions keeps the archive within twice its depth at a fraction of the cost.
    const last = result.archive.at(-1);
    if (last && (last.dataHash === null || last.version % 8 === 0)) history.prune = true;
  }
}

/** A write's documents when it has none: no array made per commit. */
const NO_DOCS: readonly StagedDoc[] = [];

const dedupId = (queue: Uint8Array, key: string) => `${keyId(queue)}\u0000${key}`;
const recallId = (key: Uint8Array, versionstamp: string) => `${keyId(key)}\u0000${versionstamp}`;
