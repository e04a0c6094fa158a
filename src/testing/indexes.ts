import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Kv, KvKey } from "../index.js";
import { errorCode as code, collect, type KvTarget } from "./context.js";

const CITIES = ["Oslo", "Paris", "Lima", "Kyoto"];

/** 60 users: age cycles 20..29, city cycles through four, email unique. */
const user = (i: number) => ({
  name: `user ${i}`,
  age: 20 + (i % 10),
  city: CITIES[i % 4],
  email: `u${i}@example.com`,
  ...(i % 7 === 0 && { nickname: null }),
});

const ids = (entries: { key: KvKey }[]) => entries.map((e) => e.key.at(-1));

export function indexSuite(target: KvTarget): void {
  describe("secondary indexes", () => {
    let kv: Kv;
    beforeEach(async () => {
      kv = await target.open();
      const op = kv.atomic();
      for (let i = 0; i < 60; i++) op.set(["users", i], user(i));
      op.set(["other", 1], { age: 21 });
      await op.commit();
    });
    afterEach(async () => {
      await kv.close();
    });

    const select = async (
      where: Record<string, unknown>,
      options: { limit?: number; reverse?: boolean } = {},
    ) => ids(await collect(kv.list({ prefix: ["users"] }, { where, ...options })));

    it("answers where filters exactly as a scan does, and says so in explain()", async () => {
      const filters: Record<string, unknown>[] = [
        { age: 23 },
        { age: { $in: [21, 29, 40] } },
        { age: { $gte: 27 } },
        { age: { $gt: 22, $lte: 24 } },
        { age: { $between: [25, 26] } },
        { age: { $lt: 21 }, name: { $endsWith: "0" } },
        { city: "Paris", age: 21 },
        { city: { $in: ["Lima", "Kyoto"] }, age: { $gte: 28 } },
        { $and: [{ city: "Oslo" }, { age: { $ne: 24 } }] },
        { age: "23" },
      ];
      const scanned = [];
      for (const where of filters) scanned.push(await select(where));
      for (const where of filters) scanned.push(await select(where, { limit: 3, reverse: true }));
      await kv.createIndex("byAge", { prefix: ["users"], fields: ["age"] });
      await kv.createIndex("byCityAge", { prefix: ["users"], fields: ["city", "age"] });
      const indexed = [];
      for (const where of filters) indexed.push(await select(where));
      for (const where of filters) indexed.push(await select(where, { limit: 3, reverse: true }));
      expect(indexed).toEqual(scanned);
      for (const [i, where] of filters.entries())
        expect(await kv.count({ prefix: ["users"] }, { where })).toBe(scanned[i]!.length);
      expect(scanned[0]).toEqual([3, 13, 23, 33, 43, 53]);
      expect((await kv.explain({ prefix: ["users"] }, { where: { age: 23 } })).index).toBe("byAge");
      expect(
        (await kv.explain({ prefix: ["users"] }, { where: { city: "Paris", age: 21 } })).index,
      ).toBe("byCityAge");
      expect((await kv.explain({ prefix: ["users"] }, { where: { name: "x" } })).index).toBeNull();
      expect((await kv.explain({ prefix: ["other"] }, { where: { age: 21 } })).index).toBeNull();
    });

    it("keeps pages full through an index: limit counts matches, cursors resume after the last", async () => {
      await kv.createIndex("byCity", { prefix: ["users"], fields: ["city"] });
      const seen: unknown[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await kv.paginate(
          { prefix: ["users"] },
          { where: { city: "Lima" }, limit: 4, ...(cursor && { cursor }) },
        );
        seen.push(...ids(page.entries));
        if (!page.cursor) break;
        expect(page.entries).toHaveLength(4);
        cursor = page.cursor;
      }
      expect(seen).toEqual([2, 6, 10, 14, 18, 22, 26, 30, 34, 38, 42, 46, 50, 54, 58]);
    });

    it("is kept in the commit of every write: set, delete, atomic, transaction, expiry", async () => {
      await kv.createIndex("byAge", { prefix: ["users"], fields: ["age"] });
      await kv.set(["users", 3], { ...user(3), age: 99 });
      await kv.delete(["users", 13]);
      await kv
        .atomic()
        .set(["users", 100], { age: 23 })
        .set(["users", 23], { ...user(23), age: 98 })
        .commit();
      await kv.transaction(async (tx) => {
        const entry = await tx.get<{ age: number }>(["users", 33]);
        tx.set(["users", 33], { ...entry.value, age: 97 });
      });
      await kv.set(["users", 101], { age: 23 }, { expireIn: 50 });
      expect(await select({ age: 23 })).toEqual([43, 53, 100, 101]);
      await new Promise((resolve) => setTimeout(resolve, 80));
      expect(await select({ age: 23 })).toEqual([43, 53, 100]);
      expect(await select({ age: { $gte: 97 } })).toEqual([3, 23, 33]);
      await kv.sweepExpired();
      expect(await select({ age: 23 })).toEqual([43, 53, 100]);
    });

    it("indexes versionstamped keys under its prefix", async () => {
      await kv.createIndex("byAge", { prefix: ["users"], fields: ["age"] });
      await kv.atomic().set(["users", kv.commitVersionstamp()], { age: 55 }).commit();
      const found = await collect(kv.list({ prefix: ["users"] }, { where: { age: 55 } }));
      expect(found).toHaveLength(1);
      expect(typeof found[0]!.key[1]).toBe("string");
      const walked = await collect(kv.list({ index: "byAge", prefix: [55] }));
      expect(walked.map((e) => e.key)).toEqual(found.map((e) => e.key));
    });

    it("walks an index in the order of its values with list({ index })", async () => {
      await kv.createIndex("byAge", { prefix: ["users"], fields: ["age"] });
      const walked = await collect(kv.list<{ age: number }>({ index: "byAge", start: [27] }));
      expect(walked.map((e) => e.value.age)).toEqual([
        ...Array(6).fill(27),
        ...Array(6).fill(28),
        ...Array(6).fill(29),
      ]);
      expect(ids(walked.slice(0, 6))).toEqual([7, 17, 27, 37, 47, 57]);
      const band = await collect(
        kv.list({ index: "byAge", start: [21], end: [23] }, { reverse: true }),
      );
      expect(ids(band)).toEqual([52, 42, 32, 22, 12, 2, 51, 41, 31, 21, 11, 1]);
      const exact = await collect(
        kv.list({ index: "byAge", prefix: [25] }, { where: { city: "Paris" } }),
      );
      expect(ids(exact)).toEqual([5, 25, 45]);
      // Cursor paging through a walk.
      const first = kv.list({ index: "byAge", prefix: [20] }, { limit: 4 });
      const page1 = ids(await collect(first));
      const page2 = ids(
        await collect(kv.list({ index: "byAge", prefix: [20] }, { cursor: first.cursor })),
      );
      expect([...page1, ...page2]).toEqual([0, 10, 20, 30, 40, 50]);
      expect(await code(collect(kv.list({ index: "nope" })))).toBe("NOT_FOUND");
    });

    it("refuses a write that breaks a unique index, writing nothing", async () => {
      await kv.createIndex("byEmail", { prefix: ["users"], fields: ["email"], unique: true });
      expect(await code(kv.set(["users", 200], { email: "u5@example.com" }))).toBe(
        "UNIQUE_VIOLATION",
      );
      expect((await kv.get(["users", 200])).versionstamp).toBeNull();
      const atomic = kv
        .atomic()
        .set(["users", 201], { email: "new@example.com" })
        .set(["users", 202], {
          email: "new@example.com",
        });
      expect(await code(atomic.commit())).toBe("UNIQUE_VIOLATION");
      expect((await kv.get(["users", 201])).versionstamp).toBeNull();
      // Swapping two values in one commit is fine; so is rewriting an entry with its own value.
      await kv
        .atomic()
        .set(["users", 1], { ...user(1), email: "u2@example.com" })
        .set(["users", 2], { ...user(2), email: "u1@example.com" })
        .commit();
      await kv.set(["users", 1], { ...user(1), email: "u2@example.com", name: "renamed" });
      // A value freed by a delete can be taken; missing and null values are not unique.
      await kv.delete(["users", 5]);
      await kv.set(["users", 300], { email: "u5@example.com" });
      await kv.set(["users", 301], { email: null });
      await kv.set(["users", 302], { email: null });
      await kv.set(["users", 303], {});
      await kv.set(["users", 304], {});
      // A failed check wins over a unique violation, as over any other failure.
      const stale = await kv
        .atomic()
        .check({ key: ["users", 6], versionstamp: null })
        .set(["users", 305], { email: "u7@example.com" })
        .commit();
      expect(stale.ok).toBe(false);
    });

    it("fails to create a unique index over duplicates, and leaves no index behind", async () => {
      expect(
        await code(kv.createIndex("byCity", { prefix: ["users"], fields: ["city"], unique: true })),
      ).toBe("UNIQUE_VIOLATION");
      expect(await kv.listIndexes()).toEqual([]);
      expect(
        (await kv.explain({ prefix: ["users"] }, { where: { city: "Oslo" } })).index,
      ).toBeNull();
    });

    it("backfills existing entries with progress while writers go on", async () => {
      const op = kv.atomic();
      for (let i = 60; i < 900; i++) op.set(["users", i], user(i));
      await op.commit();
      const progress: number[] = [];
      const creating = kv.createIndex("byAge", {
        prefix: ["users"],
        fields: ["age"],
        onProgress: (p) => progress.push(p.indexed),
      });
      const writes = [];
      for (let i = 0; i < 100; i++)
        writes.push(kv.set(["users", i * 9], { ...user(i * 9), age: 1000 + (i % 3) }));
      await Promise.all([creating, ...writes]);
      expect(progress.at(-1)).toBe(900);
      expect(progress.length).toBeGreaterThan(0);
      const info = await kv.listIndexes();
      expect(info.map((i) => [i.name, i.state])).toEqual([["byAge", "ready"]]);
      expect((await kv.explain({ prefix: ["users"] }, { where: { age: 1001 } })).index).toBe(
        "byAge",
      );
      const viaIndex = await select({ age: { $gte: 1000 } });
      const walked = ids(await collect(kv.list({ index: "byAge", start: [1000] })));
      expect(viaIndex).toHaveLength(100);
      expect([...walked].sort((a, b) => Number(a) - Number(b))).toEqual(viaIndex);
      for (const age of [20, 25, 29])
        expect((await select({ age })).length).toBe(
          (await collect(kv.list({ prefix: ["users"] }))).filter(
            (e) => (e.value as { age: number }).age === age,
          ).length,
        );
    });

    it("lives in its namespace, and goes with it", async () => {
      const a = kv.namespace("tenant-a");
      const b = kv.namespace("tenant-b");
      await a.set(["users", 1], { age: 40 });
      await b.set(["users", 1], { age: 40 });
      await a.createIndex("byAge", { prefix: ["users"], fields: ["age"] });
      expect((await b.listIndexes()).length).toBe(0);
      expect(await kv.listIndexes()).toEqual([]);
      expect((await a.explain({ prefix: ["users"] }, { where: { age: 40 } })).index).toBe("byAge");
      await kv.dropNamespace("tenant-a");
      expect(await a.listIndexes()).toEqual([]);
      await a.set(["users", 2], { age: 40 });
      expect(ids(await collect(a.list({ prefix: ["users"] }, { where: { age: 40 } })))).toEqual([
        2,
      ]);
    });

    it("drops an index: lists scan again, the name is free", async () => {
      await kv.createIndex("byAge", { prefix: ["users"], fields: ["age"] });
      await kv.dropIndex("byAge");
      expect(await kv.listIndexes()).toEqual([]);
      expect((await kv.explain({ prefix: ["users"] }, { where: { age: 23 } })).index).toBeNull();
      expect(await select({ age: 23 })).toEqual([3, 13, 23, 33, 43, 53]);
      await kv.createIndex("byAge", { prefix: ["users"], fields: ["city"] });
      expect(
        ids(await collect(kv.list({ index: "byAge", prefix: ["Kyoto"] }, { limit: 2 }))),
      ).toEqual([3, 7]);
    });

    it("refuses bad definitions with clear errors", async () => {
      const bad: [string, unknown][] = [
        ["", { prefix: [], fields: ["a"] }],
        ["has space", { prefix: [], fields: ["a"] }],
        ["ok", { prefix: "users", fields: ["a"] }],
        ["ok", { prefix: [], fields: [] }],
        ["ok", { prefix: [], fields: ["a..b"] }],
        ["ok", { prefix: [], fields: ["a", "a"] }],
        ["ok", { prefix: [], fields: ["a"], unique: "yes" }],
        ["ok", { prefix: [], fields: ["a"], colour: "red" }],
        ["ok", { prefix: [{}], fields: ["a"] }],
      ];
      for (const [name, options] of bad) {
        expect(
          await code(kv.createIndex(name, options as never)),
          JSON.stringify([name, options]),
        ).toBe("INVALID_ARGUMENT");
      }
      await kv.createIndex("byAge", { prefix: ["users"], fields: ["age"] });
      expect(await code(kv.createIndex("byAge", { prefix: ["users"], fields: ["city"] }))).toBe(
        "ALREADY_EXISTS",
      );
      expect(await code(kv.dropIndex("missing"))).toBe("NOT_FOUND");
      expect(await kv.listIndexes()).toHaveLength(1);
    });

    it("scans instead when an index range holds more candidates than it gathers", async () => {
      const op = kv.atomic();
      for (let i = 0; i < 999; i++) op.set(["many", "a", i], { n: i });
      await op.commit();
      for (let b = 1; b < 11; b++) {
        const more = kv.atomic();
        for (let i = 0; i < 999; i++) more.set(["many", "a", b * 1000 + i], { n: i });
        await more.commit();
      }
      for (let i = 0; i < 3; i++) await kv.set(["many", "b", i], { n: 1e9 + i });
      await kv.createIndex("byN", { prefix: ["many"], fields: ["n"] });
      const where = { n: { $gte: 0 } };
      expect(ids(await collect(kv.list({ prefix: ["many", "b"] }, { where })))).toEqual([0, 1, 2]);
      expect(await kv.count({ prefix: ["many", "b"] }, { where })).toBe(3);
    });

    it("indexes a versionstamped key set twice in one commit once, with its last value", async () => {
      await kv.createIndex("byAge", { prefix: ["users"], fields: ["age"] });
      await kv
        .atomic()
        .set(["users", kv.commitVersionstamp()], { age: 501 })
        .set(["users", kv.commitVersionstamp()], { age: 502 })
        .commit();
      expect(await collect(kv.list({ index: "byAge", prefix: [501] }))).toEqual([]);
      expect(await collect(kv.list({ index: "byAge", prefix: [502] }))).toHaveLength(1);
    });

    it("keeps commits in the order they were made when one of them fails", async () => {
      await kv.createIndex("byAge", { prefix: ["users"], fields: ["age"] });
      const first = kv.set(["users", 1], { age: 601 });
      const failing = kv.atomic().set(["users", 2], { age: 1 }).sum(["users", 2], 1n).commit();
      const last = kv.set(["users", 1], { age: 602 });
      const [a, , c] = await Promise.allSettled([first, failing, last]);
      expect(a.status === "fulfilled" && c.status === "fulfilled").toBe(true);
      expect(((await kv.get<{ age: number }>(["users", 1])).value as { age: number }).age).toBe(
        602,
      );
    });

    it("refuses an enqueue whose undelivered keys lie under an index's prefix", async () => {
      await kv.createIndex("byAge", { prefix: ["users"], fields: ["age"] });
      expect(await code(kv.enqueue("job", { keysIfUndelivered: [["users", 999]] }))).toBe(
        "UNSUPPORTED",
      );
    });

    it("refuses a value too large for an index, writing nothing", async () => {
      await kv.createIndex("byName", { prefix: ["users"], fields: ["name"] });
      expect(await code(kv.set(["users", 500], { name: "x".repeat(5000) }))).toBe("KEY_TOO_LARGE");
      expect((await kv.get(["users", 500])).versionstamp).toBeNull();
    });
  });
}
