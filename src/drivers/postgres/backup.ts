/**
 * Backups of a PostgreSQL database into a new schema of the same database, and restores of such
 * a schema into another, optionally as of an earlier commit.
 *
 * A copy is one REPEATABLE READ transaction: it creates the new schema and its tables (the
 * driver's own migrations), then copies every table of the source from the transaction's one
 * snapshot, so the copy holds the database as of one commit — commits take the commit counter's
 * row lock and are transactions, so none is seen in part. Writers are never blocked: the copy
 * only reads the source. Nothing of the new schema is visible until the transaction commits, and
 * a failure (or a crash) rolls all of it back.
 */
import pg from "pg";
import { formatVersionstamp, parseVersionstamp } from "../../codec/versionstamp.js";
import type { BackupInfo, RestoreOptions } from "../../contract/index.js";
import { fail, KvError, redactUrl } from "../../errors.js";
import { TYPES } from "./rows.js";
import { migrations, quoteSchema } from "./schema.js";

/**
 * Cellar's tables, in the order they are copied. `cellar_listeners` (the processes listening
 * for commits) and `cellar_migrations` (written by the migrations) are not copied.
 */
const TABLES = [
  "cellar_meta",
  "cellar_kv",
  "cellar_history",
  "cellar_changes",
  "cellar_queue",
  "cellar_queue_dedup",
  "cellar_search_indexes",
  "cellar_search_docs",
] as const;

/**
 * Copies schema `from` into the new schema `to` on `client` (a connection of the database's own
 * pool, or one of its own for a restore), as of one snapshot.
 *
 * @example
 * await backupPostgres(client, "app", "app_backup", {});
 */
export async function backupPostgres(
  client: pg.ClientBase,
  from: string,
  to: string,
  options: RestoreOptions,
): Promise<BackupInfo> {
  const src = quoteSchema(from);
  const dst = quoteSchema(to);
  if (from === to) fail("INVALID_ARGUMENT", `cannot copy schema ${from} onto itself`);
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
  try {
    // The first statement takes the snapshot every table is copied from.
    const version = await metaValue(client, src, "version");
    if (version === null) fail("INVALID_ARGUMENT", `schema ${from} holds no Cellar database`);
    await clearTarget(client, to, dst, options.force === true);
    await createTables(client, dst);
    await copyTextSearchConfigs(client, from, dst);
    let done = 0;
    for (const table of TABLES) {
      await copyTable(client, src, dst, table);
      options.onProgress?.(++done, TABLES.length);
    }
    await copyTrigramIndex(client, from, dst);
    if (options.at !== undefined) await rewind(client, dst, options.at);
    const info = await describe(client, dst, to);
    if (options.at === undefined) await assertSameEntries(client, src, dst, to);
    else await assertNothingAfter(client, dst, to, options.at);
    await client.query("COMMIT");
    return options.at === undefined ? info : { ...info, versionstamp: options.at };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw asKvError(error, `cannot copy schema ${from} to ${to}`);
  }
}

/**
 * Restores the backup schema `from` of the database at `url` into the new schema `to`, as it is
 * or as of the versionstamp `options.at`, on a connection of its own.
 *
 * @example
 * await restorePostgres("postgres://app@db/prod", "app_backup", "app_restored", { at });
 */
export async function restorePostgres(
  url: string,
  from: string,
  to: string,
  options: RestoreOptions,
): Promise<BackupInfo> {
  const connection = new URL(url);
  connection.searchParams.delete("schema");
  const client = new pg.Client({ connectionString: connection.toString(), types: TYPES });
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (cause) {
    throw new KvError(
      "UNAVAILABLE",
      `cannot connect to PostgreSQL at ${redactUrl(url)}: ${(cause as Error).message}`,
      { cause },
    );
  }
  try {
    const found = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [from]);
    if (found.rowCount === 0)
      fail("NOT_FOUND", `cannot restore from schema ${from}: it does not exist`);
    return await backupPostgres(client, from, to, options);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function metaValue(client: pg.ClientBase, s: string, name: string): Promise<number | null> {
  const { rows } = await client
    .query<{ value: number }>(`SELECT value FROM ${s}.cellar_meta WHERE name = $1`, [name])
    .catch((error: { code?: string }) => {
      // 42P01: no such table, so no Cellar database there.
      if (error.code === "42P01") return { rows: [] };
      throw error;
    });
  return rows[0]?.value ?? null;
}

/** Refuses an existing target schema, or drops it when `force` and it is a Cellar database. */
async function clearTarget(client: pg.ClientBase, to: string, dst: string, force: boolean) {
  const exists = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [to]);
  if (exists.rowCount === 0) return;
  if (!force)
    fail("ALREADY_EXISTS", `schema ${to} already exists; pass force (--force) to replace it`);
  const cellar = await client.query(
    "SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'cellar_meta'",
    [to],
  );
  if (cellar.rowCount === 0)
    fail(
      "INVALID_ARGUMENT",
      `schema ${to} exists and is not a Cellar database: it is not replaced`,
    );
  await client.query(`DROP SCHEMA ${dst} CASCADE`);
}

/** The new schema at the driver's newest version: its migrations, inside this transaction. */
async function createTables(client: pg.ClientBase, dst: string): Promise<void> {
  await client.query(`CREATE SCHEMA ${dst}`);
  await client.query(
    `CREATE TABLE ${dst}.cellar_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
  );
  const steps = migrations(dst);
  for (const [index, step] of steps.entries()) {
    for (const sql of step) await client.query(sql);
    await client.query(`INSERT INTO ${dst}.cellar_migrations (version) VALUES ($1)`, [index + 1]);
  }
  // The copy brings the source's counters.
  await client.query(`DELETE FROM ${dst}.cellar_meta`);
}

/** Search indexes name text search configurations of their own schema: the copy gets its own. */
async function copyTextSearchConfigs(
  client: pg.ClientBase,
  from: string,
  dst: string,
): Promise<void> {
  const { rows } = await client.query<{ name: string; qualified: string }>(
    `SELECT c.cfgname AS name, quote_ident(n.nspname) || '.' || quote_ident(c.cfgname) AS qualified
      FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE n.nspname = $1`,
    [from],
  );
  for (const { name, qualified } of rows) {
    const { rows: quoted } = await client.query<{ q: string }>("SELECT quote_ident($1) AS q", [
      name,
    ]);
    await client.query(
      `CREATE TEXT SEARCH CONFIGURATION ${dst}.${quoted[0]!.q} (COPY = ${qualified})`,
    );
  }
}

async function copyTable(client: pg.ClientBase, src: string, dst: string, table: string) {
  const { rows } = await client.query<{ name: string }>(
    `SELECT quote_ident(column_name) AS name FROM information_schema.columns
      WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
    [src.slice(1, -1), table],
  );
  const columns = rows.map((row) => row.name);
  const select = columns.map((column) =>
    // A search index's configuration lives in its own schema: point it at the copy's.
    table === "cellar_search_indexes" && column === "config"
      ? `CASE WHEN config IS NULL THEN NULL ELSE ('${dst}.' || quote_ident((SELECT cfgname FROM pg_ts_config WHERE oid = config)))::regconfig END`
      : column,
  );
  const identity = table === "cellar_queue" ? "OVERRIDING SYSTEM VALUE" : "";
  await client.query(
    `INSERT INTO ${dst}.${table} (${columns.join(", ")}) ${identity} SELECT ${select.join(", ")} FROM ${src}.${table}`,
  );
  if (table === "cellar_queue") {
    await client.query(
      `SELECT setval(pg_get_serial_sequence('${dst}.cellar_queue', 'seq'), coalesce(max(seq), 0) + 1, false) FROM ${dst}.cellar_queue`,
    );
  }
}

/** The trigram index of search documents, when the source has one (pg_trgm is then installed). */
async function copyTrigramIndex(client: pg.ClientBase, from: string, dst: string) {
  const { rows } = await client.query<{ definition: string }>(
    "SELECT indexdef AS definition FROM pg_indexes WHERE schemaname = $1 AND indexname = 'cellar_search_docs_trgm'",
    [from],
  );
  const definition = rows[0]?.definition;
  if (!definition) return;
  const on = / ON (?:ONLY )?("?[A-Za-z0-9_]+"?)\.cellar_search_docs /.exec(definition);
  if (!on) return;
  await client.query(definition.replace(on[0], ` ON ${dst}.cellar_search_docs `));
}

/**
 * Takes the copy back to the state just after commit `at`, from its change log: each key that a
 * later commit changed gets the live entry it had before the first such commit (none: it is
 * deleted), which is its state at `at`; an atomic commit is thus undone whole. Revisions made
 * after `at` leave the history. The commit counter stays at the copy's head, so no versionstamp
 * is reused with another meaning, and the log restarts there (resuming from before is
 * `COMPACTED`).
 */
async function rewind(client: pg.ClientBase, s: string, at: string): Promise<void> {
  const target = parseVersionstamp(at);
  const head = (await metaValue(client, s, "version"))!;
  const pruned = (await metaValue(client, s, "pruned")) ?? 0;
  if (target > head) {
    fail(
      "INVALID_VERSIONSTAMP",
      `cannot restore as of ${at}: the backup holds the database as of ${formatVersionstamp(head)}, which is earlier`,
    );
  }
  if (target < pruned) {
    throw new KvError(
      "COMPACTED",
      `cannot restore as of ${at}: it is outside the backup's change-log window, which reaches back to ${formatVersionstamp(pruned)}; restore from an older backup`,
      { details: { oldest: formatVersionstamp(pruned) } },
    );
  }
  const first = `first AS (SELECT DISTINCT ON (key) key, prev_value_json, prev_value_bin, prev_encoding,
      prev_vs, prev_expires_at, prev_meta::json AS meta
    FROM ${s}.cellar_changes WHERE vs > $1 AND type IS NOT NULL ORDER BY key, vs)`;
  // Two statements: the parts of one statement all see the table as it was before it.
  await client.query(
    `WITH ${first} DELETE FROM ${s}.cellar_kv k USING first f WHERE k.key = f.key`,
    [target],
  );
  await client.query(
    `WITH ${first}
    INSERT INTO ${s}.cellar_kv (key, value_json, value_bin, encoding, vs, expires_at, revision,
      created_at, updated_at, tags, modified_by, comment, data_hash)
    SELECT key, prev_value_json, prev_value_bin, prev_encoding, prev_vs, prev_expires_at,
      (meta->>'version')::bigint, (meta->>'createdAt')::bigint, (meta->>'updatedAt')::bigint,
      CASE WHEN json_array_length(meta->'tags') > 0 THEN (meta->'tags')::text END,
      meta->>'modifiedBy', meta->>'comment', meta->>'dataHash'
    FROM first WHERE prev_vs IS NOT NULL`,
    [target],
  );
  await client.query(
    `WITH ${first} DELETE FROM ${s}.cellar_history h USING first f
      WHERE h.key = f.key AND f.prev_vs IS NOT NULL AND h.vs >= f.prev_vs`,
    [target],
  );
  await client.query(`DELETE FROM ${s}.cellar_history WHERE vs > $1`, [target]);
  await client.query(`DELETE FROM ${s}.cellar_changes`);
  await client.query(`UPDATE ${s}.cellar_meta SET value = $1 WHERE name = 'pruned'`, [head]);
}

async function describe(client: pg.ClientBase, s: string, to: string): Promise<BackupInfo> {
  const version = (await metaValue(client, s, "version")) ?? 0;
  const { rows } = await client.query<{ entries: number; bytes: number }>(
    `SELECT (SELECT count(*) FROM ${s}.cellar_kv)::int8 AS entries,
      (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r')::int8 AS bytes`,
    [to],
  );
  return {
    target: to,
    versionstamp: formatVersionstamp(version),
    entries: rows[0]!.entries,
    bytes: rows[0]!.bytes,
  };
}

/** A digest of every entry (key, value, versionstamp, expiry, metadata), in key order. */
const DIGEST = (s: string) =>
  `SELECT count(*)::int8 AS n, md5(coalesce(string_agg(md5(t::text), '' ORDER BY t.key), '')) AS digest FROM ${s}.cellar_kv t`;

async function assertSameEntries(client: pg.ClientBase, src: string, dst: string, to: string) {
  const [a, b] = [await client.query(DIGEST(src)), await client.query(DIGEST(dst))];
  const same = a.rows[0].n === b.rows[0].n && a.rows[0].digest === b.rows[0].digest;
  if (!same) fail("STORAGE_ERROR", `the copy in schema ${to} does not hold the source's entries`);
}

async function assertNothingAfter(client: pg.ClientBase, s: string, to: string, at: string) {
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::int8 AS n FROM ${s}.cellar_kv WHERE vs > $1`,
    [parseVersionstamp(at)],
  );
  if (rows[0]!.n > 0)
    fail("STORAGE_ERROR", `the copy in schema ${to} holds ${rows[0]!.n} entries newer than ${at}`);
}

function asKvError(error: unknown, doing: string): KvError {
  if (error instanceof KvError) return error;
  return new KvError("STORAGE_ERROR", `${doing}: ${(error as Error).message}`, { cause: error });
}
