/**
 * What a mirror is asked to do, checked before anything connects: the prefix, the PostgreSQL URL
 * and schema, the table and its payload columns (names that become SQL identifiers, types from a
 * fixed list), the direction and the tuning knobs. Every refusal is `INVALID_ARGUMENT` naming the
 * field, so `cellar serve` can print it as one line.
 */
import { encodeKey, type KvKey } from "../codec/key.js";
import type { KvEntry } from "../core/types.js";
import { describe, fail } from "../errors.js";

/** SQL types a payload column may have; values are converted to them before they are bound. */
export const COLUMN_TYPES = [
  "text",
  "integer",
  "bigint",
  "double precision",
  "numeric",
  "boolean",
  "timestamptz",
  "date",
  "uuid",
  "jsonb",
] as const;

export type MirrorColumnType = (typeof COLUMN_TYPES)[number];

/**
 * One payload column: a function of the entry (a `jsonb` column holding what it returns), or a
 * typed column `{ type, from? }` whose value is `from(entry)`, by default the value's field of
 * the column's name.
 */
export type MirrorColumn<T = unknown> =
  | ((entry: KvEntry<T>) => unknown)
  | { readonly type: MirrorColumnType; readonly from?: (entry: KvEntry<T>) => unknown };

/** Where the mirror's changes flow: Cellar to PostgreSQL only, or both ways. */
export type MirrorDirection = "out" | "both";

/** The lines a mirror logs: pino's call shape, so a pino logger fits as it is. */
export interface MirrorLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** One write of a direction: a PostgreSQL transaction (out) or a Cellar commit (in). */
export interface MirrorWrite {
  readonly direction: "out" | "in";
  /** Rows upserted or deleted (out), external changes applied (in). */
  readonly rows: number;
  /** After the write: the out checkpoint (a versionstamp) or the last inbox id applied. */
  readonly checkpoint: string;
}

export interface MirrorOptions<T = unknown> {
  /** The keys mirrored: every key under this prefix (the prefix itself included). */
  readonly prefix: KvKey;
  /** `postgres://user@host:5432/database`, with `?schema=name` for a schema other than `public`. */
  readonly to: string;
  /** The table, one row per key; created if missing. Letters, digits and `_`, used as written. */
  readonly table: string;
  /** The schema of the table and of the mirror's own tables; default the URL's, else `public`. */
  readonly schema?: string;
  /** `"out"` (default): Cellar to PostgreSQL. `"both"`: changes made in the table flow back. */
  readonly direction?: MirrorDirection;
  /** Columns computed from each entry, beside `key`, `key_parts`, `versionstamp`, … */
  readonly payload?: Readonly<Record<string, MirrorColumn<T>>>;
  /** Keep the lossless `value jsonb` column (default true). */
  readonly value?: boolean;
  /**
   * The value a row stands for, on the way in (`direction: "both"`): `row` has every column as
   * node-postgres reads it. Default: the `value` column, decoded from its tagged JSON.
   */
  readonly fromRow?: (row: Readonly<Record<string, unknown>>) => T;
  /** Rows per PostgreSQL transaction, and changes per Cellar commit on the way in (default 500). */
  readonly batchSize?: number;
  /** Backoff after a failure: from `initialMs` (default 100), doubling up to `maxMs` (default 5000). */
  readonly retry?: { readonly initialMs?: number; readonly maxMs?: number };
  /** How often the inbox is read without a notification, in ms (default 5000). */
  readonly pollInterval?: number;
  /** Where resynchronisations, outages and skipped rows are reported (default: process warnings). */
  readonly logger?: MirrorLogger;
  /** Called after each write, e.g. to measure lag. */
  readonly onWrite?: (write: MirrorWrite) => void;
}

/** A payload column, resolved. */
export interface ColumnSpec {
  readonly name: string;
  readonly type: MirrorColumnType;
  readonly from: (entry: KvEntry) => unknown;
}

/** The options, checked and with their defaults. */
export interface MirrorConfig {
  readonly prefix: KvKey;
  /** The URL to connect with: `schema` removed. */
  readonly connectionString: string;
  readonly schema: string;
  readonly table: string;
  readonly direction: MirrorDirection;
  readonly columns: readonly ColumnSpec[];
  readonly value: boolean;
  readonly fromRow: ((row: Readonly<Record<string, unknown>>) => unknown) | undefined;
  readonly batchSize: number;
  readonly retry: { readonly initialMs: number; readonly maxMs: number };
  readonly pollInterval: number;
  readonly logger: MirrorLogger | undefined;
  readonly onWrite: ((write: MirrorWrite) => void) | undefined;
}

const KNOWN = [
  "prefix",
  "to",
  "table",
  "schema",
  "direction",
  "payload",
  "value",
  "fromRow",
  "batchSize",
  "retry",
  "pollInterval",
  "logger",
  "onWrite",
];

/** Columns every mirror table has; a payload column may not take their names. */
const FIXED_COLUMNS = ["key", "key_parts", "versionstamp", "updated_at", "expires_at"];

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** PostgreSQL cuts identifiers at 63 bytes; names are ASCII here, so 63 characters. */
const MAX_IDENTIFIER = 63;

/**
 * Throws `INVALID_ARGUMENT` unless `name` can be a table, schema or column name as written:
 * letters, digits and `_`, not starting with a digit, at most 63 characters.
 *
 * @example
 * assertIdentifier("table", "users; DROP TABLE x"); // throws
 */
export function assertIdentifier(what: string, name: unknown): asserts name is string {
  if (typeof name !== "string" || !IDENTIFIER.test(name) || name.length > MAX_IDENTIFIER) {
    fail(
      "INVALID_ARGUMENT",
      `mirror ${what} must be 1–${MAX_IDENTIFIER} letters, digits or underscores, not starting with a digit; got ${describe(name)}`,
    );
  }
}

/**
 * Checks `options` and fills in the defaults.
 *
 * @example
 * const config = mirrorConfig({ prefix: ["users"], to: "postgres://app@db/app", table: "users" });
 */
export function mirrorConfig(options: MirrorOptions): MirrorConfig {
  if (typeof options !== "object" || options === null)
    fail("INVALID_ARGUMENT", `mirror takes an options object, got ${describe(options)}`);
  for (const name of Object.keys(options)) {
    if (!KNOWN.includes(name))
      fail(
        "INVALID_ARGUMENT",
        `mirror takes no option ${JSON.stringify(name)}; it takes ${KNOWN.join(", ")}`,
      );
  }
  if (!Array.isArray(options.prefix))
    fail("INVALID_ARGUMENT", `mirror prefix must be a key, got ${describe(options.prefix)}`);
  encodeKey(options.prefix);
  const { connectionString, schema: fromUrl } = parseUrl(options.to);
  const schema = options.schema ?? fromUrl ?? "public";
  assertIdentifier("schema", schema);
  assertIdentifier("table", options.table);
  if (options.table.startsWith("cellar_mirror"))
    fail("INVALID_ARGUMENT", `mirror table names starting with cellar_mirror are the mirror's own`);
  const direction = options.direction ?? "out";
  if (direction !== "out" && direction !== "both")
    fail("INVALID_ARGUMENT", `mirror direction is "out" or "both", got ${describe(direction)}`);
  const value = options.value ?? true;
  if (typeof value !== "boolean")
    fail("INVALID_ARGUMENT", `mirror value is true or false, got ${describe(value)}`);
  if (options.fromRow !== undefined && typeof options.fromRow !== "function")
    fail("INVALID_ARGUMENT", `mirror fromRow must be a function, got ${describe(options.fromRow)}`);
  if (direction === "both" && !value && !options.fromRow)
    fail(
      "INVALID_ARGUMENT",
      "a mirror in both directions reads each row's value column, or needs fromRow when value is false",
    );
  const columns = payloadColumns(options.payload);
  if (!value && columns.length === 0)
    fail("INVALID_ARGUMENT", "a mirror without the value column needs payload columns");
  const retry = options.retry ?? {};
  return {
    prefix: options.prefix,
    connectionString,
    schema,
    table: options.table,
    direction,
    columns,
    value,
    fromRow: options.fromRow,
    batchSize: positive("batchSize", options.batchSize, 500, 10_000),
    retry: {
      initialMs: positive("retry.initialMs", retry.initialMs, 100, 3_600_000),
      maxMs: positive("retry.maxMs", retry.maxMs, 5000, 3_600_000),
    },
    pollInterval: positive("pollInterval", options.pollInterval, 5000, 3_600_000),
    logger: options.logger,
    onWrite: options.onWrite,
  };
}

function positive(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > max)
    fail(
      "INVALID_ARGUMENT",
      `mirror ${name} must be an integer in [1, ${max}], got ${describe(value)}`,
    );
  return value;
}

function payloadColumns(payload: MirrorOptions["payload"]): ColumnSpec[] {
  if (payload === undefined) return [];
  if (typeof payload !== "object" || payload === null || Array.isArray(payload))
    fail(
      "INVALID_ARGUMENT",
      `mirror payload maps column names to columns, got ${describe(payload)}`,
    );
  return Object.entries(payload).map(([name, column]) => {
    assertIdentifier("payload column", name);
    if (FIXED_COLUMNS.includes(name) || name === "value")
      fail(
        "INVALID_ARGUMENT",
        `mirror payload column ${JSON.stringify(name)} is one of the table's own columns (${[...FIXED_COLUMNS, "value"].join(", ")})`,
      );
    if (typeof column === "function") return { name, type: "jsonb", from: column };
    if (typeof column !== "object" || column === null || !COLUMN_TYPES.includes(column.type))
      fail(
        "INVALID_ARGUMENT",
        `mirror payload column ${name} is a function or { type, from? } with type one of ${COLUMN_TYPES.join(", ")}; got ${describe(column?.type ?? column)}`,
      );
    if (column.from !== undefined && typeof column.from !== "function")
      fail("INVALID_ARGUMENT", `mirror payload column ${name}: from must be a function`);
    return { name, type: column.type, from: column.from ?? fieldOf(name) };
  });
}

/** The value's own field `name`, or `null` when the value is not an object. */
const fieldOf =
  (name: string) =>
  (entry: KvEntry): unknown => {
    const value = entry.value;
    return typeof value === "object" && value !== null && Object.hasOwn(value, name)
      ? (value as Record<string, unknown>)[name]
      : null;
  };

/** Splits the schema off a PostgreSQL URL; refuses anything else. */
function parseUrl(url: unknown): { connectionString: string; schema: string | undefined } {
  let parsed: URL | null = null;
  try {
    if (typeof url === "string") parsed = new URL(url);
  } catch {
    parsed = null;
  }
  if (!parsed || (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:"))
    fail(
      "INVALID_ARGUMENT",
      "mirror to is a PostgreSQL URL: postgres://user@host:5432/database[?schema=name]",
    );
  const schema = parsed.searchParams.get("schema") ?? undefined;
  parsed.searchParams.delete("schema");
  return { connectionString: parsed.toString(), schema };
}
