import { isDeepStrictEqual } from "node:util";
import * as v8 from "node:v8";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Deserializer, Serializer } from "./v8-web.js";

function webWrite(value: unknown): Uint8Array {
  const serializer = new Serializer();
  serializer.writeHeader();
  serializer.writeValue(value);
  return serializer.releaseBuffer();
}

function webRead(bytes: Uint8Array): unknown {
  const deserializer = new Deserializer(bytes);
  deserializer.readHeader();
  return deserializer.readValue();
}

function nodeWrite(value: unknown): Uint8Array {
  const serializer = new v8.Serializer();
  serializer.writeHeader();
  serializer.writeValue(value);
  return serializer.releaseBuffer();
}

function nodeRead(bytes: Uint8Array): unknown {
  const deserializer = new v8.Deserializer(bytes);
  deserializer.readHeader();
  return deserializer.readValue();
}

const cloneable = fc.anything({
  maxDepth: 3,
  values: [
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.bigInt(),
    fc.string({ unit: "binary" }),
    fc.string({ unit: "grapheme-ascii" }),
    fc.constantFrom(null, undefined, -0, 2 ** 31, -(2 ** 31) - 1),
    fc.date({ noInvalidDate: true }),
  ],
  withBigInt: true,
  withBoxedValues: true,
  withMap: true,
  withNullPrototype: true,
  withSet: true,
  withSparseArray: true,
  withTypedArray: true,
  stringUnit: "binary",
});

const regexp = fc
  .tuple(
    fc.constantFrom("a+", "x(y)?", "[\\u{1F600}]", "\\d{2,}", "é|€"),
    fc.subarray(["g", "i", "m", "s", "y", "d"]),
    fc.constantFrom("", "u", "v"),
  )
  .map(([source, flags, unicode]) => new RegExp(source, flags.join("") + unicode));

const error = fc
  .tuple(
    fc.constantFrom(Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError),
    fc.option(fc.string(), { nil: undefined }),
    fc.option(fc.anything({ maxDepth: 1 }), { nil: undefined }),
  )
  .map(([Ctor, message, cause]) =>
    cause === undefined ? new Ctor(message) : new Ctor(message, { cause }),
  );

/** Objects that share parts or contain themselves. */
const graph = fc.tuple(cloneable, fc.integer({ min: 0, max: 3 })).map(([inner, shape]) => {
  const shared = { inner };
  if (shape === 0) return [shared, shared];
  if (shape === 1) {
    const map = new Map<unknown, unknown>([["shared", shared]]);
    map.set("self", map);
    return map;
  }
  const bytes = new Uint8Array(8);
  if (shape === 2) return { bytes, view: new DataView(bytes.buffer, 2, 4), buffer: bytes.buffer };
  const array: unknown[] = [shared];
  array.push(array, new Set([shared, array]));
  return array;
});

const value = fc.oneof(
  cloneable,
  regexp,
  graph,
  error.map((e) => [e, e]),
);

function sameError(a: unknown, b: unknown): boolean {
  if (!(a instanceof Error && b instanceof Error)) return false;
  return (
    Object.getPrototypeOf(a) === Object.getPrototypeOf(b) &&
    a.message === b.message &&
    a.stack === b.stack &&
    Object.hasOwn(a, "message") === Object.hasOwn(b, "message") &&
    isDeepStrictEqual((a as { cause?: unknown }).cause, (b as { cause?: unknown }).cause)
  );
}

/** Equal as structured clones: deep equality, with errors compared by what the format keeps. */
function same(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && a[0] instanceof Error) return sameError(a[0], (b as unknown[])[0]);
  return isDeepStrictEqual(a, b);
}

describe("JavaScript V8 serializer", () => {
  it("reads what node:v8 writes", () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(same(webRead(nodeWrite(v)), nodeRead(nodeWrite(v)))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("writes what node:v8 reads", () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(same(nodeRead(webWrite(v)), nodeRead(nodeWrite(v)))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("round-trips through itself", () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(same(webRead(webWrite(v)), nodeRead(nodeWrite(v)))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it("writes the bytes node:v8 writes for plain data", () => {
    const plain = fc.anything({
      maxDepth: 3,
      // No numbers: V8 writes an integer as Int32 or Double depending on how it is held.
      values: [fc.boolean(), fc.string({ unit: "binary" }), fc.bigInt()],
      withMap: true,
      withSet: true,
      withDate: true,
    });
    fc.assert(
      fc.property(plain, (v) => {
        expect(webWrite(v)).toEqual(new Uint8Array(nodeWrite(v)));
      }),
      { numRuns: 1000 },
    );
  });

  it.each<[string, unknown]>([
    ["a two-byte string after an odd offset", ["€uro", "a", "€"]],
    ["boxed primitives", [Object(true), Object(false), Object(1.5), Object(2n), Object("s")]],
    ["an array with extra properties", Object.assign([1, 2], { extra: true })],
    ["a sparse array", Object.assign(new Array(10), { 3: "x", 7: undefined })],
    ["index-like keys", { 1: "a", 4294967294: "b", 4294967295: "c", b: 1 }],
    ["a __proto__ key", JSON.parse('{"__proto__": 1}')],
    ["a subarray", new Uint16Array(new ArrayBuffer(16), 4, 3)],
    ["lone surrogates", "\ud800x\udfff"],
    ["the last valid Date", [new Date(8.64e15)]],
  ])("matches node:v8 on %s", (_name, v) => {
    expect(same(webRead(nodeWrite(v)), nodeRead(nodeWrite(v)))).toBe(true);
    expect(same(nodeRead(webWrite(v)), nodeRead(nodeWrite(v)))).toBe(true);
  });

  it("carries an invalid Date both ways", () => {
    expect((webRead(nodeWrite(new Date(Number.NaN))) as Date).getTime()).toBeNaN();
    expect((nodeRead(webWrite(new Date(Number.NaN))) as Date).getTime()).toBeNaN();
  });

  it("refuses what structured clone cannot carry", () => {
    for (const v of [() => 1, Symbol("s"), Promise.resolve(), new WeakMap(), { f: () => 1 }]) {
      expect(() => webWrite(v)).toThrow(/could not be cloned/);
    }
  });

  it("refuses malformed input", () => {
    expect(() => webRead(Uint8Array.of(0xff, 0x0f))).toThrow(/end of data/);
    expect(() => webRead(Uint8Array.of(0xff, 0x63, 0x30))).toThrow(/version/);
    expect(() => webRead(Uint8Array.of(0xff, 0x0f, 0x5e, 0x05))).toThrow(/unknown object/);
  });
});
