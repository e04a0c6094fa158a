/**
 * The value codec. Every value structured clone can carry is stored, in one of four encodings:
 *
 * - `json`: plain JSON (objects with the default prototype, arrays without holes, finite numbers
 *   other than -0, strings, booleans, null), kept as JSON text so SQL drivers can filter and
 *   search inside it;
 * - `bytes`: a top-level `Uint8Array`, stored as is;
 * - `u64`: a {@link KvU64}, 8 bytes little-endian;
 * - `v8`: everything else (Date, Map, Set, bigint, typed arrays, RegExp, Error, undefined,
 *   NaN, cycles…), in V8's serialization format, the one Deno KV uses.
 */
// Node's own V8 serializer in Node, a JavaScript one of the same format elsewhere (package.json
// "imports"), so browsers read and write the bytes Node and Deno do.
import { Deserializer, Serializer } from "#v8";
import { KvError } from "../errors.js";
import { concatBytes, utf8EncodeInto, utf8Length } from "./bytes.js";
import { KvU64 } from "./u64.js";

export type ValueEncoding = "json" | "v8" | "bytes" | "u64";

/** A value as drivers store it: JSON stays text, everything else is bytes. */
export type RawValue =
  | { readonly encoding: "json"; readonly data: string }
  | { readonly encoding: "v8" | "bytes" | "u64"; readonly data: Uint8Array };

/** Numeric tags for storage columns; 1–3 match KV Connect's `ValueEncoding`. */
export const ENCODING_TAG: Record<ValueEncoding, number> = { v8: 1, u64: 2, bytes: 3, json: 4 };
export const TAG_ENCODING: Record<number, ValueEncoding | undefined> = {
  1: "v8",
  2: "u64",
  3: "bytes",
  4: "json",
};

const MAX_JSON_DEPTH = 64;

export function encodeValue(value: unknown): RawValue {
  if (value instanceof KvU64) return { encoding: "u64", data: KvU64.toBytes(value) };
  if (value instanceof Uint8Array && value.constructor === Uint8Array) {
    return { encoding: "bytes", data: value.slice() };
  }
  if (isPlainJson(value)) return { encoding: "json", data: JSON.stringify(value) };
  try {
    const serializer = new Serializer();
    serializer.writeHeader();
    serializer.writeValue(value);
    return { encoding: "v8", data: serializer.releaseBuffer() };
  } catch (cause) {
    throw new KvError(
      "INVALID_VALUE",
      `value cannot be stored: ${(cause as Error).message} (values must be structured-cloneable)`,
      { cause },
    );
  }
}

export function decodeValue(raw: RawValue): unknown {
  switch (raw.encoding) {
    case "json":
      return JSON.parse(raw.data);
    case "bytes":
      return new Uint8Array(raw.data);
    case "u64":
      return KvU64.fromBytes(raw.data);
    case "v8": {
      const deserializer = new Deserializer(raw.data);
      deserializer.readHeader();
      return deserializer.readValue();
    }
  }
}

/** Stored size in bytes, the figure value limits apply to. */
export function rawSize(raw: RawValue): number {
  return raw.encoding === "json" ? utf8Length(raw.data) : raw.data.length;
}

/** Bytes to hash or compare: the encoding tag, then the data. */
export function rawBytes(raw: RawValue): Uint8Array {
  if (raw.encoding !== "json")
    return concatBytes(Uint8Array.of(ENCODING_TAG[raw.encoding]), raw.data);
  // One allocation and one pass: the text encodes straight after its tag.
  const out = new Uint8Array(1 + utf8Length(raw.data));
  out[0] = ENCODING_TAG.json;
  utf8EncodeInto(raw.data, out, 1);
  return out;
}

/**
 * True when `value` is plain JSON that `JSON.stringify` then `JSON.parse` give back unchanged.
 * With `untagged`, also false when an object has exactly one key and it starts with `$`, the
 * form the HTTP API's JSON gives tagged values.
 */
export function isPlainJson(value: unknown, untagged = false, depth = 0): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0);
    case "object": {
      if (value === null) return true;
      if (depth > MAX_JSON_DEPTH) return false;
      if (Array.isArray(value)) {
        if (Object.getPrototypeOf(value) !== Array.prototype) return false;
        for (let i = 0; i < value.length; i++) {
          if (!(i in value) || !isPlainJson(value[i], untagged, depth + 1)) return false;
        }
        return Object.keys(value).length === value.length;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      if ("toJSON" in value) return false;
      let keys = 0;
      let first = "";
      for (const key in value) {
        if (keys++ === 0) first = key;
        if (!isPlainJson((value as Record<string, unknown>)[key], untagged, depth + 1))
          return false;
      }
      return !(untagged && keys === 1 && first.startsWith("$"));
    }
    default:
      return false;
  }
}
