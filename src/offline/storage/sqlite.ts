/**
 * A client store's storage in a SQLite file (Node): tables `entries`, `outbox` and `meta`, each
 * `save` one transaction. WAL, `synchronous = FULL`: a saved write survives a crash. The file
 * opens (and better-sqlite3 loads) on the first `load`.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Database as Connection } from "better-sqlite3";
import type { ClientStorage, StorageChanges, StoredState } from "../types.js";

/**
 * @example
 * const kv = await createClientKv({ url, storage: sqliteStorage("data/replica.db") });
 */
export function sqliteStorage(path: string): ClientStorage {
  let opened: ReturnType<typeof prepare> | null = null;
  const open = async () => {
    if (opened) return opened;
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const { default: Database } = await import("better-sqlite3");
    opened = prepare(new Database(path));
    return opened;
  };
  return {
    async load(): Promise<StoredState> {
      return (await open()).load();
    },
    async save(changes: StorageChanges): Promise<void> {
      (await open()).save(changes);
    },
    async close(): Promise<void> {
      if (opened?.db.open) opened.db.close();
    },
  };
}

function prepare(db: Connection) {
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(`
    CREATE TABLE IF NOT EXISTS entries (id TEXT PRIMARY KEY, json TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, json TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
  `);
  const put = db.prepare("INSERT OR REPLACE INTO entries (id, json) VALUES (?, ?)");
  const remove = db.prepare("DELETE FROM entries WHERE id = ?");
  const clear = db.prepare("DELETE FROM entries");
  const outboxPut = db.prepare("INSERT OR REPLACE INTO outbox (id, json) VALUES (?, ?)");
  const outboxRemove = db.prepare("DELETE FROM outbox WHERE id = ?");
  const metaPut = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
  const save = db.transaction((changes: StorageChanges) => {
    if (changes.clear) clear.run();
    for (const id of changes.remove ?? []) remove.run(id);
    for (const { id, json } of changes.put ?? []) put.run(id, json);
    for (const id of changes.outboxRemove ?? []) outboxRemove.run(id);
    for (const { id, json } of changes.outboxPut ?? []) outboxPut.run(id, json);
    for (const [key, value] of Object.entries(changes.meta ?? {})) metaPut.run(key, value);
  });
  return {
    db,
    load(): StoredState {
      const rows = (sql: string) => db.prepare(sql).all() as { id: string; json: string }[];
      const meta = db.prepare("SELECT key, value FROM meta").all() as {
        key: string;
        value: string;
      }[];
      return {
        entries: rows("SELECT id, json FROM entries ORDER BY id"),
        outbox: rows("SELECT id, json FROM outbox ORDER BY id") as unknown as {
          id: number;
          json: string;
        }[],
        meta: Object.fromEntries(meta.map((row) => [row.key, row.value])),
      };
    },
    save,
  };
}
