/**
 * One search suite, run against every driver with search: documents written through
 * `atomicWrite`, queries parsed by the query language, hits checked for matching, ranking,
 * liveness, filters, paging and highlights.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeKey } from "../../src/codec/key.js";
import { decodeValue, encodeValue } from "../../src/codec/value.js";
import { hasSearch, type SearchTokenizer } from "../../src/contract/index.js";
import { postgresDriver } from "../../src/drivers/postgres/index.js";
import { sqliteDriver } from "../../src/drivers/sqlite/index.js";
import { SCHEMA_VERSION } from "../../src/drivers/sqlite/schema.js";
import {
  DRIVERS,
  dropSchema,
  find,
  NOW,
  type OpenDriver,
  POSTGRES,
  type SearchDriver,
  space,
  write,
} from "./search-harness.js";

describe.each(DRIVERS)("search on $name", ({ open }) => {
  let opened: OpenDriver;
  let driver: SearchDriver;
  let nextIndex = 1;

  beforeAll(async () => {
    opened = await open();
    driver = opened.driver;
  });
  afterAll(() => opened.close());

  /** A new index of this many fields and a key space for its documents. */
  async function index(tokenizer: SearchTokenizer = "word", fields = 1) {
    const id = nextIndex++;
    await driver.createSearchIndex({ id, fields, tokenizer, language: "english" });
    const s = space();
    return { id, ...s };
  }

  it("ranks a short document with the term twice above a long one with it once", async () => {
    const { id, key, range } = await index();
    await write(driver, id, key, {
      long: {
        fields: [
          "a cellar is a room below ground where wine and food keep cool for a long time in the dark",
        ],
      },
      short: { fields: ["cellar cellar door"] },
      none: { fields: ["an attic is a room"] },
    });
    const { names, hits } = await find(driver, { index: id, range, query: "cellar" });
    expect(names).toEqual(["short", "long"]);
    expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score);
    expect(hits[1]!.score).toBeGreaterThan(0);
    expect(decodeValue(hits[0]!.entry.value)).toEqual({ fields: ["cellar cellar door"] });
  });

  it("finds phrases only with their words adjacent, in order, in one field", async () => {
    const { id, key, range } = await index("word", 2);
    await write(driver, id, key, {
      adjacent: { fields: ["a key value store", ""] },
      reversed: { fields: ["the value of a key", ""] },
      apart: { fields: ["a key to the value", ""] },
      split: { fields: ["the last key", "value first"] },
    });
    expect((await find(driver, { index: id, range, query: '"key value"' })).names).toEqual([
      "adjacent",
    ]);
    expect((await find(driver, { index: id, range, query: "key value" })).names.sort()).toEqual([
      "adjacent",
      "apart",
      "reversed",
      "split",
    ]);
  });

  it("finds prefixes, exclusions and alternatives", async () => {
    const { id, key, range } = await index();
    await write(driver, id, key, {
      db: { fields: ["database systems"] },
      data: { fields: ["data lakes and a store"] },
      draft: { fields: ["a draft about the store"] },
      sqlite: { fields: ["sqlite store"] },
      postgres: { fields: ["postgres store"] },
    });
    const names = async (query: string) =>
      (await find(driver, { index: id, range, query })).names.sort();
    expect(await names("data*")).toEqual(["data", "db"]);
    expect(await names("data")).toEqual(["data"]);
    expect(await names("store -draft")).toEqual(["data", "postgres", "sqlite"]);
    expect(await names('store -"a draft"')).toEqual(["data", "postgres", "sqlite"]);
    expect(await names("sqlite OR postgres")).toEqual(["postgres", "sqlite"]);
    expect(await names("store sqlite OR postgres")).toEqual(["postgres", "sqlite"]);
    expect(await names("store (sqlite OR draft) -about")).toEqual(["sqlite"]);
    expect(await names("-(data lakes) store")).toEqual(["draft", "postgres", "sqlite"]);
  });

  it("folds case and diacritics", async () => {
    const { id, key, range } = await index();
    await write(driver, id, key, {
      accented: { fields: ["Le Café de la Gare"] },
      plain: { fields: ["a CAFE in town"] },
    });
    const names = async (query: string) =>
      (await find(driver, { index: id, range, query })).names.sort();
    expect(await names("cafe")).toEqual(["accented", "plain"]);
    expect(await names("café")).toEqual(["accented", "plain"]);
    expect(await names("GARE")).toEqual(["accented"]);
  });

  it("stems English words in a stemmed index, and not in a word index", async () => {
    const stemmed = await index("stemmed");
    const word = await index("word");
    const docs = {
      run: { fields: ["I run every day"] },
      running: { fields: ["running shoes"] },
      runner: { fields: ["a runner"] },
    };
    await write(driver, stemmed.id, stemmed.key, docs);
    await write(driver, word.id, word.key, docs);
    const names = async (target: typeof word, query: string) =>
      (await find(driver, { index: target.id, range: target.range, query })).names.sort();
    expect(await names(stemmed, "running")).toEqual(["run", "running"]);
    expect(await names(stemmed, "runs")).toEqual(["run", "running"]);
    expect(await names(word, "running")).toEqual(["running"]);
  });

  it("finds substrings and words with a typo in a trigram index", async () => {
    const { id, key, range } = await index("trigram");
    await write(driver, id, key, {
      cellar: { fields: ["Cellar is a database"] },
      cafe: { fields: ["Un café crème"] },
      other: { fields: ["nothing to see"] },
    });
    const names = async (query: string) => (await find(driver, { index: id, range, query })).names;
    expect(await names("ellar")).toEqual(["cellar"]);
    expect(await names("databse")).toEqual(["cellar"]);
    expect((await names("cellr"))[0]).toBe("cellar");
    expect(await names("creme")).toEqual(["cafe"]);
    expect(await names('"is a data"')).toEqual(["cellar"]);
    expect(await names('"is data"')).toEqual([]);
    expect(await names("data -cellar")).toEqual([]);
    await expect(find(driver, { index: id, range, query: "db" })).rejects.toMatchObject({
      code: "INVALID_QUERY",
      message: expect.stringContaining('"db"'),
    });
  });

  it("keeps to the range, the where filter, and the page", async () => {
    const { id, key, range } = await index();
    const docs: Record<string, { fields: string[]; value: unknown }> = {};
    for (let i = 0; i < 10; i++) {
      docs[`k${i}`] = { fields: [`item ${words(i)}`], value: { n: i, even: i % 2 === 0 } };
    }
    await write(driver, id, key, docs);
    const all = await find(driver, { index: id, range, query: "item" });
    // Shorter documents rank first (MiniSearch measures a field by its distinct words).
    expect(all.names).toEqual(Array.from({ length: 10 }, (_, i) => `k${i}`));
    const page = await find(driver, { index: id, range, query: "item", limit: 3, offset: 2 });
    expect(page.names).toEqual(["k2", "k3", "k4"]);
    const where = await find(driver, {
      index: id,
      range,
      query: "item",
      where: { op: "eq", path: ["even"], value: true },
      limit: 2,
      offset: 1,
    });
    expect(where.names).toEqual(["k2", "k4"]);
    const narrow = await find(driver, {
      index: id,
      range: { start: key("k3"), end: key("k6") },
      query: "item",
    });
    expect(narrow.names).toEqual(["k3", "k4", "k5"]);
    const meta = await find(driver, { index: id, range, query: "item", limit: 1, metadata: true });
    expect(meta.hits[0]!.entry.meta?.version).toBe(1);
  });

  it("filters values SQL cannot read, and still fills the page", async () => {
    const { id, key, range } = await index();
    const docs: Record<string, { fields: string[]; value: unknown }> = {};
    // A bigint makes each value V8-encoded: the engines hand every one to rawMatches.
    for (let i = 0; i < 12; i++) {
      docs[`k${i}`] = { fields: [`item ${words(i)}`], value: { n: BigInt(i), odd: i % 2 } };
    }
    await write(driver, id, key, docs);
    const { names } = await find(driver, {
      index: id,
      range,
      query: "item",
      where: { op: "eq", path: ["odd"], value: 1 },
      limit: 3,
      offset: 1,
    });
    expect(names).toEqual(["k3", "k5", "k7"]);
  });

  it("commits the other writes of a group when one's document is refused", async () => {
    const { id, key, range } = await index("word", 2);
    const results = await Promise.allSettled([
      write(driver, id, key, { a: { fields: ["grouped one", ""] } }),
      write(driver, id, key, { b: { fields: ["grouped two"] } }),
      write(driver, id, key, { c: { fields: ["grouped three", ""] } }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((await find(driver, { index: id, range, query: "grouped" })).names.sort()).toEqual([
      "a",
      "c",
    ]);
  });

  it("keeps documents exact when a sweep and writes of the same key share a group", async () => {
    const { id, key, range } = await index();
    await write(driver, id, key, { k: { fields: ["alpha"], expiresAt: NOW + 1000 } });
    const later = NOW + 2000;
    // Swept, then written again with a new document.
    await Promise.all([
      driver.deleteExpired(later, 100),
      write(driver, id, key, { k: { fields: ["beta"] } }, { now: later }),
    ]);
    const names = async (query: string, now = later) =>
      (await find(driver, { index: id, range, query, now })).names;
    expect(await names("alpha")).toEqual([]);
    expect(await names("beta")).toEqual(["k"]);
    // Stored expired; written again with a document and an expiry, then swept with it.
    await write(driver, id, key, { j: { fields: ["delta"], expiresAt: NOW + 1000 } });
    await Promise.all([
      write(
        driver,
        id,
        key,
        { j: { fields: ["gamma"], expiresAt: NOW + 1500 } },
        { now: NOW + 1200 },
      ),
      driver.deleteExpired(later, 100),
    ]);
    await driver.atomicWrite({
      checks: [],
      mutations: [{ type: "set", key: key("j"), value: encodeValue(4), expiresAt: null }],
      now: later,
    });
    expect(await names("gamma OR delta")).toEqual([]);
  });

  it("ranks equal scores by key", async () => {
    const { id, key, range } = await index();
    await write(driver, id, key, {
      b: { fields: ["same text"] },
      c: { fields: ["same text"] },
      a: { fields: ["same text"] },
    });
    expect((await find(driver, { index: id, range, query: "same" })).names).toEqual([
      "a",
      "b",
      "c",
    ]);
  });

  it("writes no document for a write whose check fails, alone or in a group", async () => {
    const { id, key, range } = await index();
    const failed = await write(
      driver,
      id,
      key,
      { lost: { fields: ["ghost text"] } },
      { checks: [{ key: key("lost"), versionstamp: "00000000000000010000" }] },
    );
    expect(failed).toBeNull();
    const group = await Promise.all([
      write(driver, id, key, { first: { fields: ["ghost one"] } }),
      write(
        driver,
        id,
        key,
        { second: { fields: ["ghost two"] } },
        { checks: [{ key: key("first"), versionstamp: null }] },
      ),
      write(driver, id, key, { third: { fields: ["ghost three"] } }),
    ]);
    expect(group.map((result) => result !== null)).toEqual([true, false, true]);
    // The entry of "second" appears later without a document: none may be found for it.
    await driver.atomicWrite({
      checks: [],
      mutations: [{ type: "set", key: key("second"), value: encodeValue(1), expiresAt: null }],
      now: NOW,
    });
    expect((await find(driver, { index: id, range, query: "ghost" })).names.sort()).toEqual([
      "first",
      "third",
    ]);
  });

  it("replaces a key's document on each write and removes it with null", async () => {
    const { id, key, range } = await index();
    await write(driver, id, key, { a: { fields: ["old words"] } });
    await write(driver, id, key, { a: { fields: ["new words"] } });
    const names = async (query: string) => (await find(driver, { index: id, range, query })).names;
    expect(await names("old")).toEqual([]);
    expect(await names("new")).toEqual(["a"]);
    await write(driver, id, key, { a: { fields: null, value: "no text any more" } });
    expect(await names("words")).toEqual([]);
  });

  it("hides expired entries' documents and removes them when swept", async () => {
    const { id, key, range } = await index();
    await write(driver, id, key, {
      brief: { fields: ["ephemeral note"], expiresAt: NOW + 1000 },
      lasting: { fields: ["ephemeral forever"] },
    });
    const names = async (now: number) =>
      (await find(driver, { index: id, range, query: "ephemeral", now })).names.sort();
    expect(await names(NOW)).toEqual(["brief", "lasting"]);
    expect(await names(NOW + 1000)).toEqual(["lasting"]);
    expect(await driver.deleteExpired(NOW + 1000, 100)).toBeGreaterThanOrEqual(1);
    // A new entry under the swept key finds no document left behind.
    await driver.atomicWrite({
      checks: [],
      mutations: [{ type: "set", key: key("brief"), value: encodeValue(2), expiresAt: null }],
      now: NOW + 2000,
    });
    expect(await names(NOW + 2000)).toEqual(["lasting"]);
  });

  it("removes purged keys' documents", async () => {
    const { id, key, range, prefix } = await index();
    await write(driver, id, key, { a: { fields: ["purged text"] }, b: { fields: ["purged too"] } });
    await driver.purge(prefix, NOW);
    await driver.atomicWrite({
      checks: [],
      mutations: [{ type: "set", key: key("a"), value: encodeValue(3), expiresAt: null }],
      now: NOW,
    });
    expect((await find(driver, { index: id, range, query: "purged" })).names).toEqual([]);
  });

  it("highlights matches in each field, and gives null for a field without one", async () => {
    const { id, key, range } = await index("word", 3);
    const long = `${"filler ".repeat(40)}the quick fox ${"tail ".repeat(40)}`;
    await write(driver, id, key, {
      a: { fields: ["The Quick brown fox", "nothing here", long] },
    });
    const { hits } = await find(driver, {
      index: id,
      range,
      query: "quick -slow",
      highlight: { start: "<b>", end: "</b>" },
    });
    const [first, second, third] = hits[0]!.highlights!;
    expect(first).toContain("<b>Quick</b>");
    expect(second).toBeNull();
    expect(third).toContain("<b>quick</b>");
    expect(third!.length).toBeLessThan(long.length);
    const plain = await find(driver, { index: id, range, query: "quick" });
    expect(plain.hits[0]!.highlights).toBeUndefined();
  });

  it("highlights trigram matches", async () => {
    const { id, key, range } = await index("trigram", 2);
    await write(driver, id, key, { a: { fields: ["the cellar door", "attic"] } });
    const { hits } = await find(driver, {
      index: id,
      range,
      query: "cellar",
      highlight: { start: "[", end: "]" },
    });
    expect(hits[0]!.highlights).toEqual(["the [cellar] door", null]);
  });

  it("creates indexes idempotently, refuses another spec under an id, and drops them", async () => {
    const { id, key, range } = await index("word", 2);
    const spec = { id, fields: 2, tokenizer: "word" as const, language: "english" };
    await driver.createSearchIndex(spec);
    await expect(driver.createSearchIndex({ ...spec, fields: 3 })).rejects.toMatchObject({
      code: "ALREADY_EXISTS",
    });
    await write(driver, id, key, { a: { fields: ["dropped words", ""] } });
    await driver.dropSearchIndex(id);
    await driver.dropSearchIndex(id);
    await expect(find(driver, { index: id, range, query: "dropped" })).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    // A write still carrying documents of a dropped index commits; they are ignored.
    expect(await write(driver, id, key, { b: { fields: ["late", ""] } })).not.toBeNull();
    await driver.createSearchIndex(spec);
    expect((await find(driver, { index: id, range, query: "dropped OR late" })).names).toEqual([]);
  });

  it("refuses documents with the wrong number of fields, writing nothing", async () => {
    const { id, key, range } = await index("word", 2);
    await expect(write(driver, id, key, { a: { fields: ["one field"] } })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    const [entries] = await driver.snapshotRead([{ ...range, limit: 10, reverse: false }], {
      now: NOW,
    });
    expect(entries).toEqual([]);
  });
});

describe("SQLite files of schema 2", () => {
  it("gain the catalog of search indexes when opened, and keep their data", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cellar-search-schema-"));
    const path = join(dir, "old.db");
    try {
      const first = sqliteDriver(path);
      const key = encodeKey(["old"]);
      await first.atomicWrite({
        checks: [],
        mutations: [{ type: "set", key, value: encodeValue("old text"), expiresAt: null }],
        now: NOW,
      });
      await first.close();
      // What schema 2 wrote: no catalog of search indexes.
      const raw = new Database(path);
      raw.exec(`DROP TABLE cellar_search; UPDATE cellar_meta SET value = 2 WHERE name = 'schema'`);
      raw.close();

      const again = sqliteDriver(path);
      if (!hasSearch(again)) throw new Error("the SQLite driver has search");
      const [entries] = await again.snapshotRead(
        [{ start: key, end: encodeKey(["old", 0]), limit: 1, reverse: false }],
        { now: NOW },
      );
      expect(entries!.map((e) => decodeValue(e.value))).toEqual(["old text"]);
      await again.createSearchIndex({ id: 1, fields: 1, tokenizer: "word", language: "english" });
      await write(again, 1, () => key, { old: { fields: ["old text"] } });
      const s = { start: encodeKey([]), end: Uint8Array.of(0xff) };
      expect((await find(again, { index: 1, range: s, query: "text" })).names).toEqual(["old"]);
      await again.close();
      const check = new Database(path, { readonly: true });
      const schema = check.prepare("SELECT value FROM cellar_meta WHERE name = 'schema'").pluck();
      expect(schema.get()).toBe(SCHEMA_VERSION);
      check.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("PostgreSQL schemas of version 3", () => {
  it("gain the search tables when opened, and keep their data", async () => {
    const schema = `cellar_search_v3_${process.pid}`;
    const url = `${POSTGRES}?schema=${schema}`;
    try {
      const first = await postgresDriver(url);
      const key = encodeKey(["old"]);
      await first.atomicWrite({
        checks: [],
        mutations: [{ type: "set", key, value: encodeValue("old text"), expiresAt: null }],
        now: NOW,
      });
      await first.close();
      // What version 3 had: no search tables, and three migrations applied.
      const client = new pg.Client({ connectionString: POSTGRES });
      await client.connect();
      await client.query(`DROP TABLE "${schema}".cellar_search_docs, "${schema}".cellar_search_indexes;
        DROP FUNCTION "${schema}".cellar_search_tsv;
        DELETE FROM "${schema}".cellar_migrations WHERE version > 3`);
      await client.end();

      const again = await postgresDriver(url);
      if (!hasSearch(again)) throw new Error("the PostgreSQL driver has search");
      await again.createSearchIndex({
        id: 1,
        fields: 1,
        tokenizer: "stemmed",
        language: "english",
      });
      await write(again, 1, () => key, { old: { fields: ["old texts"] } });
      const range = { start: encodeKey([]), end: Uint8Array.of(0xff) };
      expect((await find(again, { index: 1, range, query: "text" })).names).toEqual(["old"]);
      await again.close();
    } finally {
      await dropSchema(schema);
    }
  });
});

/** `n` distinct filler words. */
function words(n: number): string {
  return Array.from({ length: n }, (_, i) => `w${i}`).join(" ");
}
