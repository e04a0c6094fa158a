/**
 * The edges of the filter semantics where SQL and JavaScript part ways unless the translation
 * takes care, on every driver: JSON integers past 2^53 against their doubles and bigints, code
 * point order past the BMP, ASCII-only case folding, strings SQL engines cannot hold, paths a
 * JSON path cannot spell, digit segments on arrays and objects, and pages that must stay full
 * when most entries of a range are V8-encoded.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KvU64 } from "../../src/codec/u64.js";
import type { Filter } from "../../src/contract/filter.js";
import { compileWhere, type KvWhere } from "../../src/core/where/compile.js";
import { POSTGRES_WHERE } from "../../src/drivers/postgres/where.js";
import { type WhereDialect, whereToSql } from "../../src/drivers/shared/where-sql.js";
import { SQLITE_WHERE } from "../../src/drivers/sqlite/where.js";
import {
  type Drivers,
  expected,
  NOW,
  openDrivers,
  positions,
  writeBatch,
} from "./where-harness.js";

const DOCS: unknown[] = [
  { n: 2 ** 53 },
  { n: 2 ** 53 + 2 },
  { n: 4611686018427389000 },
  { n: 2 ** 64 },
  { n: 1e21 },
  { n: -(2 ** 53) },
  { n: 1.5 },
  { n: 5e-324 },
  { n: 0 },
  { n: 1000 },
  { n: 2n ** 53n + 1n },
  { n: new Date(1000) },
  new KvU64(5n),
  { n: "5" },
  { n: true },
  { n: false },
  { n: null },
  { n: [1, 2] },
  { n: { "0": 1 } },
  { s: "é" },
  { s: "É" },
  { s: "Ab" },
  { s: "aB" },
  { s: "😀" },
  { s: "\ue000" },
  { s: "\uffff" },
  { s: "\ud800" },
  { s: "a\u0000b" },
  { s: "a\u0000" },
  { "a\u0000b": 1, "\ud800": 2, a: "\ud800", b: ["\ud800x"] },
  { s: "x\ny" },
  { s: "50%_off" },
  { s: "İ" },
  { s: "i" },
  { s: "" },
  { "b\\s": 1, 'q"t': 2, "01": 3, "-1": 4, " 5": 6, "a.b": 5 },
  [10, 20],
  ["x", "y"],
  { tags: ["a", "B", 1, null, true] },
  { tags: ["a", "B", 1, null, true, 2n] },
  { tags: "a, B" },
  { a: { "0": "zero" } },
  { a: ["zero"] },
  { a: [[1]] },
  "plain string",
  42,
  null,
  true,
  new Uint8Array([1]),
];

/** Filters, and the dialects expected to leave each to JavaScript. */
const FILTERS: [KvWhere, ("sqlite" | "postgres")[]?][] = [
  [{ n: 2 ** 53 }],
  [{ n: 2n ** 53n }],
  [{ n: 2n ** 53n + 1n }],
  [{ n: { $gt: 2n ** 53n } }],
  [{ n: { $gte: 2n ** 53n + 1n } }],
  [{ n: { $lt: 2n ** 53n + 1n } }],
  [{ n: { $lte: 2n ** 53n + 1n } }],
  [{ n: { $lt: -(2n ** 53n) - 1n } }],
  [{ n: 4611686018427389000 }],
  [{ n: 4611686018427388928n }],
  [{ n: 4611686018427389000n }],
  [{ n: { $gt: 4611686018427388928n } }],
  [{ n: { $lte: 4611686018427389000n } }],
  [{ n: { $gte: 4611686018427389000n } }],
  [{ n: 2n ** 64n }],
  [{ n: new KvU64(2n ** 64n - 1n) }],
  [{ n: 10n ** 21n }],
  [{ n: { $gt: 10n ** 400n } }],
  [{ n: { $gt: -(10n ** 400n) } }],
  [{ n: { $lt: -(10n ** 400n) } }],
  [{ n: new Date(1000) }],
  [{ n: { $gte: new Date(0) } }],
  [{ n: { $lt: { $now: 0 } } }],
  [{ n: { $between: [0, 2 ** 53] } }],
  [{ n: { $between: [false, true] } }],
  [{ n: { $between: [null, 1] } }],
  [{ n: { $between: [1, "z"] } }],
  [{ n: { $gt: false } }],
  [{ n: { $lte: true } }],
  [{ n: { $gte: null } }],
  [{ n: null }],
  [{ n: { $ne: null } }],
  [{ n: { $exists: true } }],
  [{ n: { $exists: false } }],
  [{ n: { $in: [1.5, "5", true, 2n ** 53n, new Date(0)] } }],
  [{ n: { $nin: [1.5, null] } }],
  [{ n: { $in: [] } }],
  [{ n: { $nin: [] } }],
  [{ "n.0": 1 }],
  [{ "n.1": 2 }],
  [{ "a.0": "zero" }],
  [{ "a.0.0": 1 }],
  [{ "a.0.0.0.0": 1 }, ["sqlite"]],
  [{ s: { $gt: "\ue000" } }],
  [{ s: { $lt: "😀" } }],
  [{ s: { $gt: "\uffff" } }],
  [{ s: { $gte: "é" } }],
  [{ s: { $ieq: "ab" } }],
  [{ s: { $ieq: "é" } }],
  [{ s: { $ieq: "É" } }],
  [{ s: { $ieq: "İ" } }],
  [{ s: { $ieq: "I" } }],
  [{ s: { $icontains: "B" } }],
  [{ s: { $icontains: "É" } }],
  [{ s: { $istartsWith: "A" } }],
  [{ s: { $iendsWith: "B" } }],
  [{ s: { $contains: "%" } }],
  [{ s: { $contains: "_" } }],
  [{ s: { $contains: "%_" } }],
  [{ s: { $startsWith: "" } }],
  [{ s: { $endsWith: "" } }],
  [{ s: { $contains: "" } }],
  [{ s: { $iendsWith: "" } }],
  [{ s: { $endsWith: "y" } }],
  [{ s: { $startsWith: "x\n" } }],
  [{ s: { $gt: "a" } }],
  [{ s: { $endsWith: "a" } }],
  [{ s: { $endsWith: "b" } }],
  [{ s: { $startsWith: "a" } }],
  [{ s: { $contains: "b" } }],
  [{ s: "a" }],
  [{ s: { $ieq: "A" } }],
  [{ s: { $in: ["a", "\ue000"] } }],
  [{ a: { $exists: true } }],
  [{ a: { $gt: "\ue000" } }],
  [{ a: { $gt: "zero" } }],
  [{ b: { $contains: "\ud800x" } }, ["sqlite", "postgres"]],
  [{ b: { $contains: "x" } }],
  [{ s: { $contains: "\u0000" } }, ["sqlite", "postgres"]],
  [{ s: "\ud800" }, ["sqlite", "postgres"]],
  [{ s: { $lt: "\ud800" } }, ["sqlite", "postgres"]],
  [{ s: { $gt: "\ue000", $lt: "\ud83d" } }, ["sqlite", "postgres"]],
  [{ "b\\s": 1 }, ["sqlite"]],
  [{ 'q"t': 2 }, ["sqlite"]],
  [{ "01": 3 }, ["postgres"]],
  [{ "-1": 4 }, ["postgres"]],
  [{ " 5": 6 }, ["postgres"]],
  [{ "a.b": 5 }],
  [{ "0": 10 }],
  [{ "1": { $gt: 15 } }],
  [{ tags: { $contains: "B" } }],
  [{ tags: { $contains: 1 } }],
  [{ tags: { $contains: 1n } }],
  [{ tags: { $contains: null } }],
  [{ tags: { $contains: true } }],
  [{ tags: { $contains: 2n } }],
  [{ tags: { $contains: "a," } }],
  [{ tags: { $icontains: "b" } }],
  [{ tags: "a" }],
  [{ $not: { n: { $gt: 0 } } }],
  [{ $or: [{ s: "é" }, { n: 0 }] }],
  [{ $and: [{ n: { $gte: 0 } }, { $not: { n: { $in: [0, 1.5] } } }] }],
];

const DIALECTS: Record<"sqlite" | "postgres", WhereDialect> = {
  sqlite: SQLITE_WHERE,
  postgres: POSTGRES_WHERE,
};

const show = (value: unknown) =>
  JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${v}n` : v));

let drivers: Drivers;
beforeAll(async () => {
  drivers = await openDrivers();
});
afterAll(async () => {
  await drivers?.close();
});

describe("each driver selects what matchesFilter selects", () => {
  it.each(
    FILTERS.map(([where, untranslated]) => [show(where), where, untranslated ?? []] as const),
  )("%s", async (_, where, untranslated) => {
    const filter: Filter = compileWhere(where, NOW);
    for (const [name, dialect] of Object.entries(DIALECTS)) {
      const sql = whereToSql(filter, dialect, () => "?");
      expect(sql === null, `${name} leaves it to JavaScript`).toBe(
        untranslated.includes(name as "sqlite"),
      );
    }
    const range = await writeBatch(drivers, DOCS);
    const want = expected(DOCS, filter);
    for (const [name, driver] of drivers.all) {
      const read = async (limit: number, reverse: boolean) =>
        positions(
          (
            await driver.snapshotRead([{ ...range, limit, reverse, where: filter }], {
              now: NOW,
            })
          )[0]!,
        );
      expect(await read(1000, false), name).toEqual(want);
      expect(await read(1, false), name).toEqual(want.slice(0, 1));
      expect(await read(3, true), name).toEqual(want.slice(-3).reverse());
      expect(await driver.count({ ...range, where: filter }, { now: NOW }), name).toBe(want.length);
    }
  });
});

it("answers point reads with a filter, one range or several in one snapshot", async () => {
  const filter = compileWhere({ n: { $gte: 2n ** 53n } }, NOW);
  const range = await writeBatch(drivers, DOCS);
  const points = (
    await drivers.all[0]![1].snapshotRead([{ ...range, limit: 1000, reverse: false }], { now: NOW })
  )[0]!.map((e) => ({
    start: e.key,
    end: Uint8Array.from([...e.key, 0]),
    limit: 1,
    reverse: false,
    where: filter,
  }));
  const want = points.map((_, i) => (expected(DOCS, filter).includes(i) ? [i] : []));
  for (const [name, driver] of drivers.all) {
    const one = await Promise.all(points.map((p) => driver.snapshotRead([p], { now: NOW })));
    expect(
      one.map((r) => positions(r[0]!)),
      name,
    ).toEqual(want);
    const all = await driver.snapshotRead(points, { now: NOW });
    expect(
      all.map((r) => positions(r)),
      name,
    ).toEqual(want);
  }
});

it("keeps pages full when most entries of the range are V8-encoded and do not match", async () => {
  // 600 V8-encoded misses, then matches of both encodings, then more misses.
  const docs = [
    ...Array.from({ length: 600 }, (_, i) => ({ k: "no", at: new Date(i) })),
    ...Array.from({ length: 6 }, (_, i) => (i % 2 ? { k: "yes" } : { k: "yes", at: new Date(i) })),
    ...Array.from({ length: 50 }, (_, i) => ({ k: "no", at: new Date(i) })),
  ];
  const range = await writeBatch(drivers, docs);
  const filter = compileWhere({ k: "yes" }, NOW);
  for (const [name, driver] of drivers.all) {
    for (const limit of [1, 4, 6, 10]) {
      const [forward, backward] = await driver.snapshotRead(
        [
          { ...range, limit, reverse: false, where: filter },
          { ...range, limit, reverse: true, where: filter },
        ],
        { now: NOW },
      );
      const want = [600, 601, 602, 603, 604, 605];
      expect(positions(forward!), name).toEqual(want.slice(0, limit));
      expect(positions(backward!), name).toEqual([...want].reverse().slice(0, limit));
      const [alone] = await driver.snapshotRead(
        [{ ...range, limit, reverse: false, where: filter }],
        {
          now: NOW,
        },
      );
      expect(positions(alone!), name).toEqual(want.slice(0, limit));
    }
    expect(await driver.count({ ...range, where: filter }, { now: NOW }), name).toBe(6);
  }
});
