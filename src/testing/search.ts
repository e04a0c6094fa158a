import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Kv, KvKey } from "../index.js";
import { errorCode as code, type KvTarget } from "./context.js";

const POSTS: [
  number,
  { title: string; body: string; tags?: string[]; year: number; draft?: boolean },
][] = [
  [
    1,
    {
      title: "SQLite in production",
      body: "The write ahead log keeps readers and the writer apart.",
      year: 2021,
    },
  ],
  [
    2,
    {
      title: "Running PostgreSQL",
      body: "Vacuum, indexes and the write ahead log, explained.",
      year: 2022,
    },
  ],
  [
    3,
    {
      title: "Café culture",
      body: "Notes on coffee and crème brûlée in Paris.",
      tags: ["travel", "food"],
      year: 2020,
    },
  ],
  [
    4,
    {
      title: "Log structured storage",
      body: "Why log structured merge trees love writes. Logs, logs, logs.",
      year: 2023,
      draft: true,
    },
  ],
  [5, { title: "A runner's diary", body: "I run every morning; runs get easier.", year: 2019 }],
];

const ids = (hits: readonly { key: KvKey }[]) => hits.map((h) => h.key.at(-1));

export function searchSuite(target: KvTarget): void {
  describe("full-text search", () => {
    let kv: Kv;
    beforeEach(async () => {
      kv = await target.open();
      for (const [id, post] of POSTS) await kv.set(["posts", id], post);
      await kv.set(["notes", 1], { title: "write ahead log outside the index", body: "" });
      await kv.createSearchIndex("posts", { prefix: ["posts"], fields: ["title", "body", "tags"] });
    });
    afterEach(async () => {
      await kv.close();
    });

    const search = async (query: string, options: Parameters<Kv["search"]>[2] = {}) =>
      ids((await kv.search("posts", query, options)).hits);

    it("finds the entries under its prefix that match every word, best first", async () => {
      expect(new Set(await search("write ahead log"))).toEqual(new Set([1, 2]));
      expect((await search("logs"))[0]).toBe(4);
      const { hits } = await kv.search("posts", "log");
      expect(hits.length).toBeGreaterThan(0);
      for (let i = 1; i < hits.length; i++)
        expect(hits[i - 1]!.score).toBeGreaterThanOrEqual(hits[i]!.score);
      expect(hits.every((h) => typeof h.versionstamp === "string" && h.value !== null)).toBe(true);
    });

    it("reads phrases, prefixes, exclusions and OR", async () => {
      expect(await search('"ahead log"')).toEqual(expect.arrayContaining([1, 2]));
      expect(await search('"log ahead"')).toEqual([]);
      expect(new Set(await search("postgre*"))).toEqual(new Set([2]));
      expect(new Set(await search("write -vacuum"))).toEqual(new Set([1]));
      expect(new Set(await search("coffee OR vacuum"))).toEqual(new Set([2, 3]));
      expect(new Set(await search("travel"))).toEqual(new Set([3]));
    });

    it("folds case and diacritics", async () => {
      expect(await search("cafe")).toEqual([3]);
      expect(await search("CRÈME brulee")).toEqual([3]);
    });

    it("filters hits by value with where, and pages with a cursor", async () => {
      expect(new Set(await search("log", { where: { year: { $gte: 2022 } } }))).toEqual(
        new Set([2, 4]),
      );
      expect(await search("log", { where: { draft: true } })).toEqual([4]);
      const all = await search("log OR run* OR coffee");
      const seen: unknown[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await kv.search("posts", "log OR run* OR coffee", {
          limit: 2,
          ...(cursor && { cursor }),
        });
        seen.push(...ids(page.hits));
        if (!page.cursor) break;
        cursor = page.cursor;
      }
      expect(seen).toEqual(all);
      expect(all.length).toBe(5);
    });

    it("highlights matches per field", async () => {
      const { hits } = await kv.search("posts", "coffee", { highlight: true });
      const highlights = hits[0]!.highlights!;
      expect(highlights.body).toContain("<mark>coffee</mark>");
      expect(highlights.title).toBeNull();
      const custom = await kv.search("posts", "coffee", { highlight: { start: "[", end: "]" } });
      expect(custom.hits[0]!.highlights!.body).toContain("[coffee]");
    });

    it("is kept in the commit of every write, and hides expired entries", async () => {
      await kv.set(["posts", 1], { title: "Renamed", body: "nothing about databases", year: 2021 });
      expect(new Set(await search("ahead"))).toEqual(new Set([2]));
      await kv.delete(["posts", 2]);
      expect(await search("ahead")).toEqual([]);
      await kv
        .atomic()
        .set(["posts", 6], { title: "Ahead of time", body: "", year: 2024 })
        .commit();
      expect(await search("ahead")).toEqual([6]);
      await kv.set(
        ["posts", 7],
        { title: "ephemeral ahead", body: "", year: 2024 },
        { expireIn: 50 },
      );
      expect(new Set(await search("ahead"))).toEqual(new Set([6, 7]));
      await new Promise((resolve) => setTimeout(resolve, 80));
      expect(await search("ahead")).toEqual([6]);
      await kv.sweepExpired();
      expect(await search("ahead")).toEqual([6]);
    });

    it("indexes entries written before it was created, stems and matches trigrams when asked", async () => {
      await kv.createSearchIndex("stems", {
        prefix: ["posts"],
        fields: ["body"],
        tokenizer: "stemmed",
      });
      expect(new Set(ids((await kv.search("stems", "running")).hits))).toEqual(new Set([5]));
      await kv.createSearchIndex("grams", {
        prefix: ["posts"],
        fields: ["title"],
        tokenizer: "trigram",
      });
      expect(ids((await kv.search("grams", "gresql")).hits)[0]).toBe(2);
      expect(ids((await kv.search("grams", "Postgrsql")).hits)[0]).toBe(2);
      const names = (await kv.listSearchIndexes()).map((s) => [s.name, s.tokenizer, s.state]);
      expect(names).toEqual([
        ["posts", "word", "ready"],
        ["stems", "stemmed", "ready"],
        ["grams", "trigram", "ready"],
      ]);
    });

    it("lives in its namespace, and goes with it", async () => {
      const a = kv.namespace("tenant-a");
      await a.set(["posts", 1], { title: "tenant write ahead", body: "" });
      await a.createSearchIndex("posts", { prefix: ["posts"], fields: ["title"] });
      expect(ids((await a.search("posts", "ahead")).hits)).toEqual([1]);
      expect(new Set(await search("tenant OR ahead"))).toEqual(new Set([1, 2]));
      await kv.dropNamespace("tenant-a");
      expect(await a.listSearchIndexes()).toEqual([]);
      expect(await code(a.search("posts", "ahead"))).toBe("NOT_FOUND");
    });

    it("refuses bad queries and names with clear errors, and drops an index", async () => {
      expect(await code(kv.search("posts", ""))).toBe("INVALID_QUERY");
      expect(await code(kv.search("posts", "-only -exclusions"))).toBe("INVALID_QUERY");
      expect(await code(kv.search("posts", "x".repeat(2000)))).toBe("INVALID_QUERY");
      expect(await code(kv.search("missing", "log"))).toBe("NOT_FOUND");
      expect(await code(kv.search("posts", "log", { limit: 0 }))).toBe("INVALID_ARGUMENT");
      expect(await code(kv.search("posts", "log", { cursor: "%%%" }))).toBe("INVALID_CURSOR");
      expect(await code(kv.search("posts", "log", { highlight: { start: "a,b", end: "" } }))).toBe(
        "INVALID_ARGUMENT",
      );
      expect(
        await code(kv.createSearchIndex("posts", { prefix: ["posts"], fields: ["title"] })),
      ).toBe("ALREADY_EXISTS");
      expect(
        await code(
          kv.createSearchIndex("x", { prefix: [], fields: ["a"], tokenizer: "soundex" as never }),
        ),
      ).toBe("INVALID_ARGUMENT");
      for (const query of [
        '"',
        "*",
        "NEAR(a b)",
        "title:log",
        "') OR 1=1 --",
        "AND OR NOT",
        "^log",
      ]) {
        const outcome = await code(kv.search("posts", query));
        expect(["none", "INVALID_QUERY"], query).toContain(outcome);
      }
      await kv.dropSearchIndex("posts");
      expect(await code(kv.search("posts", "log"))).toBe("NOT_FOUND");
      expect(await code(kv.dropSearchIndex("posts"))).toBe("NOT_FOUND");
    });
  });
}
