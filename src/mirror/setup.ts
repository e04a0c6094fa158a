/**
 * What a mirror creates in its schema, idempotently and under an advisory lock (several mirrors
 * may start at once): its table, the state table holding each mirror's checkpoints, and for the
 * way in the inbox, the capture function and the table's triggers.
 *
 * The way in works with triggers rather than logical decoding: they need no replication slot, no
 * `wal_level = logical` and no superuser, and a change made while Cellar is down waits in the
 * inbox (a bigserial id per change) until it is read after the stored checkpoint. An AFTER
 * trigger records the key of each row inserted, updated or deleted and NOTIFYs
 * `cellar_mirror`; a BEFORE trigger clears the row's `versionstamp`, since no Cellar commit wrote
 * it. Both skip sessions with `cellar.origin = 'cellar'`: the mirror's own writes never come back.
 */
import type pg from "pg";
import { KvError } from "../errors.js";
import type { Layout } from "./layout.js";
import type { MirrorConfig } from "./options.js";

/** The channel the capture trigger notifies, with `schema.table` as the payload. */
export const CHANNEL = "cellar_mirror";

/** The mirror's row in the state table, as read at start. */
export interface MirrorState {
  /** Random, made when the row is created: names the checkpoint Cellar keeps of the way in. */
  readonly id: string;
  /** Every change up to this versionstamp is in the table; `null` before the first copy. */
  readonly outVersionstamp: string | null;
  /** The last inbox id applied to Cellar. */
  readonly inId: number;
  /** Why the table must be copied whole before following the change feed, if it must. */
  readonly fresh: "first start" | "prefix changed" | "table created" | null;
}

/**
 * Creates what the mirror needs; resolves to its state row, created if missing. A row left by a
 * mirror of another prefix or namespace into the same table loses its checkpoint.
 */
export async function setUp(
  client: pg.ClientBase,
  config: MirrorConfig,
  layout: Layout,
  namespace: string,
): Promise<MirrorState> {
  const s = layout.quote(config.schema);
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [
      `cellar_mirror:${config.schema}`,
    ]);
    const exists = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [
      config.schema,
    ]);
    // Only when missing: CREATE SCHEMA checks the CREATE privilege even when the schema exists.
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${s}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${layout.state} (
      table_name text PRIMARY KEY,
      mirror_id text NOT NULL DEFAULT gen_random_uuid()::text,
      prefix text NOT NULL,
      namespace text NOT NULL,
      out_versionstamp text,
      in_id bigint NOT NULL DEFAULT 0,
      resyncs integer NOT NULL DEFAULT 0,
      updated_at timestamptz NOT NULL DEFAULT now())`);
    const found = await client.query("SELECT to_regclass($1) IS NOT NULL AS found", [
      `${layout.table}`,
    ]);
    const created = found.rows[0].found !== true;
    for (const statement of layout.createTable()) await client.query(statement);
    await assertKeyColumn(client, config);
    if (config.direction === "both") await createCapture(client, config, layout);
    else await dropCapture(client, layout);
    const prefix = layout.keyOf(config.prefix);
    const inserted = await client.query(
      `INSERT INTO ${layout.state} (table_name, prefix, namespace) VALUES ($1, $2, $3)
       ON CONFLICT (table_name) DO NOTHING RETURNING 1`,
      [config.table, prefix, namespace],
    );
    const { rows } = await client.query(
      `SELECT mirror_id, prefix, namespace, out_versionstamp, in_id::text AS in_id FROM ${layout.state} WHERE table_name = $1`,
      [config.table],
    );
    const row = rows[0] as Record<string, string | null>;
    const first = inserted.rowCount === 1;
    const moved = !first && (row.prefix !== prefix || row.namespace !== namespace);
    if (moved || (created && !first)) {
      await client.query(
        `UPDATE ${layout.state} SET prefix = $2, namespace = $3, out_versionstamp = NULL, updated_at = now() WHERE table_name = $1`,
        [config.table, prefix, namespace],
      );
    }
    await client.query("COMMIT");
    const fresh = first
      ? "first start"
      : moved
        ? "prefix changed"
        : created
          ? "table created"
          : null;
    return {
      id: row.mirror_id!,
      outVersionstamp: fresh ? null : (row.out_versionstamp ?? null),
      inId: Number(row.in_id),
      fresh,
    };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}

/** A table made by someone else must still key its rows by a text `key`. */
async function assertKeyColumn(client: pg.ClientBase, config: MirrorConfig): Promise<void> {
  const { rows } = await client.query(
    `SELECT a.attname FROM pg_index i
     JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
     WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indnatts = 1
       AND a.atttypid = 'text'::regtype`,
    [config.schema, config.table],
  );
  if (!rows.some((row) => row.attname === "key")) {
    throw new KvError(
      "INVALID_ARGUMENT",
      `table ${config.schema}.${config.table} exists without a unique text column "key": mirror to a new table, or give it one`,
    );
  }
}

async function createCapture(
  client: pg.ClientBase,
  config: MirrorConfig,
  layout: Layout,
): Promise<void> {
  const q = layout.quote;
  const s = q(config.schema);
  await client.query(`CREATE TABLE IF NOT EXISTS ${layout.inbox} (
    id bigserial PRIMARY KEY,
    source text NOT NULL,
    key text NOT NULL,
    at timestamptz NOT NULL DEFAULT now())`);
  await client.query(
    `CREATE INDEX IF NOT EXISTS cellar_mirror_inbox_key ON ${layout.inbox} (source, key, id)`,
  );
  await client.query(`CREATE OR REPLACE FUNCTION ${s}.cellar_mirror_capture() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF current_setting('cellar.origin', true) IS NOT DISTINCT FROM 'cellar' THEN
        RETURN NULL;
      END IF;
      IF TG_OP <> 'INSERT' THEN
        INSERT INTO ${layout.inbox} (source, key) VALUES (TG_TABLE_NAME, OLD.key);
      END IF;
      IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.key IS DISTINCT FROM OLD.key) THEN
        INSERT INTO ${layout.inbox} (source, key) VALUES (TG_TABLE_NAME, NEW.key);
      END IF;
      PERFORM pg_notify('${CHANNEL}', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
      RETURN NULL;
    END $$`);
  await client.query(`CREATE OR REPLACE FUNCTION ${s}.cellar_mirror_stamp() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF current_setting('cellar.origin', true) IS DISTINCT FROM 'cellar' THEN
        NEW.versionstamp := NULL;
      END IF;
      RETURN NEW;
    END $$`);
  const table = layout.table;
  await client.query(`DROP TRIGGER IF EXISTS cellar_mirror_capture ON ${table}`);
  await client.query(`CREATE TRIGGER cellar_mirror_capture AFTER INSERT OR UPDATE OR DELETE
    ON ${table} FOR EACH ROW EXECUTE FUNCTION ${s}.cellar_mirror_capture()`);
  await client.query(`DROP TRIGGER IF EXISTS cellar_mirror_stamp ON ${table}`);
  await client.query(`CREATE TRIGGER cellar_mirror_stamp BEFORE INSERT OR UPDATE
    ON ${table} FOR EACH ROW EXECUTE FUNCTION ${s}.cellar_mirror_stamp()`);
}

/** A mirror that no longer flows both ways stops capturing the table's changes. */
async function dropCapture(client: pg.ClientBase, layout: Layout): Promise<void> {
  await client.query(`DROP TRIGGER IF EXISTS cellar_mirror_capture ON ${layout.table}`);
  await client.query(`DROP TRIGGER IF EXISTS cellar_mirror_stamp ON ${layout.table}`);
}
