/**
 * Keys and values in JSON, losslessly, for the HTTP API.
 *
 * Keys are arrays whose parts are JSON strings, numbers and booleans as themselves, and tagged
 * objects for the rest: `{"$bigint":"42"}`, `{"$bytes":"<base64url>"}`,
 * `{"$number":"NaN"|"Infinity"|"-Infinity"|"-0"}`.
 *
 * Values are plain JSON as themselves. A JSON object with exactly one key that starts with `$`
 * is a tagged value:
 *
 * | tag          | payload                                   | value                    |
 * |--------------|-------------------------------------------|--------------------------|
 * | `$bigint`    | decimal string                            | `bigint`                 |
 * | `$number`    | `"NaN"`, `"Infinity"`, `"-Infinity"`, `"-0"` | `number`              |
 * | `$undefined` | `true`                                    | `undefined`              |
 * | `$date`      | ISO 8601 string (or `null` for Invalid Date) | `Date`                |
 * | `$bytes`     | base64url                                 | `Uint8Array`             |
 * | `$typed`     | `{ "type": "Int32Array", "data": base64url }` | that typed array or DataView |
 * | `$arraybuffer` | base64url                               | `ArrayBuffer`            |
 * | `$map`       | `[[key, value], …]`                       | `Map`                    |
 * | `$set`       | `[item, …]`                               | `Set`                    |
 * | `$regexp`    | `{ "source", "flags" }`                   | `RegExp`                 |
 * | `$error`     | `{ "name", "message" }`                   | `Error`                  |
 * | `$u64`       | decimal string                            | `KvU64`                  |
 * | `$object`    | an object, taken literally                | escapes a plain object whose only key starts with `$` |
 * | `$v8`        | base64url of V8's serialization           | the whole value, for what the tags cannot carry |
 *
 * Sparse arrays, object cycles, boxed primitives and nesting deeper than 512 levels have no
 * tagged form: such a value is sent whole as `$v8`, which the remote client (and any V8) reads.
 */
import { fromBase64Url, fromHex, toBase64Url, toHex } from "../codec/bytes.js";
import type { KvKey, KvKeyPart } from "../codec/key.js";
import { KvU64 } from "../codec/u64.js";
import { decodeValue, encodeValue, isPlainJson, type RawValue } from "../codec/value.js";
import { bareMessage, describe, fail, KvError } from "../errors.js";

const TYPED = {
  Int8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  DataView,
} as const;
type TypedName = keyof typeof TYPED;

const unb64 = (text: unknown, what: string): Uint8Array => {
  const bytes = typeof text === "string" ? fromBase64Url(text) : null;
  if (!bytes) fail("INVALID_VALUE", `${what} must be base64url text, got ${describe(text)}`);
  return bytes;
};

function specialNumber(n: number): string | null {
  if (Number.isNaN(n)) return "NaN";
  if (n === Number.POSITIVE_INFINITY) return "Infinity";
  if (n === Number.NEGATIVE_INFINITY) return "-Infinity";
  if (Object.is(n, -0)) return "-0";
  return null;
}

function parseSpecialNumber(text: unknown): number {
  switch (text) {
    case "NaN":
      return Number.NaN;
    case "Infinity":
      return Number.POSITIVE_INFINITY;
    case "-Infinity":
      return Number.NEGATIVE_INFINITY;
    case "-0":
      return -0;
    default:
      fail(
        "INVALID_VALUE",
        `$number must be "NaN", "Infinity", "-Infinity" or "-0", got ${describe(text)}`,
      );
  }
}

function parseBigInt(text: unknown, what: string): bigint {
  if (typeof text !== "string" || !/^-?\d{1,1000}$/.test(text)) {
    fail("INVALID_VALUE", `${what} must be a decimal integer string, got ${describe(text)}`);
  }
  return BigInt(text);
}

export function keyToJson(key: KvKey): unknown[] {
  return key.map((part) => {
    if (typeof part === "bigint") return { $bigint: part.toString() };
    if (part instanceof Uint8Array) return { $bytes: toBase64Url(part) };
    if (typeof part === "number") {
      const special = specialNumber(part);
      return special === null ? part : { $number: special };
    }
    return part;
  });
}

/** Parses a JSON key; throws `INVALID_KEY` naming the bad part. */
export function keyFromJson(json: unknown): KvKeyPart[] {
  if (!Array.isArray(json))
    fail("INVALID_KEY", `a key must be a JSON array of parts, got ${describe(json)}`);
  return json.map((part, i): KvKeyPart => {
    if (typeof part === "string" || typeof part === "number" || typeof part === "boolean")
      return part;
    if (typeof part === "object" && part !== null && !Array.isArray(part)) {
      const entries = Object.entries(part);
      if (entries.length === 1) {
        const [tag, payload] = entries[0]!;
        try {
          if (tag === "$bigint") return parseBigInt(payload, "$bigint");
          if (tag === "$bytes") return unb64(payload, "$bytes");
          if (tag === "$number") return parseSpecialNumber(payload);
        } catch (error) {
          fail("INVALID_KEY", `key part ${i}: ${bareMessage(error as Error)}`);
        }
      }
    }
    return fail(
      "INVALID_KEY",
      `key part ${i} is ${describe(part)}; parts are strings, numbers, booleans, {"$bigint"}, {"$bytes"} or {"$number"}`,
    );
  });
}

const MAX_DEPTH = 512;

/** Sets a property even when its name is `__proto__`, which plain assignment would not. */
function put(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__")
    Object.defineProperty(out, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  else out[key] = value;
}

/**
 * The JSON form of a value. A value the tags cannot carry (a cycle, a sparse array, a boxed
 * primitive, nesting past 512 levels) is sent whole in V8's serialization, `{"$v8": base64url}`,
 * so that every stored value has a lossless JSON form and no read fails on one.
 */
export function valueToJson(value: unknown): unknown {
  // Plain JSON with no `$`-tag lookalike is its own JSON form: no copy needed.
  if (typeof value === "object" && isPlainJson(value, true)) return value;
  try {
    return toJson(value, new Set<object>());
  } catch (error) {
    if (!(error instanceof KvError) || error.code !== "INVALID_VALUE") throw error;
    let raw: RawValue;
    try {
      raw = encodeValue(value);
    } catch {
      throw error;
    }
    if (raw.encoding !== "v8") throw error;
    return { $v8: toBase64Url(raw.data) };
  }
}

function toJson(value: unknown, seen: Set<object>): unknown {
  if (seen.size > MAX_DEPTH)
    fail("INVALID_VALUE", `a value nested deeper than ${MAX_DEPTH} levels has no JSON form`);
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number": {
      const special = specialNumber(value);
      return special === null ? value : { $number: special };
    }
    case "bigint":
      return { $bigint: value.toString() };
    case "undefined":
      return { $undefined: true };
    case "object":
      break;
    default:
      fail("INVALID_VALUE", `${describe(value)} has no JSON form`);
  }
  if (value === null) return null;
  if (seen.has(value)) fail("INVALID_VALUE", "a value with a cycle has no JSON form");
  seen.add(value);
  try {
    return objectToJson(value, seen);
  } finally {
    seen.delete(value);
  }
}

function objectToJson(value: object, seen: Set<object>): unknown {
  if (value instanceof KvU64) return { $u64: value.value.toString() };
  if (value instanceof Date)
    return { $date: Number.isNaN(value.getTime()) ? null : value.toISOString() };
  if (value instanceof Uint8Array && value.constructor === Uint8Array)
    return { $bytes: toBase64Url(value) };
  if (value instanceof ArrayBuffer) return { $arraybuffer: toBase64Url(new Uint8Array(value)) };
  if (ArrayBuffer.isView(value)) {
    return {
      $typed: {
        type: value.constructor.name,
        data: toBase64Url(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)),
      },
    };
  }
  if (value instanceof Map)
    return { $map: [...value].map(([k, v]) => [toJson(k, seen), toJson(v, seen)]) };
  if (value instanceof Set) return { $set: [...value].map((item) => toJson(item, seen)) };
  if (value instanceof RegExp) return { $regexp: { source: value.source, flags: value.flags } };
  if (value instanceof Error) return { $error: { name: value.name, message: value.message } };
  if (
    value instanceof String ||
    value instanceof Number ||
    value instanceof Boolean ||
    value instanceof BigInt
  ) {
    fail("INVALID_VALUE", "a boxed primitive has no JSON form");
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++)
      if (!(i in value)) fail("INVALID_VALUE", "a sparse array has no JSON form");
    return value.map((item) => toJson(item, seen));
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) put(out, k, toJson(v, seen));
  const keys = Object.keys(out);
  return keys.length === 1 && keys[0]!.startsWith("$") ? { $object: out } : out;
}

/** Extra tags a caller understands, e.g. the atomic route's `$uuid` placeholders. */
export type TagHandlers = Readonly<Record<string, (payload: unknown) => unknown>>;

/** Parses the JSON form of a value. Throws `INVALID_VALUE` on a malformed tag. */
export function valueFromJson(json: unknown, tags: TagHandlers = {}, depth = 0): unknown {
  if (json === null || typeof json !== "object") return json;
  if (depth > MAX_DEPTH)
    fail("INVALID_VALUE", `a value nested deeper than ${MAX_DEPTH} levels is refused`);
  const next = (item: unknown) => valueFromJson(item, tags, depth + 1);
  if (Array.isArray(json)) return json.map(next);
  const keys = Object.keys(json);
  const record = json as Record<string, unknown>;
  if (keys.length !== 1 || !keys[0]!.startsWith("$")) {
    const out: Record<string, unknown> = {};
    for (const key of keys) put(out, key, next(record[key]));
    return out;
  }
  const tag = keys[0]!;
  const payload = record[tag];
  const handler = Object.hasOwn(tags, tag) ? tags[tag] : undefined;
  if (handler) return handler(payload);
  switch (tag) {
    case "$bigint":
      return parseBigInt(payload, "$bigint");
    case "$number":
      return parseSpecialNumber(payload);
    case "$undefined":
      return undefined;
    case "$u64":
      return new KvU64(parseBigInt(payload, "$u64"));
    case "$date": {
      if (payload === null) return new Date(Number.NaN);
      const date = typeof payload === "string" ? new Date(payload) : new Date(Number.NaN);
      if (Number.isNaN(date.getTime()))
        fail("INVALID_VALUE", `$date must be an ISO 8601 string, got ${describe(payload)}`);
      return date;
    }
    case "$bytes":
      return unb64(payload, "$bytes");
    case "$v8":
      try {
        return decodeValue({ encoding: "v8", data: unb64(payload, "$v8") });
      } catch (error) {
        if (error instanceof KvError) throw error;
        return fail("INVALID_VALUE", `$v8 does not decode: ${(error as Error).message}`);
      }
    case "$typed": {
      const { type, data } = (payload ?? {}) as { type?: unknown; data?: unknown };
      const Ctor =
        typeof type === "string" && Object.hasOwn(TYPED, type)
          ? TYPED[type as TypedName]
          : undefined;
      if (!Ctor)
        fail(
          "INVALID_VALUE",
          `$typed.type must name a typed array or DataView, got ${describe(type)}`,
        );
      const bytes = unb64(data, "$typed.data");
      const width = "BYTES_PER_ELEMENT" in Ctor ? Ctor.BYTES_PER_ELEMENT : 1;
      if (bytes.byteLength % width !== 0)
        fail("INVALID_VALUE", `$typed.data does not fit a ${type}`);
      return new (Ctor as new (buffer: ArrayBuffer) => unknown)(bytes.slice().buffer);
    }
    case "$arraybuffer":
      return unb64(payload, "$arraybuffer").slice().buffer;
    case "$map":
      if (
        !Array.isArray(payload) ||
        !payload.every((pair) => Array.isArray(pair) && pair.length === 2)
      ) {
        fail("INVALID_VALUE", "$map must be an array of [key, value] pairs");
      }
      return new Map(payload.map(([k, v]) => [next(k), next(v)]));
    case "$set":
      if (!Array.isArray(payload)) fail("INVALID_VALUE", "$set must be an array");
      return new Set(payload.map(next));
    case "$regexp": {
      const { source, flags } = (payload ?? {}) as { source?: unknown; flags?: unknown };
      if (typeof source !== "string" || typeof flags !== "string")
        fail("INVALID_VALUE", "$regexp needs source and flags");
      try {
        return new RegExp(source, flags);
      } catch (error) {
        return fail("INVALID_VALUE", `$regexp: ${(error as Error).message}`);
      }
    }
    case "$error": {
      const { name, message } = (payload ?? {}) as { name?: unknown; message?: unknown };
      if (typeof name !== "string" || typeof message !== "string")
        fail("INVALID_VALUE", "$error must be an object with string name and message");
      const error = new Error(message);
      error.name = name;
      // Stored as sent: the stack of the process that parsed it would leak its file paths.
      error.stack = `${name}: ${message}`;
      return error;
    }
    case "$object": {
      if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
        fail("INVALID_VALUE", "$object must be an object");
      }
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(payload)) put(out, k, next(v));
      return out;
    }
    default:
      fail("INVALID_VALUE", `unknown value tag ${tag} (wrap literal objects in {"$object": …})`);
  }
}

/**
 * Keys in URL paths: one segment per part, percent-encoded. A segment is a string unless it
 * starts with `~`: `~n:<number>` (incl. `NaN`, `Infinity`, `-0`), `~i:<integer>` (bigint),
 * `~x:<hex>` (bytes), `~t` / `~f` (booleans), `~s:<text>` (a string, for strings that start
 * with `~` or are empty).
 *
 * @example
 * keyFromPath("users/~n:42/~t"); // ["users", 42, true]
 */
const NUMBER = /^(-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|NaN|-?Infinity)$/;

export function keyFromPath(path: string): KvKeyPart[] {
  if (path === "") return [];
  return path.split("/").map((raw, i) => {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      fail("INVALID_KEY", `key segment ${i} is not valid percent-encoding`);
    }
    if (!segment.startsWith("~")) {
      if (segment === "")
        fail("INVALID_KEY", `key segment ${i} is empty; write an empty string as ~s:`);
      return segment;
    }
    if (segment === "~t") return true;
    if (segment === "~f") return false;
    const body = segment.slice(3);
    switch (segment.slice(0, 3)) {
      case "~s:":
        return body;
      case "~n:":
        if (!NUMBER.test(body))
          fail("INVALID_KEY", `key segment ${i}: ${describe(body)} is not a number`);
        return body === "-0" ? -0 : Number(body);
      case "~i:":
        if (!/^-?\d+$/.test(body))
          fail("INVALID_KEY", `key segment ${i}: ${describe(body)} is not an integer`);
        return BigInt(body);
      case "~x:": {
        const bytes = fromHex(body);
        if (!bytes) fail("INVALID_KEY", `key segment ${i}: ${describe(body)} is not hex`);
        return bytes;
      }
      default:
        return fail(
          "INVALID_KEY",
          `key segment ${i} starts with "~" but is not ~s:, ~n:, ~i:, ~x:, ~t or ~f`,
        );
    }
  });
}

export function keyToPath(key: KvKey): string {
  return key
    .map((part) => {
      if (typeof part === "string") {
        return part === "" || part.startsWith("~")
          ? `~s:${encodeURIComponent(part)}`
          : encodeURIComponent(part);
      }
      if (typeof part === "number") return `~n:${Object.is(part, -0) ? "-0" : String(part)}`;
      if (typeof part === "bigint") return `~i:${part}`;
      if (typeof part === "boolean") return part ? "~t" : "~f";
      return `~x:${toHex(part)}`;
    })
    .join("/");
}

/** The tags an operand of a where filter may carry in JSON: values JSON has no form for. */
const OPERAND_TAGS = new Set(["$bigint", "$u64", "$date", "$number"]);

const isTaggedOperand = (json: unknown): boolean =>
  typeof json === "object" &&
  json !== null &&
  !Array.isArray(json) &&
  Object.keys(json).length === 1 &&
  OPERAND_TAGS.has(Object.keys(json)[0]!);

/**
 * A where filter from its JSON form: operands JSON cannot carry are tagged as values are
 * (`{"$bigint": "12"}`, `{"$date": "2025-01-01T00:00:00Z"}`, `{"$u64": "7"}`); everything else is
 * the filter as written. The filter itself is checked when it is compiled.
 *
 * @example
 * whereFromJson({ age: { $gt: { $bigint: "40" } } }); // { age: { $gt: 40n } }
 */
export function whereFromJson(json: unknown, depth = 0): unknown {
  if (depth > 32 || typeof json !== "object" || json === null) return json;
  if (isTaggedOperand(json)) return valueFromJson(json);
  if (Array.isArray(json)) return json.map((item) => whereFromJson(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(json)) put(out, key, whereFromJson(item, depth + 1));
  return out;
}

/** The JSON form of a where filter (see {@link whereFromJson}). */
export function whereToJson(where: unknown, depth = 0): unknown {
  if (typeof where === "bigint" || where instanceof Date || where instanceof KvU64)
    return valueToJson(where);
  if (depth > 32 || typeof where !== "object" || where === null) return where;
  if (Array.isArray(where)) return where.map((item) => whereToJson(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(where)) put(out, key, whereToJson(item, depth + 1));
  return out;
}
