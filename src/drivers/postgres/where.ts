/**
 * Where filters on PostgreSQL. JSON values are tested in SQL with the `json` operators (see
 * `shared/where-sql.ts`); any other value (v8, u64, bytes), and JSON those operators refuse to
 * read (a U+0000 or a lone surrogate in any of its strings), comes back as a candidate that
 * `rawMatches` decides. Candidates that do not match would make a page short, so a read fetches further
 * batches until `limit` entries match or the range ends: in one statement when the first batch
 * settles it, else again from the start in one REPEATABLE READ transaction, so every batch
 * reads one snapshot.
 */
import type pg from "pg";
import { ENCODING_TAG } from "../../codec/value.js";
import { type Filter, type Path, rawMatches } from "../../contract/filter.js";
import type { KeyRange, RawEntry, ReadRange } from "../../contract/index.js";
import {
  type Bind,
  hasUnicodeEscape,
  isPortableText,
  type JsonKind,
  type SqlField,
  type SqlValue,
  sqlAnd,
  sqlOr,
  UNICODE_ESCAPE_SQL,
  type WhereDialect,
  whereToSql,
} from "../shared/where-sql.js";
import { BASE_COLUMNS, entryOf, type KvRow, live, META_COLUMNS, rawValueOf } from "./rows.js";

/** Rows whose value SQL reads: the SQL twin of {@link needsJavaScript}. */
const IN_SQL = `(encoding = ${ENCODING_TAG.json} AND coalesce(strpos(value_json::text, ${UNICODE_ESCAPE_SQL}), 1) = 0)`;

const needsJavaScript = (row: Pick<KvRow, "encoding" | "value_json">): boolean =>
  row.encoding !== ENCODING_TAG.json || hasUnicodeEscape(row.value_json ?? "");

/**
 * A text segment that a json path would read as an array index when it meets an array
 * (PostgreSQL parses it with `strtoint`), where the filter's semantics find nothing.
 */
const INDEX_LIKE = /^\s*[+-]?\d+$/;

function pathArray(path: Path): string[] | null {
  const out: string[] = [];
  for (const segment of path) {
    if (typeof segment === "number") {
      if (!Number.isSafeInteger(segment) || segment < 0) return null;
      out.push(String(segment));
    } else {
      if (!isPortableText(segment) || INDEX_LIKE.test(segment)) return null;
      out.push(segment);
    }
  }
  return out;
}

/**
 * A JSON value: `json()` is an expression of type json (NULL when absent), `text()` its text
 * (a string's characters, or the JSON text of any other kind).
 */
class JsonValue implements SqlValue {
  constructor(
    protected readonly json: () => string,
    private readonly asText: () => string,
  ) {}

  is(kind: JsonKind): string {
    const type = `coalesce(json_typeof(${this.json()}) = '${kind === "true" || kind === "false" ? "boolean" : kind}', FALSE)`;
    return kind === "true" || kind === "false" ? `(${type} AND ${this.text} = '${kind}')` : type;
  }

  get number(): string {
    return `(${this.text})::float8`;
  }

  get text(): string {
    return this.asText();
  }
}

const ELEMENT = new JsonValue(
  () => "e.v",
  () => "(e.v #>> '{}')",
);

class JsonField extends JsonValue implements SqlField {
  get exists(): string {
    return `(${this.json()} IS NOT NULL)`;
  }

  someElement(test: (element: SqlValue) => string): string {
    return `EXISTS (SELECT 1 FROM json_array_elements(${this.json()}) AS e(v) WHERE ${test(ELEMENT)})`;
  }
}

/**
 * Fields are read with the operators of the `json` type the value is stored as: each reads the
 * text only as far as it needs, several times faster than a cast to `jsonb` per row.
 */
export const POSTGRES_WHERE: WhereDialect = {
  field(path: Path, bind: Bind): SqlField | null {
    const segments = pathArray(path);
    if (segments === null) return null;
    // Bound on first use: PostgreSQL refuses a parameter the statement does not use.
    let bound: string | undefined;
    const at = () => (bound ??= bind(segments, "text[]"));
    return new JsonField(
      () => `(value_json #> ${at()})`,
      () => `(value_json #>> ${at()})`,
    );
  },
  includes: (text, needle) => `(strpos(${text}, ${needle}) > 0)`,
  startsWith: (text, needle) => `(left(${text}, length(${needle})) = ${needle})`,
  endsWith: (text, needle) => `(right(${text}, length(${needle})) = ${needle})`,
  // Under the C collation lower() folds ASCII letters only, whatever the database's locale.
  foldAscii: (text) => `lower((${text}) COLLATE "C")`,
  codePointOrder: (text) => `((${text}) COLLATE "C")`,
  // Text tests read any kind's text and run first, sparing most rows the kind test. A cast to
  // float8 or json_array_elements() fails on another kind: there the kind test runs first.
  when: (value, kind, test) =>
    kind === "string"
      ? `(CASE WHEN ${test} THEN ${value.is(kind)} ELSE FALSE END)`
      : `(CASE WHEN ${value.is(kind)} THEN ${test} ELSE FALSE END)`,
  and: sqlAnd,
  or: sqlOr,
};

/** The SQL condition on a row's JSON and its parameters from `$${first}` on; null: none. */
function translate(filter: Filter, first: number): { sql: string | null; values: unknown[] } {
  const values: unknown[] = [];
  const bind: Bind = (value, type) => {
    values.push(value);
    return `$${first + values.length - 1}::${type}`;
  };
  const where = whereToSql(filter, POSTGRES_WHERE, bind);
  return where === null ? { sql: null, values: [] } : { sql: where.sql, values };
}

/**
 * A filter on `cellar_kv` rows for a statement of the caller's: `sql` (parameters from `$first`
 * on, values in `values`) keeps the rows that match, and rows whose value SQL cannot read, for
 * which `accepts` runs `rawMatches`. The statement must name `cellar_kv`'s columns unqualified.
 */
export interface RowFilter {
  readonly sql: string;
  readonly values: readonly unknown[];
  accepts(row: Pick<KvRow, "encoding" | "value_json" | "value_bin">): boolean;
}

export function rowFilter(filter: Filter, first: number): RowFilter {
  const { sql, values } = translate(filter, first);
  const check = (row: Pick<KvRow, "encoding" | "value_json" | "value_bin">) =>
    rawMatches(filter, rawValueOf(row.value_json, row.value_bin, row.encoding));
  return {
    sql: sql === null ? "TRUE" : `(CASE WHEN ${IN_SQL} THEN ${sql} ELSE TRUE END)`,
    values,
    accepts: (row) => (sql === null || needsJavaScript(row) ? check(row) : true),
  };
}

/** Runs one statement: on its own, or inside the caller's transaction. */
export type Run = (query: pg.QueryConfig) => Promise<pg.QueryResult>;

/** Filtered reads and counts of one schema's entries. */
export class PostgresWhere {
  readonly #kv: string;

  constructor(s: string) {
    this.#kv = `${s}.cellar_kv`;
  }

  /**
   * The entries of `range` (non-empty, `limit` > 0) that match its filter. With `once`, null
   * when one statement could not settle the page; without, as many statements as it takes,
   * which `run` must read from one snapshot.
   */
  async read(
    run: Run,
    range: ReadRange & { where: Filter },
    now: number,
    meta: boolean,
    once: boolean,
  ): Promise<RawEntry[] | null> {
    const { sql, values } = translate(range.where, 5);
    const text = `SELECT ${meta ? META_COLUMNS : BASE_COLUMNS} FROM ${this.#kv}
      WHERE key >= $1 AND key < $2 AND ${live(3)}${sql === null ? "" : ` AND (CASE WHEN ${IN_SQL} THEN ${sql} ELSE TRUE END)`}
      ORDER BY key ${range.reverse ? "DESC" : "ASC"} LIMIT $4`;
    const out: RawEntry[] = [];
    let { start, end } = range;
    let batch = range.limit;
    for (;;) {
      const rows = (await run({ text, values: [start, end, now, batch, ...values] }))
        .rows as KvRow[];
      for (const row of rows) {
        if (sql !== null && !needsJavaScript(row)) out.push(entryOf(row, meta));
        else if (rawMatches(range.where, rawValueOf(row.value_json, row.value_bin, row.encoding)))
          out.push(entryOf(row, meta));
        if (out.length === range.limit) return out;
      }
      if (rows.length < batch) return out;
      if (once) return null;
      const last = rows.at(-1)!.key;
      if (range.reverse) end = last;
      else start = Buffer.concat([last, Buffer.of(0)]);
      batch = Math.max(range.limit - out.length, Math.min(batch * 2, 1024));
    }
  }

  /**
   * The live entries of `range` that match `where`, in one statement: SQL counts the JSON
   * values it reads, and returns the others for `rawMatches`.
   */
  async count(run: Run, range: KeyRange, where: Filter, now: number): Promise<number> {
    const { sql, values } = translate(where, 4);
    const inRange = `key >= $1 AND key < $2 AND ${live(3)}`;
    const candidates = `SELECT value_json, value_bin, encoding, NULL::bigint AS n FROM ${this.#kv}
      WHERE ${inRange}${sql === null ? "" : ` AND NOT ${IN_SQL}`}`;
    const text =
      sql === null
        ? candidates
        : `SELECT NULL::json AS value_json, NULL::bytea AS value_bin, NULL::smallint AS encoding, count(*) AS n
          FROM ${this.#kv} WHERE ${inRange} AND (CASE WHEN ${IN_SQL} THEN ${sql} ELSE FALSE END)
          UNION ALL ${candidates}`;
    const { rows } = await run({ text, values: [range.start, range.end, now, ...values] });
    let n = 0;
    for (const row of rows as (KvRow & { n: number | null })[]) {
      if (row.n !== null) n += row.n;
      else if (rawMatches(where, rawValueOf(row.value_json, row.value_bin, row.encoding))) n++;
    }
    return n;
  }
}
