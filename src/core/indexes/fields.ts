/**
 * How an index orders the values of a field: each field becomes one or two key parts, a kind
 * then the value, so the index's byte order is the where language's order (see
 * `contract/filter.ts`, `compareScalars`) within each kind:
 *
 * | kind | parts | value part |
 * |---|---|---|
 * | none: missing, an object, an array, `NaN`, another type | `[0]` | — |
 * | `null` | `[1]` | — |
 * | boolean | `[2, b]` | the boolean |
 * | number, `bigint`, `KvU64`, `Date` | `[3, n]` | a number: epoch ms for a `Date`; a `bigint` rounded to the nearest double |
 * | string | `[4, s]` | the string (UTF-8, so code point order) |
 * | string with a lone surrogate | `[5, s]` | the string, each lone surrogate read as U+FFFD |
 *
 * A `bigint` beyond 2^53 shares its double with its neighbours, and strings with lone surrogates
 * share their parts, so an index read is a superset: every candidate is checked against the whole
 * filter before it is returned (and a unique index compares the values themselves).
 */
import { concatBytes, encodeKey, type KvKeyPart, partEnds } from "../../codec/key.js";
import { KvU64 } from "../../codec/u64.js";
import { fieldAt, type Path, type Scalar } from "../../contract/filter.js";

export const KIND_NONE = 0;
export const KIND_NULL = 1;
export const KIND_BOOLEAN = 2;
export const KIND_NUMBER = 3;
export const KIND_STRING = 4;
/** A string holding a lone surrogate: UTF-8 cannot spell it, so its key part is approximate. */
export const KIND_ODD_STRING = 5;

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The key parts one field value sorts by. */
export function scalarParts(value: unknown): KvKeyPart[] {
  switch (typeof value) {
    case "string":
      return LONE_SURROGATE.test(value) ? [KIND_ODD_STRING, value] : [KIND_STRING, value];
    case "number":
      return Number.isNaN(value) ? [KIND_NONE] : [KIND_NUMBER, value === 0 ? 0 : value];
    case "bigint":
      return [KIND_NUMBER, Number(value)];
    case "boolean":
      return [KIND_BOOLEAN, value];
    default:
      if (value === null) return [KIND_NULL];
      if (value instanceof Date) {
        const ms = value.getTime();
        return Number.isNaN(ms) ? [KIND_NONE] : [KIND_NUMBER, ms];
      }
      if (value instanceof KvU64) return [KIND_NUMBER, Number(value.value)];
      return [KIND_NONE];
  }
}

/** The index parts of `value` for fields `paths`, in order. */
export function valueParts(paths: readonly Path[], value: unknown): KvKeyPart[] {
  const parts: KvKeyPart[] = [];
  for (const path of paths) {
    const found = fieldAt(value, path);
    parts.push(...(found.found ? scalarParts(found.value) : [KIND_NONE]));
  }
  return parts;
}

/** Whether any field is missing, null or not indexable: a unique index does not hold such a value. */
export function hasNoValue(parts: readonly KvKeyPart[]): boolean {
  for (let i = 0; i < parts.length; ) {
    const kind = parts[i] as number;
    if (kind === KIND_NONE || kind === KIND_NULL) return true;
    i += 2;
  }
  return false;
}

/** An operand's kind and value as the index stores them, or `null` when the index cannot find it. */
export function operandParts(value: Scalar): KvKeyPart[] | null {
  const parts = scalarParts(value);
  return parts[0] === KIND_NONE ? null : parts;
}

/** Whether an operand is a `bigint` (or `KvU64`) the index may have rounded: its bounds widen. */
export function isInexact(value: Scalar): boolean {
  if (typeof value !== "bigint") return false;
  const rounded = Number(value);
  return !Number.isFinite(rounded) || BigInt(rounded) !== value;
}

/**
 * The stored key of an index entry: the index's stored prefix, the field parts, then the entry's
 * key without its namespace. `userKey` may be empty for a versionstamped key, whose last part
 * the commit appends.
 */
export function indexKey(
  prefix: Uint8Array,
  parts: readonly KvKeyPart[],
  userKey: Uint8Array,
): Uint8Array {
  const fields = encodeKey(parts, prefix);
  const key = new Uint8Array(fields.length + userKey.length);
  key.set(fields);
  key.set(userKey, fields.length);
  return key;
}

/** The entry's key (without namespace) an index entry points at. */
export function userKeyOf(
  indexPrefixLength: number,
  fieldCount: number,
  key: Uint8Array,
): Uint8Array {
  const ends = partEnds(key, indexPrefixLength);
  let part = 0;
  for (let field = 0; field < fieldCount; field++) {
    const kind = kindAt(key, part === 0 ? indexPrefixLength : ends[part - 1]!, ends[part]!);
    part += kind >= KIND_BOOLEAN ? 2 : 1;
  }
  return key.subarray(part === 0 ? indexPrefixLength : ends[part - 1]!);
}

/** The small integer a kind part holds (encoded as a Deno KV number part). */
function kindAt(key: Uint8Array, start: number, end: number): number {
  return decodeKind(key.subarray(start, end));
}

const KIND_BYTES = [
  KIND_NONE,
  KIND_NULL,
  KIND_BOOLEAN,
  KIND_NUMBER,
  KIND_STRING,
  KIND_ODD_STRING,
].map((kind) => encodeKey([kind]));

function decodeKind(bytes: Uint8Array): number {
  for (let kind = 0; kind < KIND_BYTES.length; kind++) {
    const candidate = KIND_BYTES[kind]!;
    if (candidate.length === bytes.length && candidate.every((b, i) => b === bytes[i])) return kind;
  }
  return KIND_NONE;
}

/** `[start, end)` of every index key whose fields begin with `parts`. */
export function partsRange(
  prefix: Uint8Array,
  parts: readonly KvKeyPart[],
): { start: Uint8Array; end: Uint8Array } {
  const start = encodeKey(parts, prefix);
  return { start, end: concatBytes(start, 0xff) };
}
