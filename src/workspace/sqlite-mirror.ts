/**
 * The SQLite provider: a workspace's document mirrored into plain SQL tables that any SQLite
 * tool can read while the document lives — `_kv` (one row per KV key: `key`, `value` as JSON,
 * `updated_at`) and one table per workspace table (the id column as the primary key, then a
 * column per field, then `updated_at`). Kept in step on every change of the document, local or
 * received; rebuilt from the document when opened. The document stays the truth: writes to the
 * mirror are not read back.
 *
 * Column types follow the fields: `integer` and `boolean` (0/1) are INTEGER, `real` is REAL,
 * `text`, `select` and `ytext` are TEXT, and `date`, `tags` and `json` are JSON text.
 */
import type Database from "better-sqlite3";
import { KvError } from "../errors.js";
import { WORKSPACE_NAME_PATTERN } from "./columns.js";
import type { AnyWorkspace } from "./define.js";
import type { BoundWorkspace } from "./doc.js";

export interface SqliteMirror {
  /** The mirror's file. */
  readonly path: string;
  /** Stops following the document and closes the file. */
  close(): void;
}

type Statement = Database.Statement;

/** A name the definition allowed, double-quoted for SQL (names are letters, digits and `_`). */
function ident(name: string): string {
  if (!WORKSPACE_NAME_PATTERN.test(name) && name !== "_kv")
    throw new KvError("INVALID_ARGUMENT", `not a workspace name: ${JSON.stringify(name)}`);
  return `"${name}"`;
}

function sqlType(kind: string): string {
  switch (kind) {
    case "integer":
    case "boolean":
      return "INTEGER";
    case "real":
      return "REAL";
    default:
      return "TEXT";
  }
}

/** A field's JSON form as its SQL column holds it. */
function cell(kind: string, json: unknown): unknown {
  if (json === null || json === undefined) return null;
  switch (kind) {
    case "boolean":
      return json ? 1 : 0;
    case "integer":
    case "real":
    case "text":
    case "select":
    case "ytext":
    case "id":
      return json;
    default:
      return JSON.stringify(json);
  }
}

/**
 * Mirrors `workspace` (a bound workspace: a client's, or a server room's) into the SQLite file
 * `path`, creating it if needed and replacing the mirror tables it holds.
 *
 * @example
 * const client = await createClient(app, { kv });
 * const mirror = await mirrorToSqlite(client, "data/app.sqlite"); // SELECT * FROM _kv
 */
export async function mirrorToSqlite<D extends AnyWorkspace>(
  bound: BoundWorkspace<D>,
  path: string,
): Promise<SqliteMirror> {
  // Read through the untyped helpers: the mirror works for any definition.
  const workspace = bound as unknown as BoundWorkspace;
  const { default: Sqlite } = await import("better-sqlite3");
  const db = new Sqlite(path);
  db.pragma("journal_mode = WAL");
  const now = () => Date.now();

  db.exec(
    `DROP TABLE IF EXISTS "_kv"; CREATE TABLE "_kv" (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL)`,
  );
  const putKv = db.prepare(
    `INSERT INTO "_kv" (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
  );

  const tables: {
    name: string;
    fields: { name: string; kind: string }[];
    put: Statement;
    remove: Statement;
    clear: Statement;
  }[] = [];
  for (const [name, table] of Object.entries(workspace.$tables)) {
    const helper = table as BoundWorkspace["$tables"][string];
    const fields = Object.entries(helper.schema).map(([field, column]) => ({
      name: field,
      kind: (column as { kind: string }).kind,
    }));
    const id = helper.idField;
    const columns = fields.map(
      (f) => `${ident(f.name)} ${f.name === id ? "TEXT PRIMARY KEY" : sqlType(f.kind)}`,
    );
    db.exec(
      `DROP TABLE IF EXISTS ${ident(name)}; CREATE TABLE ${ident(name)} (${columns.join(", ")}, updated_at INTEGER NOT NULL)`,
    );
    const names = [...fields.map((f) => ident(f.name)), "updated_at"];
    tables.push({
      name,
      fields,
      put: db.prepare(
        `INSERT OR REPLACE INTO ${ident(name)} (${names.join(", ")}) VALUES (${names.map(() => "?").join(", ")})`,
      ),
      remove: db.prepare(`DELETE FROM ${ident(name)} WHERE ${ident(id)} = ?`),
      clear: db.prepare(`DELETE FROM ${ident(name)}`),
    });
  }

  const writeKeys = db.transaction((keys: readonly string[]) => {
    const at = now();
    for (const key of keys) {
      const helper = workspace.$kv[key];
      if (helper) putKv.run(key, JSON.stringify(helper.toJSON() ?? null), at);
    }
  });
  const writeRows = db.transaction(
    (table: (typeof tables)[number], upserted: readonly string[], deleted: readonly string[]) => {
      const helper = workspace.$tables[table.name]!;
      const at = now();
      for (const id of deleted) table.remove.run(id);
      for (const id of upserted) {
        const row = helper.getJSON(id) as Record<string, unknown> | null;
        // A row that does not read (a field without a default is invalid) is not mirrored.
        if (!row) table.remove.run(id);
        else table.put.run(...table.fields.map((f) => cell(f.kind, row[f.name])), at);
      }
    },
  );

  // The document as it is, then every change.
  writeKeys(workspace.$kv.$all().map((helper) => helper.name));
  for (const table of tables) {
    table.clear.run();
    const ids = (workspace.$tables[table.name]!.toJSON() as Record<string, unknown>[]).map((row) =>
      String(row[workspace.$tables[table.name]!.idField]),
    );
    writeRows(table, ids, []);
  }
  const stops = [
    workspace.$kv.$observe(({ keys }) => writeKeys(keys)),
    ...tables.map((table) =>
      workspace.$tables[table.name]!.observe(({ upserted, deleted }) =>
        writeRows(table, upserted, deleted),
      ),
    ),
  ];

  return {
    path,
    close() {
      for (const stop of stops) stop();
      db.close();
    },
  };
}
