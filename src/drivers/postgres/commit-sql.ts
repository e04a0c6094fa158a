/**
 * The SQL of the PostgreSQL driver's commits: the statements a {@link CommitBatch} reads with
 * under the commit lock, and the one statement that stores all it committed.
 */
import type pg from "pg";
import { parseVersionstamp } from "../../codec/versionstamp.js";
import type { StoredEntry } from "../../contract/apply.js";
import type { Enqueue, RawRevision } from "../../contract/index.js";
import { newMessage } from "../shared/queue-states.js";
import { binaryArray, type ElementType, statement, valueColumns } from "./rows.js";

/** A message a batch enqueues, stored with its commit. */
export interface MessageRow {
  readonly queue: Uint8Array;
  readonly enqueue: Enqueue;
  readonly now: number;
}

const STORED_COLUMNS = [
  "key",
  "vs",
  "expires_at",
  "revision",
  "created_at",
  "updated_at",
  "tags",
  "modified_by",
  "comment",
  "data_hash",
  "encoding",
];

export type CommitSql = ReturnType<typeof commitSql>;

/** The columns of the change log a commit writes, as the `logged` part takes them. */
const LOGGED_COLUMNS = [
  "vs",
  "key",
  "type",
  "at",
  "value_json",
  "value_bin",
  "encoding",
  "expires_at",
  "meta",
  "prev_value_json",
  "prev_value_bin",
  "prev_encoding",
  "prev_vs",
  "prev_expires_at",
  "prev_meta",
];

/** The statements of a commit, for the quoted schema `s`. */
export function commitSql(s: string) {
  const kv = `${s}.cellar_kv`;
  const dedup = `${s}.cellar_queue_dedup`;
  return {
    lock: statement(
      "cellar_lock",
      `SELECT value FROM ${s}.cellar_meta WHERE name = 'version' FOR UPDATE`,
    ),
    stored: statement(
      "cellar_stored",
      `SELECT ${STORED_COLUMNS.map((c) => `k.${c}`).join(", ")},
        CASE WHEN k.key = ANY($2::bytea[]) THEN k.value_json END AS value_json,
        CASE WHEN k.key = ANY($2::bytea[]) THEN k.value_bin END AS value_bin
      FROM unnest($1::bytea[]) AS u(key) JOIN ${kv} k ON k.key = u.key`,
    ),
    expired: statement(
      "cellar_expired",
      `SELECT ${STORED_COLUMNS.join(", ")}, NULL::json AS value_json, NULL::bytea AS value_bin
      FROM ${kv} WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
    ),
    dedup: statement(
      "cellar_dedup",
      `SELECT d.queue, d.key, d.id, d.until FROM ${dedup} d
      JOIN unnest($1::bytea[], $2::text[]) AS u(queue, key) ON d.queue = u.queue AND d.key = u.key`,
    ),
    commit: new CommitStatements(s),
    notify: statement("cellar_notify", "SELECT pg_notify($1, $2)"),
    forgetDedup: statement("cellar_forget_dedup", `DELETE FROM ${dedup} WHERE until <= $1`),
    inRange: statement(
      "cellar_in_range",
      `SELECT ${STORED_COLUMNS.join(", ")}, NULL::json AS value_json, NULL::bytea AS value_bin
      FROM ${kv} WHERE key >= $1 AND key < $2 ORDER BY key FOR UPDATE`,
    ),
    dropHistoryRange: statement(
      "cellar_drop_history_range",
      `DELETE FROM ${s}.cellar_history WHERE key >= $1 AND key < $2`,
    ),
    purgeQueues: statement(
      "cellar_purge_queues",
      `DELETE FROM ${s}.cellar_queue WHERE queue >= $1 AND queue < $2`,
    ),
    purgeDedup: statement(
      "cellar_purge_dedup",
      `DELETE FROM ${dedup} WHERE queue >= $1 AND queue < $2`,
    ),
    // Documents of keys swept or purged, in every index: run before the commit statement,
    // whose own documents (of later writes to those keys) it must not remove.
    forgetSearchKeys: statement(
      "cellar_forget_search_keys",
      `DELETE FROM ${s}.cellar_search_docs d USING ${s}.cellar_search_indexes i, unnest($1::bytea[]) AS u(key)
      WHERE d.index_id = i.id AND d.key = u.key`,
    ),
    purgeSearch: statement(
      "cellar_purge_search",
      `DELETE FROM ${s}.cellar_search_docs d USING ${s}.cellar_search_indexes i
      WHERE d.index_id = i.id AND d.key >= $1 AND d.key < $2`,
    ),
  };
}

/** The parts of a commit statement, in the order they appear and take their parameters. */
const PARTS = [
  "deleted",
  "upserted",
  "dropped",
  "archived",
  "pruned",
  "logged",
  "enqueued",
  "deduped",
  "searched",
  "unsearched",
  "trimmed",
  "notified",
  "recalled",
] as const;
export type Part = (typeof PARTS)[number];

/**
 * The column types of each part's rows: a part takes one array parameter per column (one
 * element per row), then its plain parameters.
 */
const ROWS: Record<Part, readonly ElementType[]> = {
  deleted: ["bytea"],
  upserted: [
    "bytea",
    "json",
    "bytea",
    "int2",
    "int8",
    "int8",
    "int8",
    "int8",
    "int8",
    "text",
    "text",
    "text",
    "text",
  ],
  dropped: ["bytea"],
  archived: ["bytea", "int8", "int8", "int8", "text", "text", "text", "json", "bytea", "int2"],
  pruned: ["bytea"],
  // See `loggedColumns`.
  logged: [
    "int8",
    "bytea",
    "int2",
    "int8",
    "json",
    "bytea",
    "int2",
    "int8",
    "text",
    "json",
    "bytea",
    "int2",
    "int8",
    "int8",
    "text",
  ],
  enqueued: ["bytea", "text", "int8", "int8", "jsonb", "jsonb", "json", "bytea", "int2", "int8"],
  deduped: ["bytea", "text", "text", "int8"],
  // A document's fields are `first`… of the part's one text[] parameter, `count` of them.
  searched: ["int8", "bytea", "int8", "int8", "text"],
  unsearched: ["int8", "bytea"],
  trimmed: [],
  notified: [],
  recalled: ["bytea", "int8"],
};

/**
 * The commit statement of the quoted schema `s`: everything a batch writes, as one statement,
 * so that run alone it is a whole transaction. Its guard moves the version from the one the
 * batch was computed on ($1) to the batch's latest ($2), and fails (division by zero, SQLSTATE
 * 22012) when the version was no longer $1: a batch built on cached state never commits after
 * a commit it did not see. Every write refers to the guard, which makes it run first, taking
 * the commit lock before any row is written; inside a transaction that already holds the lock
 * it simply passes. Only the parts a batch uses are in its statement (each combination is named
 * and prepared on its own), since every part costs the server time even with nothing to do.
 * All parts share one snapshot, so history pruning counts the revisions stored before this
 * statement: the archive keeps at least its depth, which is all it must. Likewise the change
 * log and the `recalled` values (the entries before the batch that it wants back for its own
 * change events) read each key's stored row as it was before the batch: the state the batch
 * was computed on, or its guard fails.
 *
 * A batch whose every part has one row (a lone write of one key, the common case) takes each
 * column as a plain parameter instead of an array: decoding arrays and planning `unnest` cost
 * the server more than the rest of such a statement.
 */
function commitText(s: string, parts: ReadonlySet<Part>, single: boolean): string {
  const kv = `${s}.cellar_kv`;
  const history = `${s}.cellar_history`;
  const ok = "(SELECT ok FROM guard) = 1";
  // The stored value of a key at a version, as a lateral subquery: `LIMIT` keeps the planner from
  // flattening it into a join that scans the table, as it may for a young table without statistics.
  const storedValue = (key: string, vs: string) =>
    `(SELECT k.value_json, k.value_bin, k.encoding FROM ${kv} k WHERE k.key = ${key} AND k.vs = ${vs} LIMIT 1)`;
  let n = 2;
  const params = (count: number) => Array.from({ length: count }, () => `$${++n}`);
  /**
   * The part's rows as a table: its column parameters unnested, or the one row they make;
   * `ordinal` adds a last column numbering the rows.
   */
  const rows = (part: Part, ordinal = false): string => {
    const columns = params(ROWS[part].length).map(
      (p, i) => `${p}::${ROWS[part][i]}${single ? "" : "[]"}`,
    );
    if (single) return `(VALUES (${columns.join(", ")}${ordinal ? ", 1" : ""}))`;
    return `unnest(${columns.join(", ")})${ordinal ? " WITH ORDINALITY" : ""}`;
  };
  const sql: Record<Part, () => string> = {
    deleted: () =>
      `deleted AS (DELETE FROM ${kv} k USING ${rows("deleted")} AS u(key) WHERE k.key = u.key AND ${ok})`,
    upserted: () => `upserted AS (INSERT INTO ${kv}
          (key, value_json, value_bin, encoding, vs, expires_at, revision, created_at, updated_at, tags, modified_by, comment, data_hash)
        SELECT * FROM ${rows("upserted")} AS r
        WHERE ${ok}
        ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json, value_bin = excluded.value_bin,
          encoding = excluded.encoding, vs = excluded.vs, expires_at = excluded.expires_at, revision = excluded.revision,
          created_at = excluded.created_at, updated_at = excluded.updated_at, tags = excluded.tags,
          modified_by = excluded.modified_by, comment = excluded.comment, data_hash = excluded.data_hash
        ${parts.has("logged") ? "RETURNING key, vs, value_json, value_bin, encoding" : ""})`,
    dropped: () =>
      `dropped AS (DELETE FROM ${history} h USING ${rows("dropped")} AS u(key) WHERE h.key = u.key AND ${ok})`,
    archived: () => `archived AS (INSERT INTO ${history}
          (key, vs, revision, timestamp, modified_by, comment, data_hash, value_json, value_bin, encoding)
        SELECT * FROM ${rows("archived")} AS r
        WHERE ${ok}
        ON CONFLICT (key, vs) DO UPDATE SET revision = excluded.revision, timestamp = excluded.timestamp,
          modified_by = excluded.modified_by, comment = excluded.comment, data_hash = excluded.data_hash,
          value_json = excluded.value_json, value_bin = excluded.value_bin, encoding = excluded.encoding)`,
    pruned: () => {
      const keys = rows("pruned");
      const [depth] = params(1);
      return `pruned AS (DELETE FROM ${history} h USING ${keys} AS p(key)
        WHERE h.key = p.key AND ${ok}
          AND h.vs <= (SELECT x.vs FROM ${history} x WHERE x.key = p.key ORDER BY x.vs DESC OFFSET ${depth} LIMIT 1))`;
    },
    logged: () => {
      // A value the batch left out is the upserted row's (`u`), or the stored row's (`o`).
      const upserted = parts.has("upserted");
      const value = (column: string) =>
        upserted ? `CASE WHEN u.key IS NULL THEN r.${column} ELSE u.${column} END` : `r.${column}`;
      const stored = (column: string) =>
        `CASE WHEN o.encoding IS NULL THEN r.prev_${column} ELSE o.${column} END`;
      return `logged AS (INSERT INTO ${s}.cellar_changes (${LOGGED_COLUMNS.join(", ")})
        SELECT r.vs, r.key, r.type, r.at, ${value("value_json")}, ${value("value_bin")}, ${value("encoding")},
          r.expires_at, r.meta, ${stored("value_json")}, ${stored("value_bin")}, ${stored("encoding")},
          r.prev_vs, r.prev_expires_at, r.prev_meta
        FROM ${rows("logged")} AS r(${LOGGED_COLUMNS.join(", ")})
          ${upserted ? "LEFT JOIN upserted u ON u.key = r.key AND u.vs = r.vs" : ""}
          LEFT JOIN LATERAL ${storedValue("r.key", "r.prev_vs")} o ON true
        WHERE ${ok} ON CONFLICT DO NOTHING)`;
    },
    enqueued: () => `enqueued AS (INSERT INTO ${s}.cellar_queue
          (queue, id, state, priority, available_at, attempts, backoff, undelivered, value_json, value_bin, encoding, enqueued_at)
        SELECT queue, id, 0, priority, available_at, 0, backoff, undelivered, value_json, value_bin, encoding, enqueued_at
        FROM ${rows("enqueued", true)}
          AS m(queue, id, priority, available_at, backoff, undelivered, value_json, value_bin, encoding, enqueued_at, n)
        WHERE ${ok} ORDER BY n)`,
    deduped: () => `deduped AS (INSERT INTO ${s}.cellar_queue_dedup (queue, key, id, until)
        SELECT * FROM ${rows("deduped")} AS r WHERE ${ok}
        ON CONFLICT (queue, key) DO UPDATE SET id = excluded.id, until = excluded.until)`,
    searched: () => {
      const docs = rows("searched");
      const [texts] = params(1);
      // Only into indexes that exist: a document of an index dropped meanwhile is not stored.
      return `searched AS (INSERT INTO ${s}.cellar_search_docs (index_id, key, fields, tsv, folded)
        SELECT r.index_id, r.key, f.fields,
          CASE WHEN i.config IS NOT NULL THEN ${s}.cellar_search_tsv(i.config, f.fields) END,
          CASE WHEN i.config IS NULL THEN r.folded END
        FROM ${docs} AS r(index_id, key, first_field, field_count, folded)
          JOIN ${s}.cellar_search_indexes i ON i.id = r.index_id
          CROSS JOIN LATERAL (SELECT (${texts}::text[])[r.first_field : r.first_field + r.field_count - 1] AS fields) f
        WHERE ${ok}
        ON CONFLICT (index_id, key) DO UPDATE SET fields = excluded.fields, tsv = excluded.tsv, folded = excluded.folded)`;
    },
    unsearched: () => `unsearched AS (DELETE FROM ${s}.cellar_search_docs d
        USING ${rows("unsearched")} AS u(index_id, key)
        WHERE d.index_id = u.index_id AND d.key = u.key AND ${ok})`,
    trimmed: () => {
      // Up to the horizon, or with a time limit ($before) only up to the newest commit made
      // before it: the newest commit is found walking the log down from the horizon.
      const [horizon, before] = params(2);
      return `cut AS (SELECT CASE WHEN ${before}::int8 IS NULL THEN ${horizon}::int8
          ELSE (SELECT max(vs) FROM ${s}.cellar_changes WHERE vs <= ${horizon}::int8 AND at <= ${before}::int8)
          END AS vs),
        trimmed AS (DELETE FROM ${s}.cellar_changes WHERE vs <= (SELECT vs FROM cut) AND ${ok}),
        horizon AS (UPDATE ${s}.cellar_meta SET value = greatest(value, (SELECT vs FROM cut)) WHERE name = 'pruned' AND ${ok})`;
    },
    notified: () => {
      const [channel, payload, origin] = params(3);
      return `notified AS (SELECT pg_notify(${channel}, ${payload}) FROM guard
        WHERE EXISTS (SELECT 1 FROM ${s}.cellar_listeners WHERE origin <> ${origin}))`;
    },
    recalled: () => `recalled AS (SELECT u.key, u.vs, o.value_json, o.value_bin, o.encoding
        FROM ${rows("recalled")} AS u(key, vs) JOIN LATERAL ${storedValue("u.key", "u.vs")} o ON true)`,
  };
  const ctes = PARTS.filter((part) => parts.has(part)).map((part) => sql[part]());
  // Under READ COMMITTED an UPDATE that waited for the lock evaluates SET on the newest row, so
  // the division by zero (not constant, hence not folded at planning) fires on a moved version.
  const notified = parts.has("notified") ? ", (SELECT count(*) FROM notified) AS notified" : "";
  // One row, or one per recalled value.
  const recalled = parts.has("recalled")
    ? `, c.key, c.vs, c.value_json, c.value_bin, c.encoding
  FROM (VALUES (1)) AS one(n) LEFT JOIN recalled c ON true`
    : "";
  return `WITH guard AS (UPDATE ${s}.cellar_meta SET value = CASE WHEN value = $1 THEN $2 ELSE value / (value - value) END
      WHERE name = 'version' RETURNING 1 AS ok)${ctes.map((cte) => `,\n    ${cte}`).join("")}
  SELECT (SELECT ok FROM guard) AS ok${notified}${recalled}`;
}

/** Builds commit statements by their parts, each text built once. */
class CommitStatements {
  readonly #schema: string;
  readonly #texts = new Map<string, string>();

  constructor(schema: string) {
    this.#schema = schema;
  }

  /**
   * The statement for these parts, each given with its parameters (see {@link ROWS}), after the
   * guard's two.
   */
  build(
    base: number,
    version: number,
    parts: readonly (readonly [Part, readonly unknown[]])[],
  ): pg.QueryConfig {
    const byPart = new Map(parts);
    const single = parts.every(([part, values]) =>
      ROWS[part].every((_, i) => (values[i] as readonly unknown[]).length === 1),
    );
    let mask = 0;
    const values: unknown[] = [base, version];
    PARTS.forEach((part, bit) => {
      const given = byPart.get(part);
      if (!given) return;
      mask |= 1 << bit;
      const columns = ROWS[part].length;
      for (let i = 0; i < given.length; i++) {
        if (i >= columns) values.push(given[i]);
        else if (single) values.push((given[i] as readonly unknown[])[0]);
        else values.push(binaryArray(ROWS[part][i]!, given[i] as readonly unknown[]));
      }
    });
    const name = `cellar_commit_${mask}${single ? "_1" : ""}`;
    let text = this.#texts.get(name);
    if (text === undefined) {
      text = commitText(this.#schema, new Set(byPart.keys()), single);
      this.#texts.set(name, text);
    }
    return { name, text, values };
  }
}

export function upsertColumns(rows: readonly { key: Uint8Array; entry: StoredEntry }[]): unknown[] {
  const columns = rows.map(({ entry }) => valueColumns(entry.value));
  const meta = rows.map(({ entry }) => entry.meta);
  return [
    rows.map((r) => r.key),
    columns.map((c) => c.json),
    columns.map((c) => c.bin),
    columns.map((c) => c.encoding),
    rows.map((r) => parseVersionstamp(r.entry.versionstamp)),
    rows.map((r) => r.entry.expiresAt),
    meta.map((m) => m.version),
    meta.map((m) => m.createdAt),
    meta.map((m) => m.updatedAt),
    meta.map((m) => (m.tags.length > 0 ? JSON.stringify(m.tags) : null)),
    meta.map((m) => m.modifiedBy),
    meta.map((m) => m.comment),
    meta.map((m) => m.dataHash),
  ];
}

export function historyColumns(rows: readonly (readonly [Uint8Array, RawRevision])[]): unknown[] {
  const values = rows.map(([, r]) => (r.value ? valueColumns(r.value) : null));
  return [
    rows.map(([key]) => key),
    rows.map(([, r]) => parseVersionstamp(r.versionstamp)),
    rows.map(([, r]) => r.version),
    rows.map(([, r]) => r.timestamp),
    rows.map(([, r]) => r.modifiedBy),
    rows.map(([, r]) => r.comment),
    rows.map(([, r]) => r.dataHash),
    values.map((v) => v?.json ?? null),
    values.map((v) => v?.bin ?? null),
    values.map((v) => v?.encoding ?? null),
  ];
}

/** The `searched` part's columns and its one text[] parameter (see {@link ROWS}). */
export function searchedColumns(
  docs: readonly {
    index: number;
    key: Uint8Array;
    fields: readonly string[];
    folded: string | null;
  }[],
): unknown[] {
  const texts: string[] = [];
  const first = docs.map((doc) => {
    texts.push(...doc.fields);
    return texts.length - doc.fields.length + 1;
  });
  return [
    docs.map((doc) => doc.index),
    docs.map((doc) => doc.key),
    first,
    docs.map((doc) => doc.fields.length),
    docs.map((doc) => doc.folded),
    binaryArray("text", texts),
  ];
}

export function messageColumns(rows: readonly MessageRow[]): unknown[] {
  const messages = rows.map((r) => newMessage(r.enqueue, 0, r.now));
  const values = messages.map((m) => valueColumns(m.value));
  return [
    rows.map((r) => r.queue),
    messages.map((m) => m.id),
    messages.map((m) => m.priority),
    messages.map((m) => m.availableAt),
    messages.map((m) => JSON.stringify(m.backoffSchedule)),
    messages.map((m) =>
      JSON.stringify(m.keysIfUndelivered.map((k) => Buffer.from(k).toString("base64url"))),
    ),
    values.map((v) => v.json),
    values.map((v) => v.bin),
    values.map((v) => v.encoding),
    messages.map((m) => m.enqueuedAt),
  ];
}
