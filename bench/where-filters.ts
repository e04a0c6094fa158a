/**
 * Where filters without an index, on the indexes group's 100,000 SQLite entries (a store with no
 * index): the filter in SQL, the same filter evaluated by JavaScript inside the statement (what
 * a filter SQL cannot express costs), a JavaScript scan over unfiltered pages (what a driver
 * without filters would leave the core to do), and a hand-written `json_extract` query on the
 * same table; then counts of every match, in SQL and in JavaScript.
 */
import Database from "better-sqlite3";
import { encodeKey } from "../src/codec/key.js";
import { type Filter, rawMatches } from "../src/contract/filter.js";
import type { KvDriver, RawEntry } from "../src/contract/index.js";
import { compileWhere, type KvWhere } from "../src/core/where/compile.js";
import { prefixEnd } from "../src/drivers/shared/range.js";
import { sqliteDriver } from "../src/drivers/sqlite/index.js";
import { PREFIX } from "./documents.js";
import { type Contender, compare, queries, type Row, type Section } from "./harness.js";

const LIMIT = 100;
const PAGE = 1000;
/** Full scans take up to half a second: shorter slices keep the group within its minutes. */
const SCAN = { budgetMs: 500, warmupMs: 100 };
const HAND_WRITTEN = "hand-written json_extract";

type Range = { start: Uint8Array; end: Uint8Array };

/** An always-true condition on a path no SQLite JSON path can spell: the filter goes to JS. */
const inJavaScript = (filter: Filter): Filter => ({
  op: "and",
  filters: [filter, { op: "exists", path: ['no"such'], exists: false }],
});

async function jsScan(driver: KvDriver, range: Range, filter: Filter, now: number) {
  const out: RawEntry[] = [];
  let start = range.start;
  for (;;) {
    const [page] = await driver.snapshotRead(
      [{ start, end: range.end, limit: PAGE, reverse: false }],
      { now },
    );
    for (const entry of page!) {
      if (rawMatches(filter, entry.value)) out.push(entry);
      if (out.length === LIMIT) return out;
    }
    if (page!.length < PAGE) return out;
    start = Uint8Array.from([...page!.at(-1)!.key, 0]);
  }
}

interface Case {
  readonly name: string;
  readonly where: KvWhere;
  /** The same condition by hand, on `cellar_kv.value`. */
  readonly sql: string;
  readonly params: readonly unknown[];
}

const CASES: readonly Case[] = [
  {
    name: "equality, 1 in 10 match",
    where: { group: 3 },
    sql: "json_extract(value, '$.group') = ?",
    params: [3],
  },
  {
    name: "selective, 1 match",
    where: { email: "user-77777@example.com" },
    sql: "json_extract(value, '$.email') = ?",
    params: ["user-77777@example.com"],
  },
  {
    name: "range + contains",
    where: { age: { $gte: 30, $lt: 32 }, tags: { $contains: "t3" } },
    sql: "json_extract(value, '$.age') >= ? AND json_extract(value, '$.age') < ? AND EXISTS (SELECT 1 FROM json_each(cellar_kv.value, '$.tags') AS e WHERE e.value = ?)",
    params: [30, 32, "t3"],
  },
];

/** The where-filter sections, on the Cellar SQLite file `path` of namespace `namespace`. */
export async function whereFilterSections(
  path: string,
  namespace: string,
  log: (step: string) => void,
): Promise<Section[]> {
  const driver = sqliteDriver(path, { durability: "normal" });
  const raw = new Database(path, { readonly: true });
  try {
    const prefix = encodeKey(PREFIX, encodeKey([namespace]));
    const range = { start: prefix, end: prefixEnd(prefix) };
    const now = Date.now();
    const sections: Section[] = [];
    const counts: Contender[] = [];
    for (const { name, where, sql, params } of CASES) {
      log(`indexes: where filter without an index, ${name}`);
      const filter = compileWhere(where, now);
      const read = (f: Filter) => () =>
        driver.snapshotRead([{ ...range, limit: LIMIT, reverse: false, where: f }], { now });
      const hand = raw.prepare(
        `SELECT key, value FROM cellar_kv WHERE key >= ? AND key < ? AND ${sql} ORDER BY key LIMIT ?`,
      );
      const handRead = () => hand.all(range.start, range.end, ...params, LIMIT);
      const [inSql] = await read(filter)();
      const [inJs] = await read(inJavaScript(filter))();
      const lengths = [
        inSql!.length,
        inJs!.length,
        (await jsScan(driver, range, filter, now)).length,
        handRead().length,
      ];
      if (lengths.some((n) => n !== lengths[0]))
        throw new Error(`${name}: the variants return ${lengths.join(", ")} entries`);
      const rows = await compare([
        queries("filter in SQL", read(filter), SCAN),
        queries("filter in JavaScript inside the statement", read(inJavaScript(filter)), SCAN),
        queries(
          `JavaScript scan of ${PAGE}-entry pages`,
          () => jsScan(driver, range, filter, now),
          SCAN,
        ),
        queries(HAND_WRITTEN, handRead, SCAN),
      ]);
      sections.push(section(`${name}, ${lengths[0]} returned`, rows));
      counts.push(
        queries(`${name}, in SQL`, () => driver.count({ ...range, where: filter }, { now }), SCAN),
        queries(
          `${name}, in JavaScript inside the statement`,
          () => driver.count({ ...range, where: inJavaScript(filter) }, { now }),
          SCAN,
        ),
      );
    }
    log("indexes: where filter counts without an index");
    sections.push({
      title: "Where filter without an index: count of every match (ops = counts)",
      rows: await compare(counts),
      baseline: null,
    });
    return sections;
  } finally {
    raw.close();
    await driver.close();
  }
}

const section = (name: string, rows: Row[]): Section => ({
  title: `Where filter without an index: ${name}, limit ${LIMIT} (ops = queries)`,
  rows,
  baseline: HAND_WRITTEN,
});
