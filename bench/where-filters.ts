/**
 * Where filters on SQLite without an index, on 100,000 entries: the filter in SQL, the same
 * filter evaluated by JavaScript inside the statement (what a filter SQL cannot express costs),
 * a JavaScript scan over unfiltered pages (what a driver without filters would leave the core to
 * do), and a hand-written `json_extract` query on the same table.
 *
 *   npx tsx bench/where-filters.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { encodeKey } from "../src/codec/key.js";
import { encodeValue } from "../src/codec/value.js";
import { type Filter, rawMatches } from "../src/contract/filter.js";
import type { KvDriver, RawEntry } from "../src/contract/index.js";
import { compileWhere, type KvWhere } from "../src/core/where/compile.js";
import { prefixEnd } from "../src/drivers/shared/range.js";
import { sqliteDriver } from "../src/drivers/sqlite/index.js";

const ENTRIES = 100_000;
const LIMIT = 100;
const NOW = Date.now();

const doc = (i: number) => ({
  id: i,
  name: `user-${i}`,
  email: `user-${i}@example.com`,
  group: i % 10,
  age: 18 + (i % 60),
  active: i % 2 === 0,
  tags: [`t${i % 7}`, `t${i % 11}`],
});

/** An always-true condition on a path no SQLite JSON path can spell: the filter goes to JS. */
const inJavaScript = (filter: Filter): Filter => ({
  op: "and",
  filters: [filter, { op: "exists", path: ['no"such'], exists: false }],
});

async function jsScan(driver: KvDriver, range: Range, filter: Filter, limit: number) {
  const out: RawEntry[] = [];
  let start = range.start;
  for (;;) {
    const [page] = await driver.snapshotRead(
      [{ start, end: range.end, limit: 1000, reverse: false }],
      {
        now: NOW,
      },
    );
    for (const entry of page!) {
      if (rawMatches(filter, entry.value)) out.push(entry);
      if (out.length === limit) return out;
    }
    if (page!.length < 1000) return out;
    start = Uint8Array.from([...page!.at(-1)!.key, 0]);
  }
}

type Range = { start: Uint8Array; end: Uint8Array };

async function time(run: () => unknown): Promise<number> {
  await run();
  let n = 0;
  const started = performance.now();
  while (performance.now() - started < 1000 || n < 5) {
    await run();
    n++;
  }
  return (performance.now() - started) / n;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-where-bench-"));
  const file = join(dir, "bench.db");
  const driver = sqliteDriver(file, { durability: "normal" });
  const prefix = encodeKey(["users"]);
  for (let i = 0; i < ENTRIES; i += 1000) {
    const mutations = Array.from({ length: 1000 }, (_, j) => ({
      type: "set" as const,
      key: encodeKey([i + j], prefix),
      value: encodeValue(doc(i + j)),
      expiresAt: null,
    }));
    await driver.atomicWrite({ checks: [], mutations, now: NOW });
  }
  const range = { start: prefix, end: prefixEnd(prefix) };
  const raw = new Database(file, { readonly: true });

  const cases: [string, KvWhere, string, unknown[]][] = [
    ["equality, 1 in 10 match", { group: 3 }, "json_extract(value, '$.group') = ?", [3]],
    [
      "selective, 1 match",
      { email: "user-77777@example.com" },
      "json_extract(value, '$.email') = ?",
      ["user-77777@example.com"],
    ],
    [
      "range + contains",
      { age: { $gte: 30, $lt: 32 }, tags: { $contains: "t3" } },
      "json_extract(value, '$.age') >= ? AND json_extract(value, '$.age') < ? AND EXISTS (SELECT 1 FROM json_each(cellar_kv.value, '$.tags') AS e WHERE e.value = ?)",
      [30, 32, "t3"],
    ],
  ];
  console.log(`SQLite, ${ENTRIES.toLocaleString("en-US")} entries, limit ${LIMIT}: ms per query`);
  console.log(
    "| filter | SQL | JS in statement | JS scan of pages | hand-written SQL | count (SQL) | count (JS in statement) |",
  );
  console.log("|---|---|---|---|---|---|---|");
  for (const [name, where, handSql, params] of cases) {
    const filter = compileWhere(where, NOW);
    const read = (f: Filter) => () =>
      driver.snapshotRead([{ ...range, limit: LIMIT, reverse: false, where: f }], { now: NOW });
    const hand = raw.prepare(
      `SELECT key, value FROM cellar_kv WHERE key >= ? AND key < ? AND ${handSql} ORDER BY key LIMIT ?`,
    );
    const [sqlRows] = await read(filter)();
    const [jsRows] = await read(inJavaScript(filter))();
    const scanned = await jsScan(driver, range, filter, LIMIT);
    const handRows = hand.all(range.start, range.end, ...params, LIMIT);
    if (
      sqlRows!.length !== jsRows!.length ||
      sqlRows!.length !== scanned.length ||
      sqlRows!.length !== handRows.length
    )
      throw new Error(`${name}: the variants disagree`);
    const figures = [
      await time(read(filter)),
      await time(read(inJavaScript(filter))),
      await time(() => jsScan(driver, range, filter, LIMIT)),
      await time(() => hand.all(range.start, range.end, ...params, LIMIT)),
      await time(() => driver.count({ ...range, where: filter }, { now: NOW })),
      await time(() => driver.count({ ...range, where: inJavaScript(filter) }, { now: NOW })),
    ];
    console.log(
      `| ${name} (${sqlRows!.length} returned) | ${figures.map((f) => f.toFixed(2)).join(" | ")} |`,
    );
  }
  raw.close();
  await driver.close();
  rmSync(dir, { recursive: true, force: true });
}

await main();
