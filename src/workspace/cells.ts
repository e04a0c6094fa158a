/**
 * One value of a workspace document, whether a KV key or a row's field, and its column: how a
 * written value is validated and stored, how a stored value is read back and checked, and its
 * JSON form. Plain values are stored in their JSON form (dates as `{ date, timeZone }`), `ytext`
 * as a `Y.Text`, `tags` as a `Y.Array<string>`.
 */
import * as Y from "yjs";
import { describe } from "../errors.js";
import { validateColumn } from "../typed/columns.js";
import { canonicalJson, type Validated, type ValidationIssue } from "../typed/schemas.js";
import { type AnyColumn, storageOf, type ValueColumn } from "./columns.js";
import { applyArrayDiff, applyTextDiff } from "./slots.js";

const refuse = (message: string): Validated<never> => ({
  ok: false,
  issues: [{ path: [], message }],
});

/** Makes a validation synchronous: a document edit cannot wait for an asynchronous schema. */
function now<T>(result: Validated<T> | Promise<Validated<T>>): Validated<T> {
  if (!(result instanceof Promise)) return result;
  result.catch(() => {});
  return refuse("the column's schema is asynchronous; a workspace validates synchronously");
}

/**
 * Validates a value a caller writes and returns what the document stores: the JSON form for a
 * plain column, the string for `ytext`, the array for `tags`, or `null`.
 *
 * @example
 * checkInput(text(), 3); // { ok: false, issues: [{ path: [], message: "expected a string, got 3" }] }
 */
export function checkInput(column: ValueColumn, value: unknown): Validated<unknown> {
  if (column.kind === "ytext") {
    if (value === null || value === undefined) {
      return column.nullable
        ? { ok: true, value: null }
        : refuse(`expected a string, got ${describe(value)}`);
    }
    return column.check(value);
  }
  const checked = now(validateColumn(column, value));
  if (!checked.ok || checked.value === null) return checked;
  const stored = column.toJSON(checked.value);
  const problem = plainJsonProblem(stored, []);
  return problem ? { ok: false, issues: [problem] } : { ok: true, value: stored };
}

/** Why `value` is not plain JSON (Y.Map values must survive JSON and every client's decoder). */
function plainJsonProblem(value: unknown, path: (string | number)[]): ValidationIssue | null {
  if (value === null || typeof value === "string" || typeof value === "boolean") return null;
  if (typeof value === "number") {
    return Number.isFinite(value) ? null : { path, message: `${value} is not a JSON number` };
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = plainJsonProblem(value[i], [...path, i]);
      if (problem) return problem;
    }
    return null;
  }
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [key, item] of Object.entries(value)) {
      const problem = plainJsonProblem(item, [...path, key]);
      if (problem) return problem;
    }
    return null;
  }
  return { path, message: `a workspace stores plain JSON, got ${describe(value)}` };
}

/**
 * Checks a value found in the document (`undefined` when the key is absent, which is valid:
 * reads fall back to the default). For `tags`, repeated items are valid (two clients may add
 * the same tag at once) and reads drop them.
 */
export function checkStored(column: ValueColumn, raw: unknown): ValidationIssue[] {
  if (raw === undefined) return [];
  if (raw === null) {
    return column.nullable ? [] : [{ path: [], message: "null is not a value of this column" }];
  }
  switch (storageOf(column)) {
    case "ytext":
      return raw instanceof Y.Text
        ? []
        : [{ path: [], message: `expected a Y.Text, got ${describeStored(raw)}` }];
    case "tags":
      return raw instanceof Y.Array
        ? badTags(column, raw).map((i) => ({
            path: [i],
            message: `${describeStored(raw.get(i))} is not a tag of this column`,
          }))
        : [{ path: [], message: `expected a Y.Array of strings, got ${describeStored(raw)}` }];
    default: {
      if (raw instanceof Y.AbstractType) {
        return [{ path: [], message: `expected a plain value, got ${describeStored(raw)}` }];
      }
      const checked = now(validateColumn(column as AnyColumn, column.fromJSON(raw)));
      return checked.ok ? [] : [...checked.issues];
    }
  }
}

/** Indexes of the items of a tags array that are not allowed strings. */
export function badTags(column: ValueColumn, array: Y.Array<unknown>): number[] {
  const bad: number[] = [];
  array.forEach((item, i) => {
    if (
      typeof item !== "string" ||
      (column.options !== undefined && !column.options.includes(item))
    ) {
      bad.push(i);
    }
  });
  return bad;
}

/** Names a stored value for an issue message. */
export function describeStored(raw: unknown): string {
  if (raw instanceof Y.Text) return "a Y.Text";
  if (raw instanceof Y.Array) return "a Y.Array";
  if (raw instanceof Y.Map) return "a Y.Map";
  if (raw instanceof Y.AbstractType) return "a shared type";
  return describe(raw);
}

/**
 * The default a column's JSON form falls back to: its default, else `null` when nullable, else
 * empty text or no tags for the Y types (which always exist), else `null`.
 */
export function fallbackJson(column: ValueColumn): unknown {
  const value = column.defaultValue();
  if (value !== null) return column.kind === "ytext" ? value : column.toJSON(value as never);
  if (column.nullable) return null;
  if (column.kind === "ytext") return "";
  return column.kind === "tags" ? [] : null;
}

/** A default every client computes the same way (a value rather than a factory), as JSON. */
export function constantDefault(column: ValueColumn): string | readonly string[] | undefined {
  const schema = column.jsonSchema as {
    default?: unknown;
    anyOf?: readonly { default?: unknown }[];
  };
  const value = schema.default ?? schema.anyOf?.[0]?.default;
  return typeof value === "string" || Array.isArray(value)
    ? (value as string | string[])
    : undefined;
}

/**
 * A stored value read through its column: the decoded value (a `Date` inside a date column's
 * value, the live Y type for `ytext` and `tags`), or `undefined` when absent or invalid.
 */
export function decodeStored(column: ValueColumn, raw: unknown): { value: unknown } | undefined {
  if (raw === undefined || checkStored(column, raw).length > 0) return undefined;
  if (raw === null || raw instanceof Y.AbstractType) return { value: raw };
  const checked = now(validateColumn(column as AnyColumn, column.fromJSON(raw)));
  return checked.ok ? { value: checked.value } : undefined;
}

/** The JSON form of a stored value, or of the fallback when it is absent or invalid. */
export function storedJson(column: ValueColumn, raw: unknown): unknown {
  const decoded = decodeStored(column, raw);
  if (decoded === undefined) return fallbackJson(column);
  const { value } = decoded;
  if (value === null) return null;
  if (value instanceof Y.Text) return value.toString();
  if (value instanceof Y.Array) return tagsOf(value);
  return column.toJSON(value as never);
}

/** The distinct strings of a tags array, in order of first appearance. */
export function tagsOf(array: Y.Array<unknown>): string[] {
  return [...new Set(array.toArray().filter((item): item is string => typeof item === "string"))];
}

/**
 * Writes a checked value (from {@link checkInput}) to `map[key]`: a plain value only when it
 * differs from what is stored, text and tags as diffs of the existing Y type, which `create`
 * makes when there is none.
 */
export function writeStored(
  map: Y.Map<unknown>,
  key: string,
  column: ValueColumn,
  stored: unknown,
  create: () => Y.Text | Y.Array<unknown>,
): void {
  const raw = map.get(key);
  const storage = storageOf(column);
  if (stored === null || storage === "value") {
    const same =
      raw !== undefined &&
      !(raw instanceof Y.AbstractType) &&
      canonicalJson(raw) === canonicalJson(stored);
    if (!same) map.set(key, stored);
    return;
  }
  if (storage === "ytext") {
    const text = raw instanceof Y.Text ? raw : create();
    applyTextDiff(text as Y.Text, stored as string);
  } else {
    const array = raw instanceof Y.Array ? raw : create();
    applyArrayDiff(array as Y.Array<unknown>, stored as string[]);
  }
}

/** A value of another document's cell, copied into a new prelim type or value for this one. */
export function copyStored(raw: unknown): unknown {
  if (raw instanceof Y.Text) return new Y.Text(raw.toString());
  if (raw instanceof Y.Array) return Y.Array.from(raw.toArray());
  if (raw instanceof Y.Map) {
    return new Y.Map<unknown>([...raw.entries()].map(([key, value]) => [key, copyStored(value)]));
  }
  return raw;
}
