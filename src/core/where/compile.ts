/**
 * Where filters: a small query language over entry values, with one semantics that SQL engines
 * can evaluate on stored JSON and JavaScript on any value, so a filter selects the same entries
 * on every driver.
 *
 * A filter is an object whose keys are field paths (or `$and`, `$or`, `$not`) and whose values
 * are an operand (equality) or an object of operators:
 *
 * | operator | matches a field that… |
 * |---|---|
 * | `$eq`, `$ne` | equals (does not equal) the operand: a string, number, bigint, boolean, `null` or `Date` |
 * | `$gt` `$gte` `$lt` `$lte` | compares so with the operand, both of one kind (below) |
 * | `$between: [low, high]` | lies in `[low, high]`, bounds included |
 * | `$in`, `$nin` | equals one (none) of the operands of an array |
 * | `$exists: boolean` | is present (absent); `null` is present |
 * | `$contains` | is an array holding an element equal to the operand, or a string containing it |
 * | `$startsWith`, `$endsWith` | is a string starting (ending) with the operand |
 * | `$ieq` `$icontains` `$istartsWith` `$iendsWith` | the same, ignoring ASCII case |
 *
 * **Kinds.** Values compare only within a kind: numbers (`number`, `bigint`, `KvU64` compare by
 * value), strings (by Unicode code point, as SQLite and PostgreSQL's C collation do), booleans
 * (`false < true`) and dates (`Date`). A comparison across kinds is false. A `Date` operand,
 * and `{ $now: offsetMs }`, which stands for the time the query starts plus the offset, also
 * compare with numbers, taken as epoch milliseconds.
 *
 * **Missing fields.** A path that reaches nothing (a missing property, an index past the end, a
 * step into a non-object) matches `$exists: false`, `$ne` and `$nin`, and no other operator.
 * `$not` negates its whole filter. Arrays are not searched implicitly: `"tags": "a"` compares the
 * whole field with `"a"`; use `$contains` to look inside an array, or `"tags.0"` for an element.
 *
 * **Paths.** Dot-separated property names; a segment of digits indexes an array (`"tags.0"`) or
 * names a property of that name in an object. A path cannot be empty or have empty segments.
 */
import { KvU64 } from "../../codec/u64.js";
import type { Filter, Path, Scalar } from "../../contract/filter.js";
import { describe, fail } from "../../errors.js";

/** A where filter, as users write it. */
export type KvWhere = { readonly [path: string]: unknown };

const COMPARISONS = {
  $eq: "eq",
  $ne: "ne",
  $gt: "gt",
  $gte: "gte",
  $lt: "lt",
  $lte: "lte",
} as const;
const STRING_OPS = {
  $contains: ["contains", false],
  $startsWith: ["startsWith", false],
  $endsWith: ["endsWith", false],
  $icontains: ["contains", true],
  $istartsWith: ["startsWith", true],
  $iendsWith: ["endsWith", true],
} as const;
const OPERATORS = [
  ...Object.keys(COMPARISONS),
  "$ieq",
  "$between",
  "$in",
  "$nin",
  "$exists",
  ...Object.keys(STRING_OPS),
];

/** Most operators and operands one filter may hold: a bound on the work of one query. */
export const MAX_FILTER_NODES = 256;
const MAX_DEPTH = 16;

/**
 * Checks a where filter and compiles it, resolving `$now` against `now`. Throws
 * `INVALID_FILTER` naming the part at fault.
 */
export function compileWhere(where: unknown, now: number): Filter {
  const state = { nodes: 0, now };
  return compileObject(where, "where", state, 0);
}

interface State {
  nodes: number;
  readonly now: number;
}

function compileObject(where: unknown, at: string, state: State, depth: number): Filter {
  if (typeof where !== "object" || where === null || Array.isArray(where) || where instanceof Date)
    fail(
      "INVALID_FILTER",
      `${at} must be an object of field paths and operators, got ${describe(where)}`,
    );
  if (depth > MAX_DEPTH) fail("INVALID_FILTER", `${at} nests deeper than ${MAX_DEPTH} levels`);
  const filters: Filter[] = [];
  for (const [name, condition] of Object.entries(where)) {
    if (++state.nodes > MAX_FILTER_NODES)
      fail("INVALID_FILTER", `the filter has more than ${MAX_FILTER_NODES} conditions`);
    const here = `${at}.${name}`;
    if (name === "$and" || name === "$or") {
      if (!Array.isArray(condition) || condition.length === 0)
        fail(
          "INVALID_FILTER",
          `${here} takes a non-empty array of filters, got ${describe(condition)}`,
        );
      filters.push({
        op: name === "$and" ? "and" : "or",
        filters: condition.map((f, i) => compileObject(f, `${here}[${i}]`, state, depth + 1)),
      });
    } else if (name === "$not") {
      filters.push({ op: "not", filter: compileObject(condition, here, state, depth + 1) });
    } else if (name.startsWith("$")) {
      fail(
        "INVALID_FILTER",
        `${here}: unknown operator ${JSON.stringify(name)} at the top of a filter; use $and, $or, $not or a field path`,
      );
    } else {
      filters.push(...compileField(parsePath(name, here), condition, here, state));
    }
  }
  return filters.length === 1 ? filters[0]! : { op: "and", filters };
}

/** Splits a dotted path; digit segments may index arrays. */
export function parsePath(path: string, at: string): Path {
  if (path === "" || path.length > 1024)
    fail("INVALID_FILTER", `${at}: a field path is 1 to 1024 characters`);
  return path.split(".").map((segment) => {
    if (segment === "")
      fail("INVALID_FILTER", `${at}: the field path ${JSON.stringify(path)} has an empty segment`);
    return /^(0|[1-9]\d{0,8})$/.test(segment) ? Number(segment) : segment;
  });
}

function isOperatorObject(condition: unknown): condition is Record<string, unknown> {
  if (typeof condition !== "object" || condition === null || Array.isArray(condition)) return false;
  if (condition instanceof Date || condition instanceof KvU64) return false;
  const keys = Object.keys(condition);
  return (
    keys.length > 0 &&
    keys.every((k) => k.startsWith("$")) &&
    !("$now" in condition && keys.length === 1)
  );
}

function compileField(path: Path, condition: unknown, at: string, state: State): Filter[] {
  if (!isOperatorObject(condition))
    return [{ op: "eq", path, value: scalar(condition, at, state) }];
  const out: Filter[] = [];
  for (const [operator, operand] of Object.entries(condition)) {
    const here = `${at}.${operator}`;
    if (++state.nodes > MAX_FILTER_NODES)
      fail("INVALID_FILTER", `the filter has more than ${MAX_FILTER_NODES} conditions`);
    if (operator in COMPARISONS) {
      const op = COMPARISONS[operator as keyof typeof COMPARISONS];
      out.push({ op, path, value: scalar(operand, here, state) });
    } else if (operator === "$ieq") {
      out.push({ op: "eq", path, value: text(operand, here), ci: true });
    } else if (operator === "$between") {
      if (!Array.isArray(operand) || operand.length !== 2)
        fail("INVALID_FILTER", `${here} takes [low, high], got ${describe(operand)}`);
      out.push({
        op: "between",
        path,
        low: scalar(operand[0], `${here}[0]`, state),
        high: scalar(operand[1], `${here}[1]`, state),
      });
    } else if (operator === "$in" || operator === "$nin") {
      if (!Array.isArray(operand) || operand.length > MAX_FILTER_NODES)
        fail(
          "INVALID_FILTER",
          `${here} takes an array of at most ${MAX_FILTER_NODES} operands, got ${describe(operand)}`,
        );
      out.push({
        op: operator === "$in" ? "in" : "nin",
        path,
        values: operand.map((v, i) => scalar(v, `${here}[${i}]`, state)),
      });
    } else if (operator === "$exists") {
      if (typeof operand !== "boolean")
        fail("INVALID_FILTER", `${here} takes true or false, got ${describe(operand)}`);
      out.push({ op: "exists", path, exists: operand });
    } else if (operator in STRING_OPS) {
      const [op, ci] = STRING_OPS[operator as keyof typeof STRING_OPS];
      const value = op === "contains" && !ci ? scalar(operand, here, state) : text(operand, here);
      out.push(ci ? { op, path, value, ci: true } : { op, path, value });
    } else {
      fail(
        "INVALID_FILTER",
        `${here}: unknown operator ${JSON.stringify(operator)}; operators are ${OPERATORS.join(" ")}`,
      );
    }
  }
  return out;
}

function text(operand: unknown, at: string): string {
  if (typeof operand !== "string")
    fail("INVALID_FILTER", `${at} takes a string, got ${describe(operand)}`);
  return operand;
}

function scalar(operand: unknown, at: string, state: State): Scalar {
  if (operand instanceof KvU64) return operand.value;
  if (operand instanceof Date) {
    if (Number.isNaN(operand.getTime())) fail("INVALID_FILTER", `${at} is an invalid Date`);
    return operand;
  }
  if (
    typeof operand === "object" &&
    operand !== null &&
    !Array.isArray(operand) &&
    "$now" in operand
  ) {
    const offset = (operand as { $now: unknown }).$now;
    if (Object.keys(operand).length !== 1 || typeof offset !== "number" || !Number.isFinite(offset))
      fail(
        "INVALID_FILTER",
        `${at}: $now takes an offset in milliseconds, e.g. { "$now": -3600000 }`,
      );
    return new Date(state.now + offset);
  }
  if (typeof operand === "number" && !Number.isFinite(operand))
    fail("INVALID_FILTER", `${at}: ${operand} cannot be compared; use a finite number`);
  if (operand === null || ["string", "number", "bigint", "boolean"].includes(typeof operand))
    return operand as Scalar;
  fail(
    "INVALID_FILTER",
    `${at} takes a string, number, bigint, boolean, null, Date or { $now }, got ${describe(operand)}`,
  );
}
