/**
 * The SQLite driver's tables and statements, and the conversions between rows and the driver
 * contract's entries.
 */
import type Database from "better-sqlite3";
import { type RawValue, rawBytes, TAG_ENCODING } from "../../codec/value.js";
import { formatVersionstamp } from "../../codec/versionstamp.js";
import type { StoredEntry } from "../../contract/apply.js";
import type { ChangeEvent, EntryMeta, KeyChange, RawEntry } from "../../contract/index.js";
import { KvError } from "../../errors.js";
import { CHANGE_TYPES, type StoredChange } from "../shared/key-changes.js";
import {
  metaFromLog,
  metaToLog,
  type PackedEntry,
  packChanges,
  unpackChanges,
} from "./packed-changes.js";

export const SCHEMA_VERSION = 4;

/** How the driver fingerprints a value: `EntryMeta.dataHash`. */
export type Hash = (bytes: Uint8Array) => string;

/**
 * Schema 1–3's change log, one row per written key: its columns after `(vs, key)`. Kept to
 * read files of those schemas once, when they are upgraded to {@link LOG_TABLE}.
 */
const CHANGE_COLUMNS = [
  "type INTEGER",
  "at INTEGER",
  "value",
  "encoding INTEGER",
  "expires_at INTEGER",
  "meta TEXT",
  "prev_value",
  "prev_encoding INTEGER",
  "prev_vs INTEGER",
  "prev_expires_at INTEGER",
  "prev_meta TEXT",
];

/** The change log (schema 4): a row per commit, its time and its key changes packed. */
const LOG_TABLE = `cellar_log (
  vs INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  changes BLOB NOT NULL
)`;

/**
 * Entries (schema 4): no stored hash — an entry's `dataHash` is its value's, computed when
 * metadata is read — and `created_at` NULL while it equals `updated_at` (a key's first revision).
 */
export const KV_TABLE = `cellar_kv (
  key BLOB PRIMARY KEY,
  value NOT NULL,
  encoding INTEGER NOT NULL,
  vs INTEGER NOT NULL,
  expires_at INTEGER,
  revision INTEGER NOT NULL,
  created_at INTEGER,
  updated_at INTEGER NOT NULL,
  tags TEXT,
  modified_by TEXT,
  comment TEXT
) WITHOUT ROWID`;
const KV_EXPIRY_INDEX =
  "CREATE INDEX IF NOT EXISTS cellar_kv_expiry ON cellar_kv (expires_at) WHERE expires_at IS NOT NULL";
/** Replaced revisions; `data_hash` is the 32 bytes of the hash (NULL for a tombstone). */
const HISTORY_TABLE = `cellar_history (
  key BLOB NOT NULL,
  vs INTEGER NOT NULL,
  revision INTEGER NOT NULL,
  timestamp INTEGER NOT NULL,
  modified_by TEXT,
  comment TEXT,
  data_hash BLOB,
  value,
  encoding INTEGER,
  PRIMARY KEY (key, vs)
) WITHOUT ROWID`;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS cellar_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ${KV_TABLE};
${KV_EXPIRY_INDEX};
CREATE TABLE IF NOT EXISTS ${HISTORY_TABLE};
CREATE TABLE IF NOT EXISTS ${LOG_TABLE};
CREATE TABLE IF NOT EXISTS cellar_search (
  id INTEGER PRIMARY KEY,
  fields INTEGER NOT NULL,
  tokenizer TEXT NOT NULL,
  language TEXT NOT NULL
);
`;

export const LIVE = "(expires_at IS NULL OR expires_at > @now)";
export const BASE_COLUMNS = "key, value, encoding, vs, expires_at";
export const META_COLUMNS = `${BASE_COLUMNS}, revision, coalesce(created_at, updated_at), updated_at, tags, modified_by, comment`;
/** The number of columns {@link META_COLUMNS} selects. */
export const META_WIDTH = 11;

export type Row = [Buffer, string | Buffer, number, number, number | null, ...unknown[]];

export function migrate(db: Database.Database): void {
  const row = db.prepare("SELECT value FROM cellar_meta WHERE name = 'schema'").get() as
    | { value: number }
    | undefined;
  if (row && row.value > SCHEMA_VERSION) {
    throw new Error(`the file has schema ${row.value}, newer than this Cellar's ${SCHEMA_VERSION}`);
  }
  if (row && row.value < 2) {
    // Schema 1 logged only keys: its rows cannot say what changed, so the log restarts at the
    // head and resuming from before it reports the gap (truncated), as pruning does.
    for (const column of CHANGE_COLUMNS) db.exec(`ALTER TABLE cellar_changes ADD COLUMN ${column}`);
    db.exec(`DELETE FROM cellar_changes;
      UPDATE cellar_meta SET value = (SELECT value FROM cellar_meta WHERE name = 'version') WHERE name = 'pruned'`);
  }
  // Schema 3 added the catalog of search indexes (`cellar_search`, see `search.ts`), which
  // SCHEMA creates in older files too. A Cellar of schema 2 must not open a file with search
  // indexes: its writes would leave their documents stale.
  if (row && row.value < 4) compactRows(db);
  db.prepare("INSERT OR REPLACE INTO cellar_meta (name, value) VALUES ('schema', ?)").run(
    SCHEMA_VERSION,
  );
  db.prepare("INSERT OR IGNORE INTO cellar_meta (name, value) VALUES ('version', 0)").run();
  db.prepare("INSERT OR IGNORE INTO cellar_meta (name, value) VALUES ('pruned', 0)").run();
}

/**
 * Schema 4, in place: entries lose their stored hash and keep `created_at` only where it
 * differs from `updated_at`; archived hashes become their 32 bytes; the log's metadata becomes
 * {@link metaToLog}'s compact form. Entries and revisions are copied into tables of the new
 * shape (a column's NOT NULL cannot be dropped in place); versionstamps, revisions and the log's
 * window are unchanged, so readers resume where they were.
 */
function compactRows(db: Database.Database): void {
  const columns = (table: string) =>
    db.prepare(`SELECT name, type FROM pragma_table_info('${table}')`).all() as {
      name: string;
      type: string;
    }[];
  if (columns("cellar_kv").some((c) => c.name === "data_hash")) rebuildKv(db);
  if (columns("cellar_history").some((c) => c.name === "data_hash" && c.type === "TEXT"))
    rebuildHistory(db);
  if (columns("cellar_changes").length > 0) packLog(db);
}

/** Schema 1–3's change-log rows, packed a commit to a row into `cellar_log`. */
function packLog(db: Database.Database): void {
  const rows = db
    .prepare(
      `SELECT vs, key, type, at, value, encoding, expires_at, meta, prev_value, prev_encoding,
        prev_vs, prev_expires_at, prev_meta FROM cellar_changes ORDER BY vs, key`,
    )
    .raw()
    .all() as OldChangeRow[];
  const insert = db.prepare("INSERT INTO cellar_log (vs, at, changes) VALUES (?, ?, ?)");
  const entry = (
    value: unknown,
    encoding: unknown,
    vs: number,
    expiresAt: unknown,
    meta: string,
  ) => ({
    value: toRawValue(value as string | Buffer, encoding as number),
    versionstamp: formatVersionstamp(vs),
    expiresAt: expiresAt as number | null,
    meta: JSON.parse(meta) as EntryMeta,
  });
  for (let i = 0; i < rows.length; ) {
    const [vs, , , at] = rows[i]!;
    const written: [Uint8Array, StoredChange | null][] = [];
    for (; i < rows.length && rows[i]![0] === vs; i++) {
      const [, key, type, , value, encoding, expiresAt, meta, pv, pe, pvs, pexp, pmeta] = rows[i]!;
      written.push([
        key,
        type === null
          ? null
          : {
              type: CHANGE_TYPES[type]!,
              entry: meta === null ? null : entry(value, encoding, vs, expiresAt, meta),
              previous: pmeta === null || pvs === null ? null : entry(pv, pe, pvs, pexp, pmeta),
            },
      ]);
    }
    insert.run(vs, at ?? 0, packChanges(written));
  }
  db.exec("DROP TABLE cellar_changes");
}

type OldChangeRow = [
  vs: number,
  key: Buffer,
  type: number | null,
  at: number | null,
  value: unknown,
  encoding: unknown,
  expiresAt: unknown,
  meta: string | null,
  prevValue: unknown,
  prevEncoding: unknown,
  prevVs: number | null,
  prevExpiresAt: unknown,
  prevMeta: string | null,
];

function rebuildKv(db: Database.Database): void {
  db.exec(`CREATE TABLE cellar_kv_v4 ${KV_TABLE.slice("cellar_kv ".length)};
    INSERT INTO cellar_kv_v4 SELECT key, value, encoding, vs, expires_at, revision,
      nullif(created_at, updated_at), updated_at, tags, modified_by, comment FROM cellar_kv;
    DROP TABLE cellar_kv;
    ALTER TABLE cellar_kv_v4 RENAME TO cellar_kv;
    ${KV_EXPIRY_INDEX};`);
}

function rebuildHistory(db: Database.Database): void {
  db.exec(`CREATE TABLE cellar_history_v4 ${HISTORY_TABLE.slice("cellar_history ".length)};
    INSERT INTO cellar_history_v4 SELECT key, vs, revision, timestamp, modified_by, comment,
      CASE WHEN length(data_hash) = 64 AND data_hash NOT GLOB '*[^0-9a-f]*' THEN unhex(data_hash)
        ELSE data_hash END, value, encoding FROM cellar_history;
    DROP TABLE cellar_history;
    ALTER TABLE cellar_history_v4 RENAME TO cellar_history;`);
}

const HEX_HASH = /^[0-9a-f]{64}$/;

/** A revision's hash as `cellar_history` stores it: a hex SHA-256 as its 32 bytes. */
export function hashToColumn(hash: string | null): string | Buffer | null {
  return hash !== null && HEX_HASH.test(hash) ? Buffer.from(hash, "hex") : hash;
}

/** {@link hashToColumn} undone. */
export function hashFromColumn(column: string | Buffer | null): string | null {
  return Buffer.isBuffer(column) ? column.toString("hex") : column;
}

/** Writes a `cellar_kv` row, its parameters as {@link kvRow} gives them. */
export const UPSERT_KV = `INSERT OR REPLACE INTO cellar_kv
  (key, value, encoding, vs, expires_at, revision, created_at, updated_at, tags, modified_by, comment)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** The parameters of {@link UPSERT_KV} for an entry. */
export function kvRow(
  key: Uint8Array,
  data: string | Uint8Array,
  encoding: number,
  vs: number,
  expiresAt: number | null,
  m: EntryMeta,
): unknown[] {
  return [
    key,
    data,
    encoding,
    vs,
    expiresAt,
    m.version,
    m.createdAt === m.updatedAt ? null : m.createdAt,
    m.updatedAt,
    m.tags.length > 0 ? JSON.stringify(m.tags) : null,
    m.modifiedBy,
    m.comment,
  ];
}

/** Every statement the driver runs, prepared once per connection. */
export type StatementName =
  | "point"
  | "pointMeta"
  | "range"
  | "rangeMeta"
  | "rangeDesc"
  | "rangeDescMeta"
  | "count"
  | "stored"
  | "checkVs"
  | "upsert"
  | "remove"
  | "addRevision"
  | "pruneHistory"
  | "dropHistory"
  | "history"
  | "expired"
  | "storedKeys"
  | "dropHistoryRange"
  | "getVersion"
  | "logChange"
  | "changes"
  | "dataVersion"
  | "changesUpTo"
  | "agedVersion"
  | "getPruned"
  | "setPruned"
  | "prune"
  | "setVersion"
  | "savepoint"
  | "release"
  | "rollbackTo";

export function prepareStatements(
  db: Database.Database,
): Record<StatementName, Database.Statement> {
  const p = (sql: string) => db.prepare(sql);
  return {
    // Positional and without the key the caller already has: the hottest statement.
    point: p(
      "SELECT NULL, value, encoding, vs, expires_at FROM cellar_kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
    ).raw(),
    pointMeta: p(`SELECT ${META_COLUMNS} FROM cellar_kv WHERE key = @key AND ${LIVE}`).raw(),
    range: p(
      `SELECT ${BASE_COLUMNS} FROM cellar_kv WHERE key >= @start AND key < @end AND ${LIVE} ORDER BY key LIMIT @limit`,
    ).raw(),
    rangeMeta: p(
      `SELECT ${META_COLUMNS} FROM cellar_kv WHERE key >= @start AND key < @end AND ${LIVE} ORDER BY key LIMIT @limit`,
    ).raw(),
    rangeDesc: p(
      `SELECT ${BASE_COLUMNS} FROM cellar_kv WHERE key >= @start AND key < @end AND ${LIVE} ORDER BY key DESC LIMIT @limit`,
    ).raw(),
    rangeDescMeta: p(
      `SELECT ${META_COLUMNS} FROM cellar_kv WHERE key >= @start AND key < @end AND ${LIVE} ORDER BY key DESC LIMIT @limit`,
    ).raw(),
    count: p(
      `SELECT count(*) FROM cellar_kv WHERE key >= @start AND key < @end AND ${LIVE}`,
    ).pluck(),
    stored: p(`SELECT ${META_COLUMNS} FROM cellar_kv WHERE key = ?`).raw(),
    checkVs: p(`SELECT vs FROM cellar_kv WHERE key = @key AND ${LIVE}`).pluck(),
    upsert: p(UPSERT_KV),
    remove: p("DELETE FROM cellar_kv WHERE key = ?"),
    addRevision: p(`INSERT OR REPLACE INTO cellar_history
      (key, vs, revision, timestamp, modified_by, comment, data_hash, value, encoding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    pruneHistory: p(`DELETE FROM cellar_history WHERE key = @key AND vs <=
      (SELECT vs FROM cellar_history WHERE key = @key ORDER BY vs DESC LIMIT 1 OFFSET @keep)`),
    dropHistory: p("DELETE FROM cellar_history WHERE key = ?"),
    history: p(`SELECT revision, vs, timestamp, modified_by, comment, data_hash, value, encoding
      FROM cellar_history WHERE key = ? ORDER BY vs DESC LIMIT ?`),
    expired: p(
      "SELECT key FROM cellar_kv WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
    ).pluck(),
    storedKeys: p(
      `SELECT key, ${LIVE} FROM cellar_kv WHERE key >= @start AND key < @end ORDER BY key`,
    ).raw(),
    dropHistoryRange: p("DELETE FROM cellar_history WHERE key >= ? AND key < ?"),
    getVersion: p("SELECT value FROM cellar_meta WHERE name = 'version'").pluck(),
    logChange: p("INSERT INTO cellar_log (vs, at, changes) VALUES (?, ?, ?)"),
    changes: p(
      "SELECT vs, changes FROM cellar_log WHERE vs > @after ORDER BY vs LIMIT @limit",
    ).raw(),
    dataVersion: p("PRAGMA data_version").pluck(),
    changesUpTo: p("SELECT vs, changes FROM cellar_log WHERE vs > ? AND vs <= ? ORDER BY vs").raw(),
    // The newest commit at least `@age` ms old: pruning by age stops there.
    agedVersion: p("SELECT max(vs) FROM cellar_log WHERE at <= @before").pluck(),
    getPruned: p("SELECT value FROM cellar_meta WHERE name = 'pruned'").pluck(),
    setPruned: p("UPDATE cellar_meta SET value = max(value, ?) WHERE name = 'pruned'"),
    prune: p("DELETE FROM cellar_log WHERE vs <= ?"),
    setVersion: p("UPDATE cellar_meta SET value = ? WHERE name = 'version'"),
    savepoint: p("SAVEPOINT job"),
    release: p("RELEASE job"),
    rollbackTo: p("ROLLBACK TO job"),
  };
}

export function toRawValue(value: string | Buffer, encoding: number): RawValue {
  const name = TAG_ENCODING[encoding];
  if (name === undefined)
    throw new KvError("STORAGE_ERROR", `unknown value encoding ${encoding} in the file`);
  if (name === "json")
    return { encoding: name, data: typeof value === "string" ? value : value.toString("utf8") };
  return { encoding: name, data: typeof value === "string" ? Buffer.from(value) : value };
}

/** An entry from a `cellar_kv` row; its metadata's `dataHash` is `hash` of its value. */
export function toEntry(row: Row, withMeta: boolean, hash: Hash): RawEntry {
  const [key, value, encoding, vs, expiresAt] = row;
  const raw = toRawValue(value, encoding);
  const entry = { key, value: raw, versionstamp: formatVersionstamp(vs), expiresAt };
  if (!withMeta) return entry;
  const [, , , , , revision, createdAt, updatedAt, tags, modifiedBy, comment] = row;
  return {
    ...entry,
    meta: {
      version: revision as number,
      createdAt: createdAt as number,
      updatedAt: updatedAt as number,
      tags: tags ? (JSON.parse(tags as string) as string[]) : [],
      modifiedBy: modifiedBy as string | null,
      comment: comment as string | null,
      dataHash: hash(rawBytes(raw)),
    },
  };
}

export function storedOf(entry: RawEntry): StoredEntry {
  return {
    value: entry.value,
    versionstamp: entry.versionstamp,
    expiresAt: entry.expiresAt,
    meta: entry.meta!,
  };
}

/** A change-log row, as the `changes` statements select it: `[vs, packed changes]`. */
export type LogRow = [vs: number, changes: Buffer];

/** Log rows, ordered by vs, as one change event per commit, its keys in byte order. */
export function groupChanges(rows: readonly LogRow[], hash: Hash): ChangeEvent[] {
  return rows.map(([vs, packed]) => {
    const versionstamp = formatVersionstamp(vs);
    const changes = unpackChanges(packed).sort((a, b) => Buffer.compare(a.key, b.key));
    const entries: KeyChange[] = [];
    for (const change of changes) {
      if (change.type === null) continue;
      const { key, entry, previous } = change;
      entries.push({
        key,
        type: change.type,
        entry: entry && loggedEntry(key, entry, versionstamp, hash),
        previous:
          previous && loggedEntry(key, previous, formatVersionstamp(previous.versionstamp), hash),
      });
    }
    return { versionstamp, keys: changes.map((change) => change.key), entries };
  });
}

/** An entry a log row holds, made whole: its key, versionstamp and hash. */
export function loggedEntry(
  key: Uint8Array,
  packed: PackedEntry,
  versionstamp: string,
  hash: Hash,
): RawEntry & { meta: EntryMeta } {
  const value = toRawValue(packed.value, packed.encoding);
  return {
    key,
    value,
    versionstamp,
    expiresAt: packed.expiresAt,
    meta: metaFromLog(packed.meta, hash(rawBytes(value))),
  };
}
