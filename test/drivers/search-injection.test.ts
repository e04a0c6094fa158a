/**
 * Search queries made of FTS5, tsquery and SQL syntax, on every driver with search: each finds
 * documents or is refused with `INVALID_QUERY`, never another error, and the tables are intact
 * afterwards. Queries come through the query language, and also as parsed queries holding text
 * the language would never produce, since a driver must be safe on its own.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SearchQuery, SearchTokenizer } from "../../src/contract/index.js";
import { parseSearchQuery } from "../../src/core/search/query.js";
import { KvError } from "../../src/errors.js";
import {
  DRIVERS,
  find,
  NOW,
  type OpenDriver,
  type SearchDriver,
  space,
  write,
} from "./search-harness.js";

const NASTY = [
  '"',
  '""',
  '"""',
  "*",
  "**",
  "a*b*",
  "NEAR(a b)",
  "NEAR(",
  "NEAR(a b, 2)",
  "col:",
  "c0:secret",
  "{c0 c1}:secret",
  "- c0 : secret",
  "') OR 1=1 --",
  "'; DROP TABLE cellar_kv; --",
  '"; DROP TABLE cellar_kv; --',
  "AND OR NOT",
  "NOT",
  "OR",
  "a AND",
  "^secret",
  "secret^",
  "\\",
  "a\\b",
  "\\'",
  "secret\\",
  "\u0000",
  "a\u0000b",
  '"a\u0000b"',
  "secret\u0000",
  "🎉",
  "🎉 secret",
  "secret 🎉*",
  "👩‍👩‍👧 ﬁle İstanbul",
  ":*",
  "a:*",
  "secret:* & !x",
  "a & b | !c",
  "!!a",
  "a <-> b",
  "'a':*",
  "$1",
  "%",
  "_",
  "(((",
  ")))",
  "-",
  "--",
  "- -a",
  "+secret",
  "e-mail",
  '"e-mail"*',
  "\ud800secret",
  "secret\udfff",
  "\u0301",
  "se\u0301cret",
  "‮terces",
  "x".repeat(1000),
  Array.from({ length: 64 }, (_, i) => `w${i}`).join(" "),
];

/** Parsed queries the language never makes, with text each engine's syntax would misread. */
const RAW: SearchQuery[] = [
  { op: "term", text: '"' },
  { op: "term", text: 'a" OR "b' },
  { op: "term", text: "x*" },
  { op: "term", text: "secret", prefix: true },
  { op: "term", text: "'", prefix: true },
  { op: "term", text: "a'b\\", prefix: true },
  { op: "term", text: "\u0000", prefix: true },
  { op: "phrase", text: "NEAR(a b)" },
  { op: "term", text: "c0:x" },
  { op: "term", text: "')--" },
  { op: "term", text: "\\" },
  { op: "term", text: "a\u0000b" },
  { op: "phrase", text: '"' },
  { op: "term", text: "" },
  {
    op: "and",
    queries: [
      { op: "term", text: "secret" },
      { op: "not", query: { op: "term", text: "'); DELETE FROM cellar_kv; --" } },
    ],
  },
  {
    op: "or",
    queries: [
      { op: "term", text: "!" },
      { op: "term", text: ":*" },
    ],
  },
  // Shapes outside the contract.
  { op: "and", queries: [{ op: "not", query: { op: "term", text: "secret" } }] },
  { op: "not", query: { op: "term", text: "secret" } },
  { op: "and", queries: [] },
  { op: "or", queries: [] },
  { op: "or", queries: [{ op: "not", query: { op: "term", text: "secret" } }] },
];

/** The documents, themselves full of syntax. */
const TEXTS: Record<string, string[]> = {
  plain: ["the secret recipe", "nothing"],
  sql: ["'); DROP TABLE cellar_kv; -- secret", 'a "quoted" NEAR(x y) c0:secret'],
  odd: ["nul\u0000byte secret", "emoji 🎉 and e-mail \\ back\\slash"],
};

describe.each(DRIVERS)("search injection on $name", ({ name, open }) => {
  let opened: OpenDriver;
  let driver: SearchDriver;
  const indexes: {
    id: number;
    tokenizer: SearchTokenizer;
    range: ReturnType<typeof space>["range"];
  }[] = [];

  beforeAll(async () => {
    opened = await open();
    driver = opened.driver;
    for (const [i, tokenizer] of (["word", "stemmed", "trigram"] as const).entries()) {
      const id = i + 1;
      await driver.createSearchIndex({ id, fields: 2, tokenizer, language: "english" });
      const s = space();
      await write(
        driver,
        id,
        s.key,
        Object.fromEntries(Object.entries(TEXTS).map(([key, fields]) => [key, { fields }])),
      );
      indexes.push({ id, tokenizer, range: s.range });
    }
  });
  afterAll(() => opened.close());

  /** Runs a query: its hits' names, or "refused" for INVALID_QUERY; any other error fails. */
  async function attempt(index: number, query: SearchQuery | string) {
    const { id, range } = indexes[index]!;
    try {
      const parsed = typeof query === "string" ? parseSearchQuery(query) : query;
      const hits = await driver.search({
        index: id,
        range,
        query: parsed,
        limit: 10,
        offset: 0,
        now: NOW,
        highlight: { start: "<'\\$1%>", end: "</'\\>" },
      });
      return hits.length;
    } catch (error) {
      if (error instanceof KvError && error.code === "INVALID_QUERY") return "refused";
      throw error;
    }
  }

  /** The tables still answer a plain search, and the engine finds nothing broken. */
  async function assertIntact() {
    for (const { id, range, tokenizer } of indexes) {
      const query = tokenizer === "trigram" ? "recipe" : "secret";
      expect((await find(driver, { index: id, range, query })).names.length).toBeGreaterThan(0);
    }
    const [entries] = await driver.snapshotRead(
      [{ ...indexes[0]!.range, limit: 10, reverse: false }],
      { now: NOW },
    );
    expect(entries).toHaveLength(3);
  }

  it("answers queries made of engine syntax with hits or INVALID_QUERY", async () => {
    for (const [i] of indexes.entries()) {
      for (const query of NASTY) {
        const outcome = await attempt(i, query);
        expect([typeof outcome, query]).toEqual([
          outcome === "refused" ? "string" : "number",
          query,
        ]);
      }
    }
    await assertIntact();
  });

  it("answers parsed queries holding engine syntax the same way", async () => {
    for (const [i] of indexes.entries())
      for (const query of RAW) expect(typeof (await attempt(i, query))).toMatch(/number|string/);
    await assertIntact();
  });

  it("finds the documents full of syntax by their words, and highlights with any markers", async () => {
    const { id, range } = indexes[0]!;
    const { names, hits } = await find(driver, {
      index: id,
      range,
      query: "quoted secret",
      highlight: { start: "<'\\$1%>", end: "</'\\>" },
    });
    expect(names).toEqual(["sql"]);
    expect(hits[0]!.highlights![1]).toContain("<'\\$1%>quoted</'\\>");
    // Text after a U+0000 is indexed too (as after a space).
    expect((await find(driver, { index: id, range, query: "byte" })).names).toEqual(["odd"]);
  });

  it("never throws anything but INVALID_QUERY on random text", async () => {
    const unit = fc.constantFrom(
      ..."abs ec rt*\"'()-:^\\&|!<>{}$%_;,.=+~`@#/\u0000\t".split(""),
      "OR",
      "AND",
      "NOT",
      "NEAR",
      "🎉",
      "é",
      "\ud800",
    );
    await fc.assert(
      fc.asyncProperty(fc.string({ unit, maxLength: 40 }), fc.nat(2), async (text, index) => {
        const outcome = await attempt(index, text);
        expect(typeof outcome).toMatch(/number|string/);
      }),
      { numRuns: name === "postgres" ? 150 : 400 },
    );
    await assertIntact();
  });
});
