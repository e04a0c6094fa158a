import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KvError } from "../errors.js";
import { decodeKey, encodeKey, type KvKey, type KvKeyPart } from "./key.js";

const utf8 = new TextEncoder();

function compareByteArrays(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return Math.sign(a.length - b.length);
}

function typeRank(part: KvKeyPart): number {
  if (part instanceof Uint8Array) return 0;
  if (typeof part === "string") return 1;
  if (typeof part === "bigint") return 2;
  if (typeof part === "number") return 3;
  return 4;
}

// Deno KV stores NaN as the canonical positive NaN, which sorts above +Infinity.
function compareNumbers(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number(Number.isNaN(a)) - Number(Number.isNaN(b));
  if (a === b) return Number(!Object.is(a, -0)) - Number(!Object.is(b, -0));
  return a < b ? -1 : 1;
}

function compareParts(a: KvKeyPart, b: KvKeyPart): number {
  const rank = typeRank(a) - typeRank(b);
  if (rank !== 0) return Math.sign(rank);
  if (a instanceof Uint8Array) return compareByteArrays(a, b as Uint8Array);
  if (typeof a === "string") return compareByteArrays(utf8.encode(a), utf8.encode(b as string));
  if (typeof a === "bigint") return a === b ? 0 : a < (b as bigint) ? -1 : 1;
  if (typeof a === "number") return compareNumbers(a, b as number);
  return Number(a) - Number(b as boolean);
}

/** The documented key order, computed from the parts rather than from their encodings. */
function compareKeys(a: KvKey, b: KvKey): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const order = compareParts(a[i]!, b[i]!);
    if (order !== 0) return order;
  }
  return Math.sign(a.length - b.length);
}

function samePart(a: KvKeyPart, b: KvKeyPart): boolean {
  if (a instanceof Uint8Array) {
    return b instanceof Uint8Array && b.constructor === Uint8Array && compareByteArrays(a, b) === 0;
  }
  return Object.is(a, b);
}

function sameKey(a: KvKey, b: KvKey): boolean {
  return a.length === b.length && a.every((part, i) => samePart(part, b[i]!));
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
const unhex = (text: string): Uint8Array =>
  Uint8Array.from(Buffer.from(text.replaceAll(" ", ""), "hex"));

const MAX_KEY_BIGINT = (1n << 2040n) - 1n;

const bytesPart = fc.oneof(
  fc.uint8Array({ maxLength: 8 }),
  fc
    .array(fc.constantFrom(0x00, 0x01, 0xfe, 0xff), { maxLength: 6 })
    .map((b) => Uint8Array.from(b)),
);

const stringPart = fc.oneof(
  fc.string({ unit: "binary", maxLength: 8 }),
  fc
    .array(fc.constantFrom("\0", "\x01", "a", "é", "\u07ff", "\uffff", "😀", "\u{10ffff}"), {
      maxLength: 6,
    })
    .map((s) => s.join("")),
);

const numberPart = fc.oneof(
  fc.double(),
  fc.constantFrom(
    0,
    -0,
    Number.NaN,
    Infinity,
    -Infinity,
    Number.MIN_VALUE,
    -Number.MIN_VALUE,
    Number.MAX_VALUE,
    1,
    -1,
  ),
  fc.integer({ min: -1000, max: 1000 }),
);

const bigintPart = fc.oneof(
  fc.bigInt({ min: -(1n << 72n), max: 1n << 72n }),
  fc.bigInt({ min: -MAX_KEY_BIGINT, max: MAX_KEY_BIGINT }),
  fc.constantFrom(
    0n,
    1n,
    -1n,
    255n,
    -255n,
    256n,
    -256n,
    (1n << 64n) - 1n,
    -((1n << 64n) - 1n),
    1n << 64n,
    -(1n << 64n),
  ),
  fc.constantFrom(MAX_KEY_BIGINT, -MAX_KEY_BIGINT),
);

const keyPart: fc.Arbitrary<KvKeyPart> = fc.oneof(
  bytesPart,
  stringPart,
  numberPart,
  bigintPart,
  fc.boolean(),
);
const key = fc.array(keyPart, { maxLength: 5 });

/** Pairs that often share a prefix, so that ties and near-ties are common. */
const keyPair = fc.oneof(
  fc.tuple(key, key),
  fc
    .tuple(key, fc.nat(5), key)
    .map(([a, cut, tail]): [KvKey, KvKey] => [a, [...a.slice(0, cut), ...tail]]),
  fc
    .tuple(key, fc.nat(5), keyPart)
    .map(([a, at, part]): [KvKey, KvKey] => [a, a.map((p, i) => (i === at ? part : p))]),
);

describe("key codec", () => {
  it("decodes what it encodes, keeping NaN, -0, huge bigints and NUL characters", () => {
    fc.assert(
      fc.property(key, (k) => {
        const decoded = decodeKey(encodeKey(k));
        expect(sameKey(decoded, k), `${hex(encodeKey(k))} decoded differently`).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("orders encoded bytes exactly as the documented key order", () => {
    fc.assert(
      fc.property(keyPair, ([a, b]) => {
        expect(Math.sign(Buffer.compare(encodeKey(a), encodeKey(b)))).toBe(compareKeys(a, b));
      }),
      { numRuns: 3000 },
    );
  });

  it("sorts a list of keys by bytes into non-decreasing documented order", () => {
    fc.assert(
      fc.property(fc.array(key, { maxLength: 30 }), (keys) => {
        const sorted = keys
          .map((k) => ({ k, bytes: encodeKey(k) }))
          .sort((x, y) => Buffer.compare(x.bytes, y.bytes));
        for (let i = 1; i < sorted.length; i++) {
          expect(compareKeys(sorted[i - 1]!.k, sorted[i]!.k)).toBeLessThanOrEqual(0);
        }
      }),
    );
  });

  it("encodes equal keys to equal bytes and different keys to different bytes", () => {
    fc.assert(
      fc.property(keyPair, ([a, b]) => {
        const equalBytes = Buffer.compare(encodeKey(a), encodeKey(b)) === 0;
        expect(equalBytes).toBe(sameKey(a, b));
      }),
      { numRuns: 2000 },
    );
  });

  it("writes a given prefix before the key", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 10 }), key, (prefix, k) => {
        expect(hex(encodeKey(k, prefix))).toBe(hex(prefix) + hex(encodeKey(k)));
      }),
    );
  });

  const vectors: [string, KvKey, string][] = [
    ["a string", ["a"], "02 61 00"],
    ["a string with a NUL character", ["\0"], "02 00 ff 00"],
    ["NUL inside a string", ["a\0b"], "02 61 00 ff 62 00"],
    ["the empty string", [""], "02 00"],
    ["bytes with a zero", [Uint8Array.of(1, 2, 0, 7, 8)], "01 01 02 00 ff 07 08 00"],
    ["empty bytes", [new Uint8Array()], "01 00"],
    [
      "string then bytes",
      ["hello", Uint8Array.of(1, 2, 0, 7, 8)],
      "02 68 65 6c 6c 6f 00 01 01 02 00 ff 07 08 00",
    ],
    ["0n", [0n], "14"],
    ["1n", [1n], "15 01"],
    ["-1n", [-1n], "13 fe"],
    ["256n", [256n], "16 01 00"],
    ["-256n", [-256n], "12 fe ff"],
    ["2^64 - 1", [(1n << 64n) - 1n], "1c ff ff ff ff ff ff ff ff"],
    ["-(2^64 - 1)", [-((1n << 64n) - 1n)], "0c 00 00 00 00 00 00 00 00"],
    ["2^64", [1n << 64n], "1d 09 01 00 00 00 00 00 00 00 00"],
    ["-(2^64)", [-(1n << 64n)], "0b f6 fe ff ff ff ff ff ff ff ff"],
    ["0", [0], "21 80 00 00 00 00 00 00 00"],
    ["-0", [-0], "21 7f ff ff ff ff ff ff ff"],
    ["1", [1], "21 bf f0 00 00 00 00 00 00"],
    ["-1", [-1], "21 40 0f ff ff ff ff ff ff"],
    ["Infinity", [Infinity], "21 ff f0 00 00 00 00 00 00"],
    ["-Infinity", [-Infinity], "21 00 0f ff ff ff ff ff ff"],
    ["NaN", [Number.NaN], "21 ff f8 00 00 00 00 00 00"],
    ["false", [false], "26"],
    ["true", [true], "27"],
    ["the empty key", [], ""],
  ];

  it.each(vectors)("encodes %s byte for byte", (_name, k, bytes) => {
    expect(hex(encodeKey(k))).toBe(bytes.replaceAll(" ", ""));
    expect(sameKey(decodeKey(unhex(bytes)), k)).toBe(true);
  });

  it("orders a ladder of boundary parts strictly ascending", () => {
    const ladder: KvKeyPart[] = [
      new Uint8Array(),
      Uint8Array.of(0),
      Uint8Array.of(0, 0),
      Uint8Array.of(0, 0xff),
      Uint8Array.of(1),
      Uint8Array.of(0xff),
      "",
      "\0",
      "\0\0",
      "\x01",
      "a",
      "a\0",
      "a\x01",
      "b",
      "\u07ff",
      "\uffff",
      "😀",
      -MAX_KEY_BIGINT,
      -(1n << 64n),
      -((1n << 64n) - 1n),
      -256n,
      -255n,
      -1n,
      0n,
      1n,
      255n,
      256n,
      (1n << 64n) - 1n,
      1n << 64n,
      MAX_KEY_BIGINT,
      -Infinity,
      -Number.MAX_VALUE,
      -1,
      -Number.MIN_VALUE,
      -0,
      0,
      Number.MIN_VALUE,
      1,
      Number.MAX_VALUE,
      Infinity,
      Number.NaN,
      false,
      true,
    ];
    for (let i = 1; i < ladder.length; i++) {
      const [lower, upper] = [encodeKey([ladder[i - 1]!]), encodeKey([ladder[i]!])];
      expect(Buffer.compare(lower, upper), `${String(ladder[i - 1])} < ${String(ladder[i])}`).toBe(
        -1,
      );
      expect(compareKeys([ladder[i - 1]!], [ladder[i]!])).toBe(-1);
    }
  });

  it("accepts a bigint of 255 bytes and refuses one of 256", () => {
    expect(encodeKey([MAX_KEY_BIGINT]).length).toBe(257);
    expect(() => encodeKey([MAX_KEY_BIGINT + 1n])).toThrow(KvError);
    expect(() => encodeKey([-MAX_KEY_BIGINT - 1n])).toThrow(KvError);
  });

  it.each([
    ["an object", [{}]],
    ["null", [null]],
    ["undefined", [undefined]],
    ["a symbol", [Symbol("s")]],
    ["a Date", [new Date(0)]],
    ["a non-array", "abc"],
  ])("refuses %s with INVALID_KEY", (_name, k) => {
    expect(() => encodeKey(k as unknown as KvKey)).toThrow(
      expect.objectContaining({ code: "INVALID_KEY" }),
    );
  });

  it.each([
    ["an unknown tag", "05"],
    ["an unterminated string", "02 61"],
    ["a truncated double", "21 80 00"],
    ["a truncated bigint", "16 01"],
    ["a missing bigint length", "1d"],
  ])("refuses to decode %s", (_name, bytes) => {
    expect(() => decodeKey(unhex(bytes))).toThrow(expect.objectContaining({ code: "INVALID_KEY" }));
  });

  it("decodes byte parts of a Buffer as plain Uint8Array copies", () => {
    const encoded = Buffer.from(encodeKey([Uint8Array.of(1, 0, 2), "x"]));
    const [bytes] = decodeKey(encoded) as [Uint8Array, string];
    expect(bytes.constructor).toBe(Uint8Array);
    encoded.fill(9);
    expect([...bytes]).toEqual([1, 0, 2]);
  });
});
