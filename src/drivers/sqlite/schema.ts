/**
 * The SQLite driver's tables and statements, and the conversions between rows and the driver
 * contract's entries.
 */
import type Database from "better-sqlite3";
import { ENCODING_TAG, type RawValue, TAG_ENCODING } from "../../codec/value.js";
import { formatVersionstamp, parseVersionstamp } from "../../codec/versionstamp.js";
import type { StoredEntry } from "../../contract/apply.js";
import type { ChangeEvent, EntryMeta, KeyChange, RawEntry } from "../../contract/index.js";
import { KvError } from "../../errors.js";
import {
  CHANGE_TYPE_CODE,
  CHANGE_TYPES,
  metaFromText,
  metaToText,
  type StoredChange,
} from "../shared/key-changes.js";

export const SCHEMA_VERSION = 3;

/**
 * A change-log row's columns after `(vs, key)`: the change type (`CHANGE_TYPE_CODE`; NULL for a
 * written key whose visible state did not change), the commit's time, the entry the commit left
 * and the live entry before it, metadata as JSON text.
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
const CHANGE_COLUMNS_DDL = CHANGE_COLUMNS.map((column) => `  ${column}`).join(",\n");
const CHANGE_ROW =
  "vs, key, type, value, encoding, expires_at, meta, prev_value, prev_encoding, prev_vs, prev_expires_at, prev_meta";

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS cellar_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cellar_kv (
  key BLOB PRIMARY KEY,
  value NOT NULL,
  encoding INTEGER NOT NULL,
  vs INTEGER NOT NULL,
  expires_at INTEGER,
  revision INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  tags TEXT,
  modified_by TEXT,
  comment TEXT,
  data_hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cellar_kv_expiry ON cellar_kv (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS cellar_history (
  key BLOB NOT NULL,
  vs INTEGER NOT NULL,
  revision INTEGER NOT NULL,
  timestamp INTEGER NOT NULL,
  modified_by TEXT,
  comment TEXT,
  data_hash TEXT,
  value,
  encoding INTEGER,
  PRIMARY KEY (key, vs)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cellar_changes (
  vs INTEGER NOT NULL,
  key BLOB NOT NULL,
${CHANGE_COLUMNS_DDL},
  PRIMARY KEY (vs, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cellar_search (
  id INTEGER PRIMARY KEY,
  fields INTEGER NOT NULL,
  tokenizer TEXT NOT NULL,
  language TEXT NOT NULL
);
`;

export const LIVE = "(expires_at IS NULL OR expires_at > @now)";
export const BASE_COLUMNS = "key, value, encoding, vs, expires_at";
export const META_COLUMNS = `${BASE_COLUMNS}, revision, created_at, updated_at, tags, modified_by, comment, data_hash`;

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
  db.prepare("INSERT OR REPLACE INTO cellar_meta (name, value) VALUES ('schema', ?)").run(
    SCHEMA_VERSION,
  );
  db.prepare("INSERT OR IGNORE INTO cellar_meta (name, value) VALUES ('version', 0)").run();
  db.prepare("INSERT OR IGNORE INTO cellar_meta (name, value) VALUES ('pruned', 0)").run();
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
    upsert: p(`INSERT OR REPLACE INTO cellar_kv
      (key, value, encoding, vs, expires_at, revision, created_at, updated_at, tags, modified_by, comment, data_hash)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
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
    logChange: p(`INSERT INTO cellar_changes (vs, key, type, at, value, encoding, expires_at,
      meta, prev_value, prev_encoding, prev_vs, prev_expires_at, prev_meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    changes: p(`SELECT ${CHANGE_ROW} FROM cellar_changes WHERE vs > @after AND vs <= coalesce(
        (SELECT max(vs) FROM (SELECT DISTINCT vs FROM cellar_changes WHERE vs > @after ORDER BY vs LIMIT @limit)), @after)
      ORDER BY vs, key`).raw(),
    dataVersion: p("PRAGMA data_version").pluck(),
    changesUpTo: p(
      `SELECT ${CHANGE_ROW} FROM cellar_changes WHERE vs > ? AND vs <= ? ORDER BY vs, key`,
    ).raw(),
    // The newest commit at least `@age` ms old: pruning by age stops there.
    agedVersion: p("SELECT max(vs) FROM cellar_changes WHERE at <= @before").pluck(),
    getPruned: p("SELECT value FROM cellar_meta WHERE name = 'pruned'").pluck(),
    setPruned: p("UPDATE cellar_meta SET value = max(value, ?) WHERE name = 'pruned'"),
    prune: p("DELETE FROM cellar_changes WHERE vs <= ?"),
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

export function toEntry(row: Row, withMeta: boolean): RawEntry {
  const [key, value, encoding, vs, expiresAt] = row;
  const entry = {
    key,
    value: toRawValue(value, encoding),
    versionstamp: formatVersionstamp(vs),
    expiresAt,
  };
  if (!withMeta) return entry;
  const [, , , , , revision, createdAt, updatedAt, tags, modifiedBy, comment, dataHash] = row;
  return {
    ...entry,
    meta: metaOf(revision, createdAt, updatedAt, tags, modifiedBy, comment, dataHash),
  };
}

export function metaOf(
  ...[revision, createdAt, updatedAt, tags, modifiedBy, comment, dataHash]: unknown[]
): EntryMeta {
  return {
    version: revision as number,
    createdAt: createdAt as number,
    updatedAt: updatedAt as number,
    tags: tags ? (JSON.parse(tags as string) as string[]) : [],
    modifiedBy: modifiedBy as string | null,
    comment: comment as string | null,
    dataHash: dataHash as string,
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

/** A change-log row, as `CHANGE_ROW` selects it. */
export type ChangeRow = [
  vs: number,
  key: Buffer,
  type: number | null,
  value: string | Buffer | null,
  encoding: number | null,
  expiresAt: number | null,
  meta: string | null,
  prevValue: string | Buffer | null,
  prevEncoding: number | null,
  prevVs: number | null,
  prevExpiresAt: number | null,
  prevMeta: string | null,
];

/** The log row of one written key of the commit `vs` made at `at`. */
export function changeRow(
  vs: number,
  at: number,
  key: Uint8Array,
  change: StoredChange | null,
): unknown[] {
  const entry = change?.entry;
  const previous = change?.previous;
  return [
    vs,
    key,
    change ? CHANGE_TYPE_CODE[change.type] : null,
    at,
    entry ? entry.value.data : null,
    entry ? ENCODING_TAG[entry.value.encoding] : null,
    entry ? entry.expiresAt : null,
    entry ? metaToText(entry.meta) : null,
    previous ? previous.value.data : null,
    previous ? ENCODING_TAG[previous.value.encoding] : null,
    previous ? parseVersionstamp(previous.versionstamp) : null,
    previous ? previous.expiresAt : null,
    previous ? metaToText(previous.meta) : null,
  ];
}

/** Change-log rows, ordered by vs then key, as one change event per commit. */
export function groupChanges(rows: readonly ChangeRow[]): ChangeEvent[] {
  const changes: { versionstamp: string; keys: Uint8Array[]; entries: KeyChange[] }[] = [];
  for (const row of rows) {
    const [vs, key, type] = row;
    const versionstamp = formatVersionstamp(vs);
    let last = changes.at(-1);
    if (last?.versionstamp !== versionstamp) {
      last = { versionstamp, keys: [], entries: [] };
      changes.push(last);
    }
    last.keys.push(key);
    if (type !== null) last.entries.push(keyChangeOf(row, versionstamp));
  }
  return changes;
}

function keyChangeOf(row: ChangeRow, versionstamp: string): KeyChange {
  const [, key, type, value, encoding, expiresAt, meta] = row;
  const [prevValue, prevEncoding, prevVs, prevExpiresAt, prevMeta] = row.slice(7) as [
    string | Buffer,
    number,
    number | null,
    number | null,
    string,
  ];
  return {
    key,
    type: CHANGE_TYPES[type!]!,
    entry:
      meta === null
        ? null
        : {
            key,
            value: toRawValue(value!, encoding!),
            versionstamp,
            expiresAt,
            meta: metaFromText(meta),
          },
    previous:
      prevVs === null
        ? null
        : {
            key,
            value: toRawValue(prevValue, prevEncoding),
            versionstamp: formatVersionstamp(prevVs),
            expiresAt: prevExpiresAt,
            meta: metaFromText(prevMeta),
          },
  };
}
