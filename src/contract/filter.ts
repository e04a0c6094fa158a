/**
 * The where-filter contract: the compiled form of a filter (see `core/where/compile.ts` for the
 * language and its semantics) and its executable meaning on a decoded value. A driver that
 * evaluates filters in its engine must select exactly the entries {@link matchesFilter} does;
 * values its engine cannot read (not plain JSON) it hands to this function.
 */
import { KvU64 } from "../codec/u64.js";
import { decodeValue, type RawValue } from "../codec/value.js";

/** An operand a field is compared with. */
export type Scalar = string | number | bigint | boolean | null | Date;

export type PathSegment = string | number;
/** A field path: property names, and numbers where a segment may index an array. */
export type Path = readonly PathSegment[];

export type Filter =
  | { readonly op: "and" | "or"; readonly filters: readonly Filter[] }
  | { readonly op: "not"; readonly filter: Filter }
  | { readonly op: "exists"; readonly path: Path; readonly exists: boolean }
  | {
      readonly op: "eq" | "ne" | "gt" | "gte" | "lt" | "lte";
      readonly path: Path;
      readonly value: Scalar;
      /** Ignore ASCII case (`$ieq`). */
      readonly ci?: true;
    }
  | { readonly op: "between"; readonly path: Path; readonly low: Scalar; readonly high: Scalar }
  | { readonly op: "in" | "nin"; readonly path: Path; readonly values: readonly Scalar[] }
  | {
      readonly op: "contains" | "startsWith" | "endsWith";
      readonly path: Path;
      readonly value: Scalar;
      readonly ci?: true;
    };

type Found = { readonly found: true; readonly value: unknown } | { readonly found: false };
const MISSING: Found = { found: false };

/** What `path` reaches in `value`: a property of a plain object or an element of an array. */
export function fieldAt(value: unknown, path: Path): Found {
  let current = value;
  for (const segment of path) {
    if (Array.isArray(current)) {
      if (typeof segment !== "number" || segment >= current.length) return MISSING;
      current = current[segment];
    } else if (isPlainObject(current)) {
      const name = String(segment);
      if (!Object.hasOwn(current, name)) return MISSING;
      current = (current as Record<string, unknown>)[name];
    } else {
      return MISSING;
    }
  }
  return { found: true, value: current };
}

function isPlainObject(value: unknown): value is object {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

type Kind = "number" | "string" | "boolean" | "date" | "null" | "other";

function kindOf(value: unknown): Kind {
  switch (typeof value) {
    case "number":
      // NaN is no number to compare: it equals nothing, as in SQL, whichever way it is read.
      return Number.isNaN(value) ? "other" : "number";
    case "bigint":
      return "number";
    case "string":
      return "string";
    case "boolean":
      return "boolean";
    default:
      if (value === null) return "null";
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? "other" : "date";
      if (value instanceof KvU64) return "number";
      return "other";
  }
}

/**
 * The order of `a` and `b` (negative, zero, positive), or `null` when they are of different
 * kinds and do not compare. Dates and numbers compare as epoch milliseconds.
 */
export function compareScalars(a: unknown, b: unknown): number | null {
  let ka = kindOf(a);
  let kb = kindOf(b);
  if (ka === "date" && kb === "number") {
    a = (a as Date).getTime();
    ka = "number";
  } else if (kb === "date" && ka === "number") {
    b = (b as Date).getTime();
    kb = "number";
  }
  if (ka !== kb || ka === "other") return null;
  switch (ka) {
    case "number":
      return compareNumbers(numeric(a), numeric(b));
    case "string":
      return compareCodePoints(a as string, b as string);
    case "boolean":
      return Number(a) - Number(b);
    case "date":
      return (a as Date).getTime() - (b as Date).getTime();
    default:
      return 0;
  }
}

const numeric = (value: unknown): number | bigint =>
  value instanceof KvU64 ? value.value : (value as number | bigint);

function compareNumbers(a: number | bigint, b: number | bigint): number {
  if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
  // A bigint against a number: exactly when the number is an integer.
  const [big, num, sign] =
    typeof a === "bigint" ? [a, b as number, 1] : [b as bigint, a as number, -1];
  const order = Number.isInteger(num)
    ? big < BigInt(num)
      ? -1
      : big > BigInt(num)
        ? 1
        : 0
    : Number(big) < num
      ? -1
      : 1;
  return order * sign;
}

/** Strings by Unicode code point, as SQLite's BINARY and PostgreSQL's C collation order UTF-8. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

// UTF-16 puts surrogates (U+D800–DFFF, which stand for code points above U+FFFF) before
// U+E000–FFFF; code point order puts them after.
const codePointRank = (unit: number) =>
  unit >= 0xd800 && unit <= 0xdfff ? unit + 0x2000 : unit >= 0xe000 ? unit - 0x800 : unit;

/** ASCII case folding: what every engine's case-insensitive operators ignore. */
export const foldAscii = (text: string) => text.replace(/[A-Z]/g, (c) => c.toLowerCase());

function equal(a: unknown, b: Scalar, ci: boolean | undefined): boolean {
  if (ci) return typeof a === "string" && typeof b === "string" && foldAscii(a) === foldAscii(b);
  return compareScalars(a, b) === 0;
}

/** Whether a stored value satisfies `filter` (always, without one). */
export function rawMatches(filter: Filter | undefined, raw: RawValue): boolean {
  return filter === undefined || matchesFilter(filter, decodeValue(raw));
}

/** Whether the decoded value `value` satisfies `filter`. */
export function matchesFilter(filter: Filter, value: unknown): boolean {
  switch (filter.op) {
    case "and":
      return filter.filters.every((f) => matchesFilter(f, value));
    case "or":
      return filter.filters.some((f) => matchesFilter(f, value));
    case "not":
      return !matchesFilter(filter.filter, value);
    default:
      return matchesField(filter, fieldAt(value, filter.path));
  }
}

function matchesField(filter: Exclude<Filter, { op: "and" | "or" | "not" }>, at: Found): boolean {
  if (filter.op === "exists") return at.found === filter.exists;
  if (!at.found) return filter.op === "ne" || filter.op === "nin";
  const field = at.value;
  switch (filter.op) {
    case "eq":
      return equal(field, filter.value, filter.ci);
    case "ne":
      return !equal(field, filter.value, filter.ci);
    case "gt":
    case "gte":
    case "lt":
    case "lte": {
      const order = compareScalars(field, filter.value);
      if (order === null || filter.value === null) return false;
      return filter.op === "gt"
        ? order > 0
        : filter.op === "gte"
          ? order >= 0
          : filter.op === "lt"
            ? order < 0
            : order <= 0;
    }
    case "between": {
      const low = compareScalars(field, filter.low);
      const high = compareScalars(field, filter.high);
      return low !== null && high !== null && low >= 0 && high <= 0 && field !== null;
    }
    case "in":
      return filter.values.some((v) => equal(field, v, false));
    case "nin":
      return !filter.values.some((v) => equal(field, v, false));
    case "contains":
      if (Array.isArray(field) && !filter.ci)
        return field.some((e) => equal(e, filter.value, false));
      if (typeof field !== "string" || typeof filter.value !== "string") return false;
      return filter.ci
        ? foldAscii(field).includes(foldAscii(filter.value))
        : field.includes(filter.value);
    case "startsWith":
    case "endsWith": {
      if (typeof field !== "string" || typeof filter.value !== "string") return false;
      const [f, v] = filter.ci
        ? [foldAscii(field), foldAscii(filter.value)]
        : [field, filter.value];
      return filter.op === "startsWith" ? f.startsWith(v) : f.endsWith(v);
    }
  }
}

/**
 * A compiled filter written back in the user's language (`core/where/compile.ts`), which
 * compiles to the same filter: how a remote driver sends one to its server, which checks it.
 */
export function filterToWhere(filter: Filter): Record<string, unknown> {
  switch (filter.op) {
    case "and":
    case "or":
      return { [`$${filter.op}`]: filter.filters.map(filterToWhere) };
    case "not":
      return { $not: filterToWhere(filter.filter) };
    default: {
      const path = filter.path.join(".");
      return { [path]: { ...condition(filter) } };
    }
  }
}

function condition(filter: Exclude<Filter, { op: "and" | "or" | "not" }>): Record<string, unknown> {
  switch (filter.op) {
    case "exists":
      return { $exists: filter.exists };
    case "between":
      return { $between: [filter.low, filter.high] };
    case "in":
    case "nin":
      return { [`$${filter.op}`]: filter.values };
    default:
      return { [filter.ci ? `$i${filter.op}` : `$${filter.op}`]: filter.value };
  }
}
