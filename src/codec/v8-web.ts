/**
 * V8's value serialization format (the one `node:v8`, structured clone and Deno KV use) in plain
 * JavaScript, for runtimes without `node:v8`: browsers get it through package.json's `#v8`
 * import. It writes format version 15, which Node 20 and later read, and reads versions 13 to
 * 15, covering everything structured clone carries: primitives (-0, NaN, bigint, one- and
 * two-byte strings), Date, RegExp, plain objects, dense and sparse arrays, Map, Set,
 * ArrayBuffer, typed arrays and DataView, boxed primitives, Error objects, and references to an
 * object already written (shared objects, cycles).
 *
 * Written from the format as V8's `src/objects/value-serializer.cc` defines it; the API is the
 * subset of `node:v8`'s `Serializer` and `Deserializer` that Cellar calls.
 */
export { Deserializer } from "./v8-deserializer.js";
export { Serializer } from "./v8-serializer.js";
