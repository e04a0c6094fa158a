/**
 * Stores compared at the level of their files: raw better-sqlite3 in the shape of Cellar's
 * entries table (the floor for writing Cellar's rows), and what a closed file takes on disk.
 */
import { existsSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { decodeKey, encodeKey } from "../src/codec/key.js";
import {
  ENTRIES,
  KEYS,
  type Key,
  LIST_LIMIT,
  PREFIX,
  type User,
  VALUES,
  writer,
} from "./workload.js";

/** Cellar's SQLite pragmas at its default durability, `full`. */
const CELLAR_PRAGMAS = [
  "journal_mode = WAL",
  "synchronous = FULL",
  "cache_size = -65536",
  "wal_autocheckpoint = 10000",
];

/** The shape of Cellar's `cellar_kv` (src/drivers/sqlite/schema.ts, schema 4). */
const KV_TABLE = `CREATE TABLE IF NOT EXISTS cellar_kv (
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

const JSON_ENCODING = 4;

/**
 * Hand-written better-sqlite3 writing Cellar's rows (its key encoding, JSON text values) into a
 * table of Cellar's shape with Cellar's pragmas, and nothing else: no revision archive, no change
 * log, no commit counter. Values are parsed on read, as Cellar does.
 */
export function cellarShaped(path: string) {
  const db = new Database(path);
  for (const pragma of CELLAR_PRAGMAS) db.pragma(pragma);
  db.exec(KV_TABLE);
  const upsert = db.prepare(`INSERT OR REPLACE INTO cellar_kv
    (key, value, encoding, vs, expires_at, revision, created_at, updated_at, tags, modified_by, comment)
    VALUES (?, ?, ?, ?, NULL, 1, NULL, ?, NULL, NULL, NULL)`);
  const select = db.prepare("SELECT value FROM cellar_kv WHERE key = ?").pluck();
  const range = db
    .prepare("SELECT key, value FROM cellar_kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?")
    .raw();
  let vs = 0;
  const put = (key: Key, value: User) =>
    upsert.run(encodeKey(key), JSON.stringify(value), JSON_ENCODING, ++vs, Date.now());
  const commit = db.transaction((entries: readonly (readonly [Key, User])[]) => {
    for (const [key, value] of entries) put(key, value);
  });
  const set = writer(put);
  const setAll = db.transaction((indices: readonly number[]) => {
    for (const i of indices) set(i);
  });
  // A prefix's range: its encoded bytes followed by anything (0x00 … 0xff).
  const low = encodeKey(PREFIX);
  const high = Buffer.concat([low, Buffer.of(0xff)]);
  return {
    put,
    /** Sets `entries` in one transaction, as Cellar commits an atomic operation. */
    commit: (entries: readonly (readonly [Key, User])[]) => commit(entries),
    /** Changes the workload's entries `indices` in one transaction (see `writer`). */
    setAll: (indices: readonly number[]) => setAll(indices),
    /** Loads the workload's entries. */
    populate: () => commit(KEYS.slice(0, ENTRIES).map((key, i) => [key, VALUES[i]!] as const)),
    get: (i: number) => {
      const value = select.get(encodeKey(KEYS[i]!)) as string | undefined;
      return value === undefined ? null : (JSON.parse(value) as User);
    },
    list: () =>
      (range.all(low, high, LIST_LIMIT) as [Buffer, string][]).map(([key, value]) => ({
        key: decodeKey(key),
        value: JSON.parse(value) as User,
      })),
    close: () => db.close(),
  };
}

/** A closed SQLite file's size: the database and what is left of its WAL. */
export function fileBytes(path: string): { db: number; wal: number } {
  const size = (file: string) => (existsSync(file) ? statSync(file).size : 0);
  return { db: size(path), wal: size(`${path}-wal`) };
}

/** Bytes per table and index of a SQLite file, largest first, from its `dbstat` table. */
export function tableBytes(path: string): { name: string; bytes: number }[] {
  const db = new Database(path);
  try {
    return db
      .prepare("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC")
      .all() as { name: string; bytes: number }[];
  } finally {
    db.close();
  }
}

export const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
