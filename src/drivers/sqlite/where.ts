/**
 * Where filters on SQLite: one statement per read or count. JSON values are tested in SQL with
 * SQLite's JSON functions (see `shared/where-sql.ts`); any other value (v8, u64, bytes), and
 * JSON whose strings SQLite would not read back exactly, is handed to `rawMatches` through a
 * function registered on the connection, inside the same statement. So `LIMIT` counts matching
 * entries, and a filter SQL cannot express still reads one full page in one statement.
 */
import type Database from "better-sqlite3";
import { ENCODING_TAG } from "../../codec/value.js";
import { type Filter, type Path, rawMatches } from "../../contract/filter.js";
import type { KeyRange, ReadRange } from "../../contract/index.js";
import {
  type Bind,
  isPortableText,
  type JsonKind,
  type SqlField,
  type SqlValue,
  UNICODE_ESCAPE_SQL,
  type WhereDialect,
  whereToSql,
} from "../shared/where-sql.js";
import { BASE_COLUMNS, LIVE, META_COLUMNS, type Row, toRawValue } from "./schema.js";

/** The stored document, named so that `json_each`'s own `value` column cannot shadow it. */
const DOC = "cellar_kv.value";

const TYPES: Record<JsonKind, string> = {
  number: "IN ('integer', 'real')",
  string: "= 'text'",
  true: "= 'true'",
  false: "= 'false'",
  null: "= 'null'",
  array: "= 'array'",
};

/**
 * A digit segment may index an array or name an object's property, which a JSON path must
 * choose between: each such segment doubles the paths tried. Past this many, JavaScript decides.
 */
const MAX_PATHS = 8;

/**
 * JSON path strings for `path`, one per way of reading its digit segments. A property name is
 * always quoted (`$."name"`); SQLite's quoted labels end at the next `"` and read `\` as an
 * escape, so a name with either cannot be spelled and the filter goes to JavaScript.
 */
function jsonPaths(path: Path): string[] | null {
  let paths = ["$"];
  for (const segment of path) {
    if (typeof segment === "number") {
      if (!Number.isSafeInteger(segment) || segment < 0) return null;
      paths = paths.flatMap((p) => [`${p}[${segment}]`, `${p}."${segment}"`]);
      if (paths.length > MAX_PATHS) return null;
    } else {
      if (!isPortableText(segment) || /["\\]/.test(segment)) return null;
      paths = paths.map((p) => `${p}."${segment}"`);
    }
  }
  return paths;
}

const value = (type: string, number: string, text: string): SqlValue => ({
  is: (kind) => `coalesce(${type} ${TYPES[kind]}, FALSE)`,
  number: `CAST(${number} AS REAL)`,
  text,
});

const ELEMENT = value("e.type", "e.atom", "e.atom");

export const SQLITE_WHERE: WhereDialect = {
  field(path: Path, bind: Bind): SqlField | null {
    const paths = jsonPaths(path);
    if (paths === null) return null;
    const bound = paths.map((p) => bind(p, "text"));
    // The one path that reaches something, if any: the others step into the wrong container.
    const at =
      bound.length === 1
        ? bound[0]!
        : `(CASE ${bound.map((p) => `WHEN json_type(${DOC}, ${p}) IS NOT NULL THEN ${p}`).join(" ")} END)`;
    const extract = `json_extract(${DOC}, ${at})`;
    const type = `json_type(${DOC}, ${at})`;
    return {
      ...value(type, extract, extract),
      exists: `(${type} IS NOT NULL)`,
      someElement: (test) =>
        `EXISTS (SELECT 1 FROM json_each(${DOC}, ${at}) AS e WHERE ${test(ELEMENT)})`,
    };
  },
  includes: (text, needle) => `(instr(${text}, ${needle}) > 0)`,
  startsWith: (text, needle) => `(substr(${text}, 1, length(${needle})) = ${needle})`,
  endsWith: (text, needle) => `(substr(${text}, -length(${needle})) = ${needle})`,
  // Without ICU (better-sqlite3 builds none), lower() folds ASCII letters only.
  foldAscii: (text) => `lower(${text})`,
  // JSON text and bound strings compare under BINARY: UTF-8 bytes, which is code point order.
  codePointOrder: (text) => text,
  // SQLite's functions take a value of any kind without failing, so the comparison can run
  // first: it rejects most rows, and the kind is looked up only for the rest. (AND would run
  // both: inside an expression SQLite short-circuits CASE, not AND.)
  when: (value, kind, test) => `(CASE WHEN ${test} THEN ${value.is(kind)} ELSE FALSE END)`,
  and: (parts) =>
    `(CASE ${parts
      .slice(0, -1)
      .map((p) => `WHEN NOT ${p} THEN FALSE `)
      .join("")}ELSE ${parts.at(-1)} END)`,
  or: (parts) =>
    `(CASE ${parts
      .slice(0, -1)
      .map((p) => `WHEN ${p} THEN TRUE `)
      .join("")}ELSE ${parts.at(-1)} END)`,
};

/** Filtered reads and counts on one connection. */
export class SqliteWhere {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  /** The filters of the statements running now, by the id the statement passes back. */
  readonly #filters = new Map<number, Filter>();
  #nextId = 0;

  constructor(db: Database.Database) {
    this.#db = db;
    db.function("cellar_where", { directOnly: true }, (data, encoding, id) => {
      const filter = this.#filters.get(id as number);
      const raw = toRawValue(data as string | Buffer, encoding as number);
      return filter && rawMatches(filter, raw) ? 1 : 0;
    });
  }

  /** The rows of `range` (non-empty, `limit` > 0) whose value matches `range.where`. */
  read(range: ReadRange & { where: Filter }, now: number, meta: boolean): Row[] {
    const columns = meta ? META_COLUMNS : BASE_COLUMNS;
    const order = range.reverse ? "DESC" : "ASC";
    return this.run(
      range.where,
      (condition) => `SELECT ${columns} FROM cellar_kv
      WHERE key >= @start AND key < @end AND ${LIVE} AND ${condition}
      ORDER BY key ${order} LIMIT @limit`,
      (stmt, params) =>
        stmt.raw().all({ ...params, start: range.start, end: range.end, now, limit: range.limit }),
    ) as Row[];
  }

  /** The number of live entries in `range` whose value matches `where`. */
  count(range: KeyRange, where: Filter, now: number): number {
    return this.run(
      where,
      (condition) => `SELECT count(*) FROM cellar_kv
      WHERE key >= @start AND key < @end AND ${LIVE} AND ${condition}`,
      (stmt, params) =>
        stmt.pluck().get({ ...params, start: range.start, end: range.end, now }) as number,
    );
  }

  /**
   * Runs a statement over `cellar_kv` rows (the table named as it is, not aliased) with the
   * filter's condition: `sql` places the condition, `run` binds the parameters it gets with its
   * own, which must not start with `w` or be named `filter`.
   */
  run<T>(
    filter: Filter,
    sql: (condition: string) => string,
    run: (stmt: Database.Statement, params: Record<string, unknown>) => T,
  ): T {
    const id = this.#nextId++;
    const params: Record<string, unknown> = { filter: id };
    const stmt = this.#prepare(sql(condition(filter, params)));
    this.#filters.set(id, filter);
    try {
      return run(stmt, params);
    } finally {
      this.#filters.delete(id);
    }
  }

  /** Statements by text: the text depends on the filter's shape only, never on its operands. */
  #prepare(sql: string): Database.Statement {
    let stmt = this.#statements.get(sql);
    if (stmt) {
      this.#statements.delete(sql);
    } else {
      stmt = this.#db.prepare(sql);
      if (this.#statements.size >= 64)
        this.#statements.delete(this.#statements.keys().next().value!);
    }
    this.#statements.set(sql, stmt);
    return stmt;
  }
}

/**
 * The row condition: SQL on JSON values SQLite reads exactly, the JavaScript evaluator on the
 * rest (all of them when the filter has no SQL form). SQLite reads a lone surrogate in JSON as
 * bytes that order elsewhere than its code point, and its substr() and length() stop at U+0000:
 * a filter that orders or searches strings leaves a value holding either (a `\u` escape in its
 * text) to JavaScript. Equality, on which neither matters, spares every row that search.
 */
function condition(filter: Filter, params: Record<string, unknown>): string {
  const bind: Bind = (value) => {
    const name = `w${Object.keys(params).length}`;
    params[name] = value;
    return `@${name}`;
  };
  const where = whereToSql(filter, SQLITE_WHERE, bind);
  const js = "cellar_where(value, encoding, @filter)";
  if (where === null) return js;
  const exact = where.readsText ? ` AND instr(value, ${UNICODE_ESCAPE_SQL}) = 0` : "";
  return `(CASE WHEN encoding = ${ENCODING_TAG.json}${exact} THEN ${where.sql} ELSE ${js} END)`;
}
