/**
 * SQL and JSON-path injection through where filters: strings that mean something to SQL, to
 * SQLite's JSON paths or to PostgreSQL's, as field paths, as operands and inside string
 * operators. Each filter is refused with INVALID_FILTER by the compiler or returns what the
 * JavaScript evaluator selects, and the tables are intact afterwards.
 */
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Filter } from "../../src/contract/filter.js";
import { compileWhere } from "../../src/core/where/compile.js";
import {
  type Drivers,
  expected,
  NOW,
  openDrivers,
  POSTGRES,
  positions,
  writeBatch,
} from "./where-harness.js";

const NASTY = [
  "a'); DROP TABLE cellar_kv; --",
  'a"); DROP TABLE cellar_kv; --',
  "x' OR '1'='1",
  "1 OR 1=1",
  "); SELECT pg_sleep(5); --",
  "'; SELECT load_extension('x'); --",
  'a"b',
  "a'b",
  "a\\b",
  "a\\",
  '\\"',
  "$..*",
  "$",
  "$.a",
  "$[0]",
  "a[0]",
  "[#-1]",
  "*",
  "?",
  "?1",
  "$1",
  ":name",
  "@name",
  "%",
  "_",
  "a%b",
  "'",
  "''",
  '"',
  "--",
  "/*",
  ";",
  "{}",
  "{a,b}",
  '{"a"}',
  "NULL",
  "json_extract(value, '$')",
  "value_json::jsonb",
  "$$",
  "E'\\x27'",
  "#>",
  "->>",
  "\u0000",
  "\ud800",
  "\n",
  "-1",
  " 1",
];

const docs: unknown[] = [
  ...NASTY.map((s) => ({ [s]: 1, a: s, tags: [s, "t"], nested: { [s]: s } })),
  { a: "plain", tags: ["t"] },
  { a: 1 },
  [NASTY[0], NASTY[1]],
];

/** User filters built around `s`: as a path, a path segment, an operand, a substring. */
const filtersOf = (s: string): unknown[] => [
  { [s]: 1 },
  { [s]: { $exists: true } },
  { [`nested.${s}`]: s },
  { [`nested.${s}`]: { $exists: false } },
  { a: s },
  { a: { $ne: s } },
  { a: { $gt: s } },
  { a: { $in: [s, "plain"] } },
  { a: { $contains: s } },
  { a: { $startsWith: s } },
  { a: { $iendsWith: s } },
  { a: { $ieq: s } },
  { tags: { $contains: s } },
  { $or: [{ [s]: { $exists: true } }, { a: { $icontains: s } }] },
];

/** Compiled filters no user syntax produces: the drivers must not trust the compiler. */
const RAW: Filter[] = [
  { op: "eq", path: ["", "a"], value: 1 },
  { op: "eq", path: [-1], value: "a" },
  { op: "eq", path: [1.5], value: "a" },
  { op: "exists", path: ["nested", "a'); DROP TABLE cellar_kv; --"], exists: true },
  { op: "eq", path: ["a"], value: Number.NaN },
  { op: "gt", path: ["a"], value: Number.POSITIVE_INFINITY },
  { op: "contains", path: ["a"], value: 1, ci: true },
  { op: "startsWith", path: ["a"], value: 1 },
  { op: "and", filters: [] },
  { op: "or", filters: [] },
  { op: "not", filter: { op: "and", filters: [] } },
];

let drivers: Drivers;
beforeAll(async () => {
  drivers = await openDrivers();
});
afterAll(async () => {
  await drivers?.close();
});

it("refuses or answers every injection attempt as the JavaScript evaluator does", async () => {
  const range = await writeBatch(drivers, docs);
  const filters: Filter[] = [...RAW];
  let refused = 0;
  for (const where of NASTY.flatMap(filtersOf)) {
    try {
      filters.push(compileWhere(where, NOW));
    } catch (error) {
      expect(error, JSON.stringify(where)).toMatchObject({ code: "INVALID_FILTER" });
      refused++;
    }
  }
  // Paths starting with `$` and paths with empty segments (`$..*`) are the compiler's to refuse.
  expect(refused).toBeGreaterThan(0);
  for (const filter of filters) {
    const want = expected(docs, filter);
    for (const [name, driver] of drivers.all) {
      const at = `${name}: ${JSON.stringify(filter)}`;
      const [all, page] = await driver.snapshotRead(
        [
          { ...range, limit: 1000, reverse: false, where: filter },
          { ...range, limit: 2, reverse: true, where: filter },
        ],
        { now: NOW },
      );
      expect(positions(all!), at).toEqual(want);
      expect(positions(page!), at).toEqual(want.slice(-2).reverse());
      expect(await driver.count({ ...range, where: filter }, { now: NOW }), at).toBe(want.length);
    }
  }

  const file = new Database(drivers.sqliteFile, { readonly: true });
  expect(file.prepare("SELECT count(*) FROM cellar_kv").pluck().get()).toBe(docs.length);
  file.close();
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  const { rows } = await client.query(
    `SELECT count(*)::int AS n FROM "${drivers.schema}".cellar_kv`,
  );
  await client.end();
  expect(rows[0].n).toBe(docs.length);
});
