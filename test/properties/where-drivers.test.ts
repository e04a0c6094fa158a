/**
 * Every driver selects exactly the entries the JavaScript evaluator does, for random documents
 * and random filters: SQLite and PostgreSQL in SQL where they can, in JavaScript where they
 * cannot (non-JSON values, paths or strings their engine cannot spell); the same counts; and
 * full pages under a small limit, both ways.
 */
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { KvU64 } from "../../src/codec/u64.js";
import type { Filter } from "../../src/contract/filter.js";
import type { KeyRange } from "../../src/contract/index.js";
import { compileWhere } from "../../src/core/where/compile.js";
import {
  type Drivers,
  expected,
  NOW,
  openDrivers,
  positions,
  writeBatch,
} from "../drivers/where-harness.js";

/** Field names: a few common ones, so filters meet fields; and some no SQL path can spell. */
const COMMON_NAMES = ["a", "b", "tags", "0", "1"];
const ODD_NAMES = [
  "01",
  "-1",
  " 2",
  "é",
  "😀",
  "A B",
  'q"t',
  "b\\s",
  "$x",
  "a'); DROP TABLE cellar_kv; --",
];
const name = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...COMMON_NAMES) },
  { weight: 1, arbitrary: fc.constantFrom(...ODD_NAMES) },
);
const TEXTS = [
  "",
  "a",
  "A",
  "ab",
  "Ab",
  "aB",
  "abc",
  "b",
  "é",
  "É",
  "ß",
  "İ",
  "😀",
  "𝔸",
  "\uffff",
  "\ue000",
  "x\ny",
  "\u0001",
  "a\u0000b",
  "\ud800",
  "%",
  "_",
  "'; DROP TABLE cellar_kv; --",
  '"',
  "\\",
];
const CHARS = ["a", "A", "b", "B", "z", "é", "É", "😀", "\ue000", "%", "_", "'", " "];
const NUMBERS = [0, 1, -1, 2, 1.5, -2.25, 0.1, 0.30000000000000004, 100, 5e-324, -1e-7];
/** Numbers past 2^53, where a JSON integer, its double and a bigint can part ways. */
const LARGE = [
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  4611686018427389000,
  2 ** 64,
  1e21,
  1.7976931348623157e308,
];
const BIGINTS = [
  0n,
  1n,
  -1n,
  2n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 53n + 1n,
  -(2n ** 53n) - 1n,
  4611686018427388928n,
  4611686018427389000n,
  2n ** 64n,
  2n ** 64n + 1n,
  10n ** 21n,
  10n ** 400n,
  -(10n ** 400n),
];
const DATES = [0, 1, 2, 100, NOW, NOW - 1000].map((t) => new Date(t));

const text = fc.oneof(
  fc.constantFrom(...TEXTS),
  fc.string({ unit: fc.constantFrom(...CHARS), maxLength: 4 }),
);
const number = fc.oneof(
  fc.constantFrom(...NUMBERS),
  fc.constantFrom(...LARGE),
  fc.integer({ min: -5, max: 5 }),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }),
);
const scalar = fc.oneof(
  { weight: 3, arbitrary: text },
  { weight: 3, arbitrary: number },
  { weight: 2, arbitrary: fc.constantFrom(...BIGINTS) },
  { weight: 1, arbitrary: fc.constantFrom(...DATES) },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
);

// A path may not start with `$`, the operators' mark.
const path = fc
  .tuple(
    name.filter((n) => !n.startsWith("$")),
    fc.oneof(
      { weight: 4, arbitrary: fc.constant([]) },
      { weight: 1, arbitrary: fc.array(name, { minLength: 1, maxLength: 2 }) },
    ),
  )
  .map(([first, rest]) => [first, ...rest].join("."));

/** Values that make the whole document V8-encoded. */
const V8_LEAVES = [...BIGINTS, ...DATES, Number.NaN, -0, Number.POSITIVE_INFINITY];

type Word = string | number | bigint | boolean | null | Date;

/**
 * Documents and filters over one small vocabulary, so that filters meet the values documents
 * hold: operands are its words, their neighbours (a bigint next to an integer, the double of a
 * bigint) and pieces of its strings in either case.
 */
function scenario(words: readonly Word[]) {
  const json = words.filter((w) => !(w instanceof Date) && typeof w !== "bigint");
  const strings = words.filter((w): w is string => typeof w === "string");
  const twins = words.flatMap((w): Word[] =>
    typeof w === "bigint"
      ? [Number(w)].filter(Number.isFinite)
      : typeof w === "number" && Number.isInteger(w)
        ? [BigInt(w) + 1n, BigInt(w) - 1n]
        : [],
  );
  const operand = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...words) },
    { weight: 2, arbitrary: twins.length > 0 ? fc.constantFrom(...twins) : scalar },
    { weight: 1, arbitrary: scalar },
  );
  const piece =
    strings.length === 0
      ? text
      : fc.oneof(
          fc
            .tuple(fc.constantFrom(...strings), fc.nat(4), fc.nat(4), fc.boolean())
            .map(([word, from, to, upper]) => {
              const part = word.slice(Math.min(from, to), Math.max(from, to) + 1);
              return upper ? part.toUpperCase() : part;
            }),
          text,
        );
  const leaf = fc.oneof(
    { weight: 8, arbitrary: json.length > 0 ? fc.constantFrom(...json) : text },
    { weight: 2, arbitrary: fc.oneof(text, number, fc.boolean(), fc.constant(null)) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(...V8_LEAVES) },
  );
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      leaf,
      fc.array(tie("tree"), { maxLength: 3 }),
      fc.dictionary(name, tie("tree"), { maxKeys: 4 }),
    ),
  }));
  const doc = fc.oneof(
    { weight: 8, arbitrary: fc.dictionary(name, tree, { minKeys: 2, maxKeys: 5 }) },
    { weight: 2, arbitrary: tree },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((n) => new KvU64(n)),
        fc.uint8Array({ maxLength: 3 }),
      ),
    },
  );
  const condition = fc.oneof(
    operand,
    fc
      .tuple(fc.constantFrom("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$contains"), operand)
      .map(([op, v]) => ({ [op]: v })),
    fc
      .tuple(
        fc.constantFrom(
          "$ieq",
          "$contains",
          "$icontains",
          "$startsWith",
          "$endsWith",
          "$istartsWith",
          "$iendsWith",
        ),
        piece,
      )
      .map(([op, v]) => ({ [op]: v })),
    fc.tuple(operand, operand).map((bounds) => ({ $between: bounds })),
    fc
      .tuple(fc.constantFrom("$in", "$nin"), fc.array(operand, { maxLength: 4 }))
      .map(([op, v]) => ({ [op]: v })),
    fc.boolean().map((exists) => ({ $exists: exists })),
  );
  const { where } = fc.letrec((tie) => ({
    where: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.tuple(path, condition).map(([p, c]) => ({ [p]: c })),
      fc
        .tuple(
          fc.constantFrom("$and", "$or"),
          fc.array(tie("where"), { minLength: 1, maxLength: 3 }),
        )
        .map(([op, filters]) => ({ [op]: filters })),
      tie("where").map((f) => ({ $not: f })),
    ),
  }));
  return fc.tuple(
    fc.array(doc, { minLength: 4, maxLength: 16 }),
    fc.array(
      where.map((w): Filter => compileWhere(w, NOW)),
      { minLength: 1, maxLength: 6 },
    ),
  );
}

const word = fc.oneof(scalar, fc.constantFrom(...LARGE));
const scenarios = fc.array(word, { minLength: 1, maxLength: 6 }).chain(scenario);

let drivers: Drivers;
beforeAll(async () => {
  drivers = await openDrivers();
});
afterAll(async () => {
  await drivers?.close();
});

async function check(range: KeyRange, docs: readonly unknown[], where: Filter): Promise<void> {
  const want = expected(docs, where);
  for (const [name, driver] of drivers.all) {
    const read = (limit: number, reverse: boolean) =>
      driver.snapshotRead([{ ...range, limit, reverse, where }], { now: NOW }).then((r) => r[0]!);
    const at = `${name}: ${JSON.stringify(where, (_, v) => (typeof v === "bigint" ? `${v}n` : v))}`;
    expect(positions(await read(1000, false)), at).toEqual(want);
    expect(await driver.count({ ...range, where }, { now: NOW }), at).toBe(want.length);
    expect(positions(await read(2, false)), at).toEqual(want.slice(0, 2));
    expect(positions(await read(2, true)), at).toEqual(want.slice(-2).reverse());
  }
}

it("selects what matchesFilter selects, on every driver", async () => {
  await fc.assert(
    fc.asyncProperty(scenarios, async ([docs, filters]) => {
      const range = await writeBatch(drivers, docs);
      for (const where of filters) await check(range, docs, where);
    }),
    { numRuns: 500 },
  );
}, 300_000);
