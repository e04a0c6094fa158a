/**
 * The PostgreSQL driver's tables, and the migrations that create and upgrade them.
 *
 * Every table lives in one schema (default `public`), so several databases can share one
 * PostgreSQL database. Migrations run under a transaction-scoped advisory lock, so processes
 * opening the same schema at once never race; each applied step is recorded in
 * `cellar_migrations`, and a schema newer than this Cellar is refused.
 */
import type pg from "pg";
import { KvError } from "../../errors.js";

// NOTIFY channels are identifiers of at most 63 bytes; the schema's channel is `cellar:<name>`.
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,55}$/;

/** The schema name as a quoted identifier, after checking it is a plain identifier. */
export function quoteSchema(name: string): string {
  if (!IDENTIFIER.test(name)) {
    throw new KvError(
      "INVALID_ARGUMENT",
      `a PostgreSQL schema name is 1–56 letters, digits or underscores, not starting with a digit; got ${JSON.stringify(name)}`,
    );
  }
  return `"${name}"`;
}

/** The NOTIFY channel of a schema: commits and queue wake-ups are announced there. */
export const channelOf = (schema: string): string => `cellar:${schema}`;

/**
 * Migration steps, oldest first; step `i` brings the schema to version `i + 1`. `s` is the
 * quoted schema name. Values are stored as `json` when their encoding is JSON (so SQL can look
 * inside them) and as `bytea` otherwise; times are epoch milliseconds.
 */
export function migrations(s: string): readonly (readonly string[])[] {
  return [
    [
      `CREATE TABLE IF NOT EXISTS ${s}.cellar_meta (name text PRIMARY KEY, value bigint NOT NULL)`,
      `INSERT INTO ${s}.cellar_meta (name, value) VALUES ('version', 0), ('pruned', 0) ON CONFLICT (name) DO NOTHING`,
      `CREATE TABLE IF NOT EXISTS ${s}.cellar_kv (
        key bytea PRIMARY KEY,
        value_json json,
        value_bin bytea,
        encoding smallint NOT NULL,
        vs bigint NOT NULL,
        expires_at bigint,
        revision bigint NOT NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        tags text,
        modified_by text,
        comment text,
        data_hash text NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS cellar_kv_expiry ON ${s}.cellar_kv (expires_at) WHERE expires_at IS NOT NULL`,
      `CREATE TABLE IF NOT EXISTS ${s}.cellar_history (
        key bytea NOT NULL,
        vs bigint NOT NULL,
        revision bigint NOT NULL,
        timestamp bigint NOT NULL,
        modified_by text,
        comment text,
        data_hash text,
        value_json json,
        value_bin bytea,
        encoding smallint,
        PRIMARY KEY (key, vs)
      )`,
      `CREATE TABLE IF NOT EXISTS ${s}.cellar_changes (vs bigint NOT NULL, key bytea NOT NULL, PRIMARY KEY (vs, key))`,
      `CREATE TABLE IF NOT EXISTS ${s}.cellar_queue (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        queue bytea NOT NULL,
        id text NOT NULL,
        state smallint NOT NULL,
        priority bigint NOT NULL,
        available_at bigint NOT NULL,
        attempts integer NOT NULL,
        backoff jsonb NOT NULL,
        undelivered jsonb NOT NULL,
        value_json json,
        value_bin bytea,
        encoding smallint NOT NULL,
        token text,
        locked_until bigint,
        enqueued_at bigint NOT NULL,
        failed_at bigint,
        error text
      )`,
      `CREATE UNIQUE INDEX IF NOT EXISTS cellar_queue_id ON ${s}.cellar_queue (queue, id)`,
      `CREATE INDEX IF NOT EXISTS cellar_queue_ready ON ${s}.cellar_queue (queue, priority DESC, seq) WHERE state = 0`,
      `CREATE INDEX IF NOT EXISTS cellar_queue_lease ON ${s}.cellar_queue (queue, locked_until) WHERE state = 1`,
      `CREATE INDEX IF NOT EXISTS cellar_queue_dead ON ${s}.cellar_queue (queue, failed_at, seq) WHERE state = 2`,
      `CREATE UNIQUE INDEX IF NOT EXISTS cellar_queue_token ON ${s}.cellar_queue (token) WHERE token IS NOT NULL`,
      `CREATE TABLE IF NOT EXISTS ${s}.cellar_queue_dedup (
        queue bytea NOT NULL,
        key text NOT NULL,
        id text NOT NULL,
        until bigint NOT NULL,
        PRIMARY KEY (queue, key)
      )`,
      `CREATE INDEX IF NOT EXISTS cellar_queue_dedup_until ON ${s}.cellar_queue_dedup (until)`,
    ],
    [
      // The processes listening for commits, so that a commit announces itself only when some
      // other process may be listening (see `feed.ts`).
      `CREATE TABLE IF NOT EXISTS ${s}.cellar_listeners (origin text PRIMARY KEY, pid integer NOT NULL)`,
    ],
    [
      // Each log row says what its commit did to the key (see `change-log.ts`): the change type
      // (NULL when nothing a reader could see changed), the commit's time, the entry the commit
      // left and the live entry before it, metadata as JSON text. The rows logged so far hold
      // only keys, so the log restarts at the head: resuming from before it is `truncated`, as
      // after pruning. `at` is required, so that a process of an older Cellar fails its commits
      // rather than log changes the feed could not report.
      `TRUNCATE ${s}.cellar_changes`,
      `ALTER TABLE ${s}.cellar_changes
        ADD COLUMN type smallint,
        ADD COLUMN at bigint NOT NULL,
        ADD COLUMN value_json json,
        ADD COLUMN value_bin bytea,
        ADD COLUMN encoding smallint,
        ADD COLUMN expires_at bigint,
        ADD COLUMN meta text,
        ADD COLUMN prev_value_json json,
        ADD COLUMN prev_value_bin bytea,
        ADD COLUMN prev_encoding smallint,
        ADD COLUMN prev_vs bigint,
        ADD COLUMN prev_expires_at bigint,
        ADD COLUMN prev_meta text`,
      `UPDATE ${s}.cellar_meta p SET value = v.value FROM ${s}.cellar_meta v
        WHERE p.name = 'pruned' AND v.name = 'version'`,
    ],
    [
      // Full-text search (see `search.ts`): the catalog of indexes, with the text search
      // configuration of each (NULL for a trigram index), and every index's documents in one
      // table. `folded` holds a trigram index's text, folded; its trigram index needs pg_trgm
      // and is made with the first trigram search index, as configurations are with theirs.
      `CREATE TABLE ${s}.cellar_search_indexes (
        id bigint PRIMARY KEY,
        fields integer NOT NULL,
        tokenizer text NOT NULL,
        language text NOT NULL,
        config regconfig
      )`,
      `CREATE TABLE ${s}.cellar_search_docs (
        index_id bigint NOT NULL,
        key bytea NOT NULL,
        fields text[] NOT NULL,
        tsv tsvector,
        folded text,
        PRIMARY KEY (index_id, key)
      )`,
      `CREATE INDEX cellar_search_docs_tsv ON ${s}.cellar_search_docs USING gin (tsv)`,
      // A document's fields as one tsvector in which no phrase spans two fields: each field's
      // positions follow the previous field's after a gap, held by a placeholder lexeme deleted
      // at the end (concatenation offsets the right side by the left side's last position).
      `CREATE FUNCTION ${s}.cellar_search_tsv(config regconfig, fields text[]) RETURNS tsvector
        LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
        DECLARE
          out tsvector := '';
          field text;
        BEGIN
          FOREACH field IN ARRAY fields LOOP
            IF out <> '' THEN out := out || ''' '':1'::tsvector; END IF;
            out := out || to_tsvector(config, field);
          END LOOP;
          RETURN ts_delete(out, ' ');
        END $$`,
    ],
  ];
}

/**
 * Creates the schema and its tables if missing and applies pending migrations, in one
 * transaction under an advisory lock keyed by the schema name.
 */
export async function migrate(client: pg.ClientBase, schema: string): Promise<void> {
  const s = quoteSchema(schema);
  const steps = migrations(s);
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`cellar:${schema}`]);
    const exists = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema]);
    // Only when missing: CREATE SCHEMA checks the CREATE privilege even when the schema exists.
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${s}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${s}.cellar_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ version: number | null }>(
      `SELECT max(version) AS version FROM ${s}.cellar_migrations`,
    );
    const current = rows[0]?.version ?? 0;
    if (current > steps.length) {
      throw new KvError(
        "STORAGE_ERROR",
        `schema ${schema} is at version ${current}, newer than this Cellar's ${steps.length}`,
      );
    }
    for (let version = current + 1; version <= steps.length; version++) {
      for (const sql of steps[version - 1]!) await client.query(sql);
      await client.query(`INSERT INTO ${s}.cellar_migrations (version) VALUES ($1)`, [version]);
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}
