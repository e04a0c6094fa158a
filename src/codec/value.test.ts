import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KvU64 } from "./u64.js";
import { decodeValue, encodeValue } from "./value.js";

const roundTrip = (value: unknown): unknown => decodeValue(encodeValue(value));

// JSON.stringify writes -0 as 0, so -0 is not a JSON value even though fc.jsonValue makes it.
function withoutNegativeZero(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(withoutNegativeZero);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutNegativeZero(v)]));
  }
  return value;
}

function sparse(length: number, entries: [number, unknown][]): unknown[] {
  const out = new Array<unknown>(length);
  for (const [i, v] of entries) out[i] = v;
  return out;
}

// Invalid Dates come from their own test: isDeepStrictEqual never finds two of them equal.
const cloneable = fc.anything({
  maxDepth: 3,
  values: [
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.string({ unit: "binary" }),
    fc.constantFrom(null, undefined),
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

const jsonValue = fc.jsonValue({ maxDepth: 4 }).map(withoutNegativeZero);

/** Values structured clone carries that JSON text cannot. */
const notJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(undefined, Number.NaN, -0, Infinity, -Infinity),
  fc.bigInt(),
  fc.date({ noInvalidDate: true }),
  fc.constant(/a+b/giu),
  fc.array(fc.tuple(fc.string(), fc.integer())).map((e) => new Map(e)),
  fc.array(fc.integer()).map((e) => new Set(e)),
  fc.array(fc.integer({ min: 0, max: 255 })).map((e) => Uint8ClampedArray.from(e)),
  fc.array(fc.double()).map((e) => Float64Array.from(e)),
  fc
    .array(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }))
    .map((e) => BigInt64Array.from(e)),
  fc.tuple(fc.integer({ min: 2, max: 6 }), fc.jsonValue()).map(([n, v]) => sparse(n, [[0, v]])),
  fc.constant(new Uint8Array([1, 2, 3])),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((n) => new KvU64(n)),
);

/** `notJson` somewhere inside an otherwise plain JSON structure. */
const containsNotJson = fc.oneof(
  notJson,
  fc.tuple(fc.string(), notJson, jsonValue).map(([k, v, other]) => ({ other, [`${k}!`]: v })),
  fc.tuple(fc.array(jsonValue, { maxLength: 3 }), notJson).map(([items, v]) => [...items, [v]]),
);

describe("value codec", () => {
  it("round-trips anything structured clone carries, as structured clone does", () => {
    fc.assert(
      fc.property(cloneable, (value) => {
        expect(isDeepStrictEqual(roundTrip(value), structuredClone(value))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it.each<[string, unknown]>([
    ["a Date", new Date(1_700_000_000_000)],
    [
      "a Map",
      new Map<unknown, unknown>([
        ["a", 1],
        [2n, new Set([1])],
      ]),
    ],
    ["a Set", new Set(["a", 1, null])],
    ["a bigint", -(1n << 100n)],
    ["a RegExp", /x(y)?/gimsu],
    ["undefined", undefined],
    ["NaN", Number.NaN],
    ["-0", -0],
    ["Infinity", -Infinity],
    [
      "a sparse array",
      sparse(5, [
        [1, "x"],
        [3, undefined],
      ]),
    ],
    [
      "typed arrays",
      [
        Int16Array.of(-1, 2),
        Float32Array.of(1.5),
        BigUint64Array.of(1n),
        new DataView(new ArrayBuffer(3)),
      ],
    ],
    ["a nested object", { a: { b: [1, { c: new Date(0), d: undefined }] }, e: "\0😀" }],
    ["an object with -0 inside", { zero: -0 }],
    [
      "a cycle",
      (() => {
        const o: Record<string, unknown> = {};
        o.self = o;
        return o;
      })(),
    ],
  ])("round-trips %s", (_name, value) => {
    expect(isDeepStrictEqual(roundTrip(value), value)).toBe(true);
  });

  it("round-trips an invalid Date", () => {
    const decoded = roundTrip(new Date(Number.NaN));
    expect(decoded).toBeInstanceOf(Date);
    expect((decoded as Date).getTime()).toBeNaN();
  });

  it("keeps a top-level KvU64 a KvU64", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (n) => {
        const raw = encodeValue(new KvU64(n));
        expect(raw.encoding).toBe("u64");
        const decoded = decodeValue(raw);
        expect(decoded).toBeInstanceOf(KvU64);
        expect((decoded as KvU64).value).toBe(n);
      }),
    );
  });

  it("keeps a top-level Uint8Array as bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array(), (bytes) => {
        const raw = encodeValue(bytes);
        expect(raw.encoding).toBe("bytes");
        const decoded = decodeValue(raw);
        expect(decoded).toBeInstanceOf(Uint8Array);
        expect(isDeepStrictEqual(decoded, bytes)).toBe(true);
      }),
    );
  });

  it("stores plain JSON values as json and gives them back equal", () => {
    fc.assert(
      fc.property(jsonValue, (value) => {
        const raw = encodeValue(value);
        expect(raw.encoding).toBe("json");
        expect(isDeepStrictEqual(decodeValue(raw), value)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it("never stores a value as json when it holds something JSON cannot carry", () => {
    fc.assert(
      fc.property(containsNotJson, (value) => {
        const raw = encodeValue(value);
        expect(raw.encoding).not.toBe("json");
        expect(isDeepStrictEqual(decodeValue(raw), expectedClone(value))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it("chooses json only when JSON text loses nothing structured clone keeps", () => {
    fc.assert(
      fc.property(cloneable, (value) => {
        if (encodeValue(value).encoding !== "json") return;
        expect(isDeepStrictEqual(JSON.parse(JSON.stringify(value)), structuredClone(value))).toBe(
          true,
        );
      }),
      { numRuns: 1000 },
    );
  });

  it.each<[string, unknown]>([
    ["an array with an extra property", Object.assign([1, 2], { extra: true })],
    ["a boxed string", Object("s")],
  ])("does not store %s as json", (_name, value) => {
    expect(encodeValue(value).encoding).not.toBe("json");
  });

  it("refuses values structured clone cannot carry", () => {
    expect(() => encodeValue({ f: () => 1 })).toThrow(
      expect.objectContaining({ code: "INVALID_VALUE" }),
    );
    expect(() => encodeValue(Symbol("s"))).toThrow(
      expect.objectContaining({ code: "INVALID_VALUE" }),
    );
  });
});

/** Top-level KvU64 and Uint8Array keep their types; everything else comes back as structured clone makes it. */
function expectedClone(value: unknown): unknown {
  if (value instanceof KvU64) return value;
  if (value instanceof Uint8Array && value.constructor === Uint8Array) return value;
  return structuredClone(value);
}
