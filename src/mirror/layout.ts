/**
 * The table a mirror keeps, and the way entries become its rows and rows become values again.
 *
 * | column | type | holds |
 * |---|---|---|
 * | `key` | `text` primary key | the Cellar key as a key path (`users/ada/~n:1`), lossless and canonical |
 * | `key_parts` | `jsonb` | the key's parts in their JSON form (`["users","ada",1]`) |
 * | `versionstamp` | `text` | the commit that wrote the row; `NULL` after a change made in PostgreSQL |
 * | `updated_at`, `expires_at` | `timestamptz` | from the entry's metadata |
 * | `value` | `jsonb` | the value in the tagged JSON of the HTTP API (unless `value: false`) |
 * | payload columns | as declared | what each column's function makes of the entry |
 *
 * Names are validated (see `options.ts`) and quoted with node-postgres' `escapeIdentifier`; every
 * value is bound as a parameter.
 */
import { Serializer } from "node:v8";
import { toBase64Url } from "../codec/bytes.js";
import { encodeKey, type KvKey, startsWith } from "../codec/key.js";
import { KvU64 } from "../codec/u64.js";
import type { KvEntry } from "../core/types.js";
import { bareMessage, describe, fail } from "../errors.js";
import { keyFromPath, keyToJson, keyToPath, valueFromJson, valueToJson } from "../wire/json.js";
import type { MirrorColumnType, MirrorConfig } from "./options.js";

/** One column of the table. */
interface Column {
  readonly name: string;
  readonly type: MirrorColumnType;
}

/** A row to upsert: its cells in column order, and what could not be put in a cell. */
export interface RowOf {
  readonly key: string;
  readonly cells: readonly unknown[];
  readonly problems: readonly string[];
}

/** What a changed row of the table means for Cellar. */
export type Incoming =
  | {
      readonly ok: true;
      readonly key: KvKey;
      readonly value: unknown;
      readonly expiresAt: number | null;
    }
  | { readonly ok: true; readonly key: KvKey; readonly deleted: true }
  | { readonly ok: false; readonly reason: string };

type Quote = (name: string) => string;

/** The SQL and the conversions of one mirror's table. */
export class Layout {
  readonly columns: readonly Column[];
  /** `"schema"."table"`. */
  readonly table: string;
  /** `"schema".cellar_mirror_state`. */
  readonly state: string;
  /** `"schema".cellar_mirror_inbox`. */
  readonly inbox: string;
  readonly #prefix: Uint8Array;
  readonly #statements = new Map<string, string>();

  constructor(
    private readonly config: MirrorConfig,
    readonly quote: Quote,
  ) {
    const s = quote(config.schema);
    this.table = `${s}.${quote(config.table)}`;
    this.state = `${s}.cellar_mirror_state`;
    this.inbox = `${s}.cellar_mirror_inbox`;
    this.columns = [
      { name: "key", type: "text" },
      { name: "key_parts", type: "jsonb" },
      { name: "versionstamp", type: "text" },
      { name: "updated_at", type: "timestamptz" },
      { name: "expires_at", type: "timestamptz" },
      ...(config.value ? [{ name: "value", type: "jsonb" } as const] : []),
      ...config.columns.map(({ name, type }) => ({ name, type })),
    ];
    this.#prefix = encodeKey(config.prefix);
  }

  /** `CREATE TABLE IF NOT EXISTS`, then a column added for each one a former layout lacked. */
  createTable(): string[] {
    const q = this.quote;
    const columns = this.columns.map(
      (c) => `${q(c.name)} ${c.type}${c.name === "key" ? " PRIMARY KEY" : ""}`,
    );
    return [
      `CREATE TABLE IF NOT EXISTS ${this.table} (${columns.join(", ")})`,
      ...this.columns
        .slice(1)
        .map((c) => `ALTER TABLE ${this.table} ADD COLUMN IF NOT EXISTS ${q(c.name)} ${c.type}`),
    ];
  }

  /**
   * One statement, so one transaction: upsert rows (parameters 1…n, one array per column), delete
   * keys ($n+1 keys, $n+2 versionstamps), then move the checkpoint ($n+3 table, $n+4 checkpoint,
   * or null to leave it). A row is only replaced by a later commit's; with `inbox`, a key with a
   * change made in PostgreSQL that Cellar has not applied yet ($n+5 source, $n+6 the inbox id
   * applied) is left alone, since that change will reach Cellar and come back as a later commit.
   * With `force` (a resynchronisation) rows are replaced whatever their versionstamp.
   */
  writeStatement(options: { inbox: boolean; force: boolean }): { name: string; text: string } {
    const name = `cellar_mirror_write${options.inbox ? "_inbox" : ""}${options.force ? "_force" : ""}`;
    let text = this.#statements.get(name);
    if (text === undefined) {
      text = this.#writeText(options);
      this.#statements.set(name, text);
    }
    // Prepared once per connection under its name: each mirror has a pool of its own.
    return { name, text };
  }

  #writeText(options: { inbox: boolean; force: boolean }): string {
    const q = this.quote;
    const n = this.columns.length;
    const names = this.columns.map((c) => q(c.name)).join(", ");
    const arrays = this.columns.map((c, i) => `$${i + 1}::${c.type}[]`).join(", ");
    const pending = (key: string) =>
      `NOT EXISTS (SELECT 1 FROM ${this.inbox} i WHERE i.source = $${n + 5} AND i.key = ${key} AND i.id > $${n + 6})`;
    const updates = this.columns
      .slice(1)
      .map((c) => `${q(c.name)} = EXCLUDED.${q(c.name)}`)
      .join(", ");
    const newer = (versionstamp: string) =>
      `(cur.versionstamp IS NULL OR cur.versionstamp <= ${versionstamp})`;
    return `WITH up AS (
  INSERT INTO ${this.table} AS cur (${names})
  SELECT * FROM unnest(${arrays}) AS v(${names})
  ${options.inbox ? `WHERE ${pending("v.key")}` : ""}
  ON CONFLICT (key) DO UPDATE SET ${updates}
  ${options.force ? "" : `WHERE ${newer("EXCLUDED.versionstamp")}`}
  RETURNING 1
), del AS (
  DELETE FROM ${this.table} AS cur USING unnest($${n + 1}::text[], $${n + 2}::text[]) AS d(key, versionstamp)
  WHERE cur.key = d.key AND ${newer("d.versionstamp")}
  ${options.inbox ? `AND ${pending("d.key")}` : ""}
  RETURNING 1
), cp AS (
  UPDATE ${this.state} SET out_versionstamp = $${n + 4}, updated_at = now()
  WHERE table_name = $${n + 3} AND $${n + 4}::text IS NOT NULL
  RETURNING 1
)
SELECT (SELECT count(*) FROM up)::int AS upserted, (SELECT count(*) FROM del)::int AS deleted`;
  }

  /** The parameters of {@link writeStatement}. */
  writeParameters(
    rows: readonly RowOf[],
    deletes: readonly { key: string; versionstamp: string }[],
    checkpoint: string | null,
    inbox: { applied: number } | null,
  ): unknown[] {
    const arrays = this.columns.map((_, i) => rows.map((row) => row.cells[i]));
    return [
      ...arrays,
      deletes.map((d) => d.key),
      deletes.map((d) => d.versionstamp),
      this.config.table,
      checkpoint,
      ...(inbox ? [this.config.table, inbox.applied] : []),
    ];
  }

  /** The row of `entry`: what could not be put in a payload cell is `NULL` there and reported. */
  rowOf(entry: KvEntry): RowOf {
    const problems: string[] = [];
    const key = keyToPath(entry.key);
    const parts = JSON.stringify(keyToJson(entry.key));
    const metadata = entry.metadata;
    const cells: unknown[] = [
      key,
      // PostgreSQL's jsonb holds no U+0000; the key column holds the key all the same.
      parts.includes("\\u0000") ? null : parts,
      entry.versionstamp,
      metadata ? new Date(metadata.updatedAt).toISOString() : null,
      metadata?.expiresAt ? new Date(metadata.expiresAt).toISOString() : null,
    ];
    if (this.config.value) cells.push(losslessJson(entry.value));
    for (const column of this.config.columns) {
      try {
        cells.push(cell(column.type, column.from(entry)));
      } catch (error) {
        cells.push(null);
        problems.push(`column ${column.name}: ${bareMessage(error as Error)}`);
      }
    }
    return { key, cells, problems };
  }

  /** The key path of a key, as the `key` column holds it. */
  keyOf(key: KvKey): string {
    return keyToPath(key);
  }

  /**
   * What the row now stored under `key` (or its absence) means: a value to set, a key to delete,
   * or a reason it cannot be read (a key that is not canonical or lies outside the prefix, a
   * value that does not decode).
   */
  incoming(keyText: string, row: Readonly<Record<string, unknown>> | undefined): Incoming {
    let key: KvKey;
    try {
      key = keyFromPath(keyText);
      encodeKey(key);
    } catch (error) {
      return {
        ok: false,
        reason: `key ${JSON.stringify(keyText)}: ${bareMessage(error as Error)}`,
      };
    }
    const canonical = keyToPath(key);
    if (canonical !== keyText)
      return {
        ok: false,
        reason: `key ${JSON.stringify(keyText)} is not a canonical key path; write ${JSON.stringify(canonical)}`,
      };
    if (!startsWith(encodeKey(key), this.#prefix))
      return {
        ok: false,
        reason: `key ${JSON.stringify(keyText)} is not under the mirror's prefix`,
      };
    if (!row) return { ok: true, key, deleted: true };
    try {
      const value = this.#valueOf(row);
      const expires = row.expires_at;
      const expiresAt = expires instanceof Date ? expires.getTime() : null;
      return { ok: true, key, value, expiresAt };
    } catch (error) {
      return {
        ok: false,
        reason: `key ${JSON.stringify(keyText)}: ${bareMessage(error as Error)}`,
      };
    }
  }

  #valueOf(row: Readonly<Record<string, unknown>>): unknown {
    const { $value, ...columns } = row;
    if (this.config.fromRow) return this.config.fromRow(columns);
    if (typeof $value !== "string") fail("INVALID_VALUE", "the row's value column is NULL");
    return valueFromJson(JSON.parse($value));
  }

  /** The columns to read a changed row with: every column, and `value` as text as `$value`. */
  readColumns(): string {
    return this.config.value ? `*, value::text AS "$value"` : "*";
  }
}

/**
 * `value` in the tagged JSON of `wire/json.ts`. PostgreSQL's jsonb holds no U+0000, so a value
 * with one in a string is written whole in V8's serialization (`{"$v8": …}`), lossless still.
 */
function losslessJson(value: unknown): string {
  const json = JSON.stringify(valueToJson(value));
  if (!json.includes("\\u0000")) return json;
  const serializer = new Serializer();
  serializer.writeHeader();
  serializer.writeValue(value);
  return JSON.stringify({ $v8: toBase64Url(serializer.releaseBuffer()) });
}

const INT32 = 2 ** 31;
const INT64 = 2n ** 63n;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NUMERIC = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** `value` as a parameter for a column of `type`; throws `INVALID_VALUE` when it cannot be one. */
function cell(type: MirrorColumnType, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  const refuse = (): never =>
    fail("INVALID_VALUE", `${describe(value)} cannot be stored as ${type}`);
  const noNul = (text: string) => (text.includes("\u0000") ? refuse() : text);
  const integer = (n: unknown, bits: 32 | 64): string => {
    const big = n instanceof KvU64 ? n.value : n;
    if (typeof big === "number" && Number.isSafeInteger(big))
      return bits === 32 && (big < -INT32 || big >= INT32) ? refuse() : String(big);
    if (typeof big === "bigint" && bits === 64 && big >= -INT64 && big < INT64) return String(big);
    return refuse();
  };
  switch (type) {
    case "text":
      if (typeof value === "string") return noNul(value);
      if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean")
        return String(value);
      return refuse();
    case "integer":
      return integer(value, 32);
    case "bigint":
      return integer(value, 64);
    case "double precision":
      if (typeof value === "number") return value;
      if (typeof value === "bigint") return Number(value);
      return refuse();
    case "numeric":
      if (typeof value === "number" && Number.isFinite(value)) return String(value);
      if (typeof value === "bigint") return String(value);
      if (value instanceof KvU64) return String(value.value);
      if (typeof value === "string" && NUMERIC.test(value)) return value;
      return refuse();
    case "boolean":
      return typeof value === "boolean" ? value : refuse();
    case "timestamptz":
    case "date": {
      const date =
        value instanceof Date ? value : typeof value === "number" ? new Date(value) : null;
      if (date && !Number.isNaN(date.getTime())) {
        const iso = date.toISOString();
        return type === "date" ? iso.slice(0, 10) : iso;
      }
      if (typeof value === "string" && (type === "timestamptz" || DATE.test(value)))
        return noNul(value);
      return refuse();
    }
    case "uuid":
      return typeof value === "string" && UUID.test(value) ? value : refuse();
    case "jsonb": {
      const json = JSON.stringify(valueToJson(value));
      return json.includes("\\u0000") ? refuse() : json;
    }
  }
}
