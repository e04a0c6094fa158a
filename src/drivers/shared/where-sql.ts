/**
 * Where filters as SQL over a stored JSON document, for the engines that can look inside one.
 * The translation is exactly `matchesFilter` (see `contract/filter.ts`) on values that are
 * plain JSON: every comparison goes with a test of the field's JSON kind, so kinds never compare
 * across; numbers compare as the doubles `JSON.parse` makes of them (an integer beyond 2^53 in
 * the text compares as its nearest double, as in JavaScript, not as the engine's exact integer);
 * a `bigint` operand compares with those doubles exactly; strings compare in code point order.
 * Every path and operand is bound as a parameter; none becomes SQL text.
 *
 * A dialect says how its engine reaches a field and tests strings. A part it cannot express
 * exactly (a path its syntax cannot spell, a string its engine cannot hold) makes the whole
 * filter untranslatable, and the driver evaluates it in JavaScript instead.
 */
import { KvU64 } from "../../codec/u64.js";
import { type Filter, foldAscii, type Path, type Scalar } from "../../contract/filter.js";

/** The JSON kinds a comparison tells apart. */
export type JsonKind = "number" | "string" | "true" | "false" | "null" | "array";

/** A parameter's SQL type, for engines that want one spelled out. */
export type ParamType = "text" | "float8" | "text[]";

/** Binds `value` as a parameter and returns its placeholder. */
export type Bind = (value: string | number | readonly string[], type: ParamType) => string;

/** A JSON value a filter tests: a field of the document, or an element of an array field. */
export interface SqlValue {
  /** True when the value is present and of `kind`; never NULL. */
  is(kind: JsonKind): string;
  /** The value as a double (when it is a number). */
  readonly number: string;
  /** The value as text (when it is a string). */
  readonly text: string;
}

export interface SqlField extends SqlValue {
  /** True when the path reaches a value (`null` included); never NULL. */
  readonly exists: string;
  /** True when some element of the field (an array) passes `test`. */
  someElement(test: (element: SqlValue) => string): string;
}

export interface WhereDialect {
  /** The field at `path`, or null when the engine cannot address it exactly. */
  field(path: Path, bind: Bind): SqlField | null;
  /** `text` holds `needle`; `needle` may be empty. */
  includes(text: string, needle: string): string;
  /** `text` starts (ends) with the non-empty `needle`. */
  startsWith(text: string, needle: string): string;
  endsWith(text: string, needle: string): string;
  /** `text` with ASCII letters lowered, and nothing else changed. */
  foldAscii(text: string): string;
  /** `text` to compare by code point with `<` and `>`. */
  codePointOrder(text: string): string;
  /**
   * `test` where `value` is of `kind`, FALSE elsewhere. `test` means something, and is not NULL,
   * only on a value of that kind: an engine whose functions fail on a value of another kind must
   * not evaluate it there. Which of the two runs first is the dialect's choice.
   */
  when(value: SqlValue, kind: JsonKind, test: string): string;
  /** Every (some) one of two or more conditions, each TRUE or FALSE, holds. */
  and(parts: readonly string[]): string;
  or(parts: readonly string[]): string;
}

/** Thrown inside the translation when the filter holds a part the dialect cannot express. */
class Untranslatable extends Error {}

export interface WhereSql {
  /** The condition: TRUE or FALSE for every document, never NULL, so `NOT` negates it safely. */
  readonly sql: string;
  /**
   * The condition orders or searches strings, beyond comparing them for equality: only then do
   * its results on a string holding U+0000 or a lone surrogate depend on how the engine reads it.
   */
  readonly readsText: boolean;
}

/** The SQL condition of `filter` on the document, or null when it cannot be expressed exactly. */
export function whereToSql(filter: Filter, dialect: WhereDialect, bind: Bind): WhereSql | null {
  try {
    const translator = new Translator(dialect, bind);
    const sql = translator.filter(filter);
    return { sql, readsText: translator.readsText };
  } catch (error) {
    if (error instanceof Untranslatable) return null;
    throw error;
  }
}

/**
 * Text an engine reads back as it was bound: no U+0000 (PostgreSQL text cannot hold it, SQLite's
 * string functions stop at it) and no lone surrogate (it has no UTF-8 form).
 */
export function isPortableText(text: string): boolean {
  return !text.includes("\u0000") && !LONE_SURROGATE.test(text);
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Whether the JSON text `json` is one whose strings the engine reads exactly. `JSON.stringify`
 * writes `\u` escapes only for control characters and lone surrogates: the text without any is
 * free of U+0000 and lone surrogates; a document with one is evaluated in JavaScript.
 */
export const hasUnicodeEscape = (json: string): boolean => json.includes("\\u");

/** The pattern `hasUnicodeEscape` looks for, as an engine's string literal spells it. */
export const UNICODE_ESCAPE_SQL = "'\\u'";

const FALSE = "FALSE";
const SQL_OPS = { eq: "=", gt: ">", gte: ">=", lt: "<", lte: "<=" } as const;
type Order = keyof typeof SQL_OPS;

class Translator {
  readsText = false;

  constructor(
    private readonly dialect: WhereDialect,
    private readonly bind: Bind,
  ) {}

  filter(filter: Filter): string {
    switch (filter.op) {
      case "and":
      case "or": {
        const parts = filter.filters.map((f) => this.filter(f));
        return filter.op === "and" ? this.all(parts) : this.any(parts);
      }
      case "not":
        return `(NOT ${this.filter(filter.filter)})`;
      default:
        return this.leaf(filter);
    }
  }

  leaf(filter: Exclude<Filter, { op: "and" | "or" | "not" }>): string {
    const field = this.dialect.field(filter.path, this.bind);
    if (field === null) throw new Untranslatable();
    switch (filter.op) {
      case "exists":
        return filter.exists ? field.exists : `(NOT ${field.exists})`;
      case "eq":
        return this.equal(field, filter.value, filter.ci);
      case "ne":
        return `(NOT ${this.equal(field, filter.value, filter.ci)})`;
      case "gt":
      case "gte":
      case "lt":
      case "lte":
        return this.order(field, filter.op, filter.value);
      case "between":
        return this.all([
          this.order(field, "gte", filter.low),
          this.order(field, "lte", filter.high),
        ]);
      case "in":
        return this.any(filter.values.map((v) => this.equal(field, v, undefined)));
      case "nin":
        return `(NOT ${this.any(filter.values.map((v) => this.equal(field, v, undefined)))})`;
      case "contains":
        return this.contains(field, filter.value, filter.ci);
      case "startsWith":
      case "endsWith":
        return this.affix(field, filter.op, filter.value, filter.ci);
    }
  }

  equal(value: SqlValue, operand: Scalar, ci: boolean | undefined): string {
    if (ci) {
      if (typeof operand !== "string") return FALSE;
      const folded = this.text(foldAscii(operand));
      return this.dialect.when(
        value,
        "string",
        `${this.dialect.foldAscii(value.text)} = ${folded}`,
      );
    }
    if (operand === null) return value.is("null");
    if (typeof operand === "boolean") return value.is(operand ? "true" : "false");
    if (typeof operand === "string")
      return this.dialect.when(value, "string", `${value.text} = ${this.text(operand)}`);
    return this.numeric(value, "eq", operand);
  }

  order(value: SqlValue, op: Order, operand: Scalar): string {
    if (operand === null) return FALSE;
    if (typeof operand === "boolean") {
      // false < true: the booleans on the right side of the comparison, as kind tests.
      const pass = [false, true].filter((b) => holds(op, Number(b) - Number(operand)));
      return this.any(pass.map((b) => value.is(b ? "true" : "false")));
    }
    if (typeof operand === "string") {
      this.readsText = true;
      const text = this.dialect.codePointOrder(value.text);
      return this.dialect.when(value, "string", `${text} ${SQL_OPS[op]} ${this.text(operand)}`);
    }
    return this.numeric(value, op, operand);
  }

  numeric(value: SqlValue, op: Order, operand: Scalar): string {
    const n = operand instanceof KvU64 ? operand.value : operand;
    let compared: [string | null, number];
    if (typeof n === "bigint") {
      compared = bigintAsDouble(op, n);
    } else {
      const time = n instanceof Date ? n.getTime() : n;
      // Not a number of any kind (or NaN, which JavaScript finds equal to every number).
      if (typeof time !== "number" || !Number.isFinite(time)) throw new Untranslatable();
      compared = [SQL_OPS[op], time];
    }
    const [sqlOp, bound] = compared;
    if (sqlOp === null) return FALSE;
    return this.dialect.when(
      value,
      "number",
      `${value.number} ${sqlOp} ${this.bind(bound, "float8")}`,
    );
  }

  contains(field: SqlField, operand: Scalar, ci: boolean | undefined): string {
    if (ci) {
      if (typeof operand !== "string") return FALSE;
      const folded = this.dialect.foldAscii(field.text);
      return this.search("includes", field, folded, foldAscii(operand));
    }
    const inArray = field.someElement((e) => this.equal(e, operand, undefined));
    const parts = [this.dialect.when(field, "array", inArray)];
    if (typeof operand === "string")
      parts.push(this.search("includes", field, field.text, operand));
    return this.any(parts);
  }

  affix(
    field: SqlField,
    op: "startsWith" | "endsWith",
    operand: Scalar,
    ci: boolean | undefined,
  ): string {
    if (typeof operand !== "string") return FALSE;
    if (operand === "") return field.is("string");
    if (!ci) return this.search(op, field, field.text, operand);
    return this.search(op, field, this.dialect.foldAscii(field.text), foldAscii(operand));
  }

  /** `text`, the string `field` or an expression of it, holds `needle` as `how` says. */
  search(
    how: "includes" | "startsWith" | "endsWith",
    field: SqlField,
    text: string,
    needle: string,
  ): string {
    this.readsText = true;
    return this.dialect.when(field, "string", this.dialect[how](text, this.text(needle)));
  }

  all(parts: readonly string[]): string {
    return parts.length === 0 ? "TRUE" : parts.length === 1 ? parts[0]! : this.dialect.and(parts);
  }

  any(parts: readonly string[]): string {
    return parts.length === 0 ? FALSE : parts.length === 1 ? parts[0]! : this.dialect.or(parts);
  }

  text(operand: string): string {
    if (!isPortableText(operand)) throw new Untranslatable();
    return this.bind(operand, "text");
  }
}

/** Conditions joined by plain AND (OR), left for the engine to evaluate in the order it likes. */
export const sqlAnd = (parts: readonly string[]) => `(${parts.join(" AND ")})`;
export const sqlOr = (parts: readonly string[]) => `(${parts.join(" OR ")})`;

const holds = (op: Order, order: number): boolean =>
  op === "eq"
    ? order === 0
    : op === "gt"
      ? order > 0
      : op === "gte"
        ? order >= 0
        : op === "lt"
          ? order < 0
          : order <= 0;

/**
 * A comparison of a double field with the integer `operand`, as a comparison with the greatest
 * double not above it, `floor`: a double is above `operand` exactly when it is above `floor`,
 * and equals it only when `floor` is `operand`. The SQL operator is null when nothing matches.
 */
function bigintAsDouble(op: Order, operand: bigint): [string | null, number] {
  const floor = floorDouble(operand);
  const exact = Number.isFinite(floor) && BigInt(floor) === operand;
  switch (op) {
    case "eq":
      return [exact ? "=" : null, floor];
    case "gt":
      return [">", floor];
    case "gte":
      return [exact ? ">=" : ">", floor];
    case "lt":
      return [exact ? "<" : "<=", floor];
    case "lte":
      return ["<=", floor];
  }
}

/** The greatest double not above `n` (-Infinity below every finite double). */
export function floorDouble(n: bigint): number {
  const nearest = Number(n);
  if (nearest === Number.POSITIVE_INFINITY) return Number.MAX_VALUE;
  if (nearest === Number.NEGATIVE_INFINITY || BigInt(nearest) <= n) return nearest;
  return nextDown(nearest);
}

/** The double just below the integer-valued `x` (|x| ≥ 1). */
function nextDown(x: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  view.setBigUint64(0, x > 0 ? bits - 1n : bits + 1n);
  return view.getFloat64(0);
}
