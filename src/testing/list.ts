import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Kv, KvKey, KvListSelector } from "../index.js";
import { collect, type KvTarget } from "./context.js";

export function listSuite(target: KvTarget): void {
  describe("list, paginate, count, deleteMany", () => {
    let kv: Kv;
    beforeEach(async () => {
      kv = await target.open();
      for (let i = 0; i < 10; i++) await kv.set(["users", i], `u${i}`);
      await kv.set(["users"], "exact prefix");
      await kv.set(["usersX", 1], "neighbour");
      await kv.set(["posts", 1], "p1");
    });
    afterEach(async () => {
      await kv.close();
    });

    const keysOf = async (iter: AsyncIterable<{ key: KvKey }>) =>
      (await collect(iter)).map((e) => e.key);

    it("lists a prefix in key order, without the prefix key or neighbours", async () => {
      const keys = await keysOf(kv.list({ prefix: ["users"] }));
      expect(keys).toEqual(Array.from({ length: 10 }, (_, i) => ["users", i]));
    });

    it("lists in reverse with a limit", async () => {
      expect(await keysOf(kv.list({ prefix: ["users"] }, { reverse: true, limit: 3 }))).toEqual([
        ["users", 9],
        ["users", 8],
        ["users", 7],
      ]);
    });

    it("lists start/end ranges, start inclusive and end exclusive", async () => {
      expect(await keysOf(kv.list({ start: ["users", 2], end: ["users", 5] }))).toEqual([
        ["users", 2],
        ["users", 3],
        ["users", 4],
      ]);
      expect(await keysOf(kv.list({ prefix: ["users"], start: ["users", 8] }))).toEqual([
        ["users", 8],
        ["users", 9],
      ]);
      expect(await keysOf(kv.list({ prefix: ["users"], end: ["users", 2] }))).toEqual([
        ["users", 0],
        ["users", 1],
      ]);
    });

    it("lists everything with an empty prefix, in type order", async () => {
      await kv.set([true], 1);
      await kv.set([1n], 1);
      await kv.set([new Uint8Array([1])], 1);
      const keys = await keysOf(kv.list({ prefix: [] }));
      expect(keys[0]).toEqual([new Uint8Array([1])]);
      expect(keys.at(-2)).toEqual([1n]);
      expect(keys.at(-1)).toEqual([true]);
    });

    it("resumes from a cursor forward and backward, across small batches", async () => {
      const first = kv.list({ prefix: ["users"] }, { limit: 4, batchSize: 3 });
      expect(await keysOf(first)).toHaveLength(4);
      const rest = await keysOf(
        kv.list({ prefix: ["users"] }, { cursor: first.cursor, batchSize: 2 }),
      );
      expect(rest).toEqual(Array.from({ length: 6 }, (_, i) => ["users", i + 4]));

      const back = kv.list({ prefix: ["users"] }, { limit: 3, reverse: true });
      await collect(back);
      const before = await keysOf(
        kv.list({ prefix: ["users"] }, { reverse: true, cursor: back.cursor }),
      );
      expect(before).toEqual(Array.from({ length: 7 }, (_, i) => ["users", 6 - i]));
    });

    it("has an empty cursor once exhausted and none before the first entry", async () => {
      const iter = kv.list({ prefix: ["users"] });
      expect(() => iter.cursor).toThrow();
      await collect(iter);
      expect(iter.cursor).toBe("");
    });

    const shapes: [string, KvListSelector][] = [
      ["prefix", { prefix: ["users"] }],
      ["prefix and start", { prefix: ["users"], start: ["users", 3] }],
      ["prefix and end", { prefix: ["users"], end: ["users", 7] }],
      ["start and end", { start: ["users", 2], end: ["users", 8] }],
    ];
    for (const [shape, selector] of shapes) {
      it(`takes the exhausted cursor "" as no cursor (${shape}, both directions)`, async () => {
        for (const reverse of [false, true]) {
          const all = await keysOf(kv.list(selector, { reverse }));
          expect(all.length).toBeGreaterThan(0);

          // A paging loop that hands back whatever cursor it was given reads the range through,
          // ends on "", and starts over from the first page when "" is handed back.
          const pages: KvKey[][] = [];
          let cursor: string | undefined;
          do {
            const iter = kv.list(selector, { reverse, limit: 3, ...(cursor && { cursor }) });
            pages.push(await keysOf(iter));
            cursor = iter.cursor;
          } while (cursor !== "" && pages.length <= all.length);
          expect(pages.flat()).toEqual(all);
          const again = kv.list(selector, { reverse, limit: 3, cursor });
          expect(await keysOf(again)).toEqual(all.slice(0, 3));
          expect(await keysOf(kv.list(selector, { reverse, cursor: "" }))).toEqual(all);
          expect(() => kv.list(selector, { reverse, cursor: "" }).cursor).toThrow(/cursor/);

          const first = await kv.paginate(selector, { reverse, limit: 3 });
          expect(await kv.paginate(selector, { reverse, limit: 3, cursor: "" })).toEqual(first);
        }
      });
    }

    it("pages past a start key that is a prefix of the end key, one entry at a time", async () => {
      await kv.set(["a"], 0);
      await kv.set(["a", "m"], 1);
      const selector = { start: ["a"], end: ["a", "x"] };
      const seen: unknown[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 5; page++) {
        const iter = kv.list(selector, { limit: 1, ...(cursor !== undefined && { cursor }) });
        for await (const entry of iter) seen.push(entry.value);
        cursor = iter.cursor;
        if (cursor === "") break;
      }
      expect(seen).toEqual([0, 1]);
      let next: string | null | undefined;
      const values: unknown[] = [];
      do {
        const page = await kv.paginate(selector, { limit: 1, ...(next && { cursor: next }) });
        values.push(...page.entries.map((e) => e.value));
        next = page.cursor;
      } while (next && values.length < 5);
      expect(values).toEqual([0, 1]);
    });

    it("refuses a cursor from outside the selector", async () => {
      expect(() => kv.list({ start: ["users", 0], end: ["users", 3] }, { cursor: "AAAA" })).toThrow(
        expect.objectContaining({ code: "INVALID_CURSOR" }),
      );
      await expect(
        kv.paginate({ start: ["users", 0], end: ["users", 3] }, { cursor: "AAAA" }),
      ).rejects.toMatchObject({
        code: "INVALID_CURSOR",
      });
      expect(() => kv.list({ prefix: ["users"] }, { cursor: "not base64!" })).toThrow(/cursor/);
    });

    it("paginates with hasMore and a null cursor on the last page", async () => {
      const pages: KvKey[][] = [];
      let page = await kv.paginate({ prefix: ["users"] }, { limit: 4 });
      pages.push(page.entries.map((e) => e.key));
      while (page.cursor) {
        expect(page.hasMore).toBe(true);
        page = await kv.paginate({ prefix: ["users"] }, { limit: 4, cursor: page.cursor });
        pages.push(page.entries.map((e) => e.key));
      }
      expect(page.hasMore).toBe(false);
      expect(pages.map((p) => p.length)).toEqual([4, 4, 2]);
      expect(pages.flat()).toEqual(Array.from({ length: 10 }, (_, i) => ["users", i]));
      const reversed = await kv.paginate({ prefix: ["users"] }, { limit: 2, reverse: true });
      expect(reversed.entries.map((e) => e.key)).toEqual([
        ["users", 9],
        ["users", 8],
      ]);
    });

    it("counts a selector", async () => {
      expect(await kv.count({ prefix: ["users"] })).toBe(10);
      expect(await kv.count({ start: ["users", 3], end: ["users", 6] })).toBe(3);
      expect(await kv.count({ prefix: ["nothing"] })).toBe(0);
    });

    it("deletes a selector in batches and reports how many", async () => {
      for (let i = 0; i < 1200; i++) await kv.set(["bulk", i], i);
      expect(await kv.deleteMany({ prefix: ["bulk"] })).toBe(1200);
      expect(await kv.count({ prefix: ["bulk"] })).toBe(0);
      expect(await kv.count({ prefix: ["users"] })).toBe(10);
    });

    it("validates selectors", async () => {
      expect(() => kv.list({ prefix: ["users"], start: ["posts"] } as never)).toThrow(/prefix/);
      expect(() => kv.list({ start: ["b"], end: ["a"] })).toThrow(/greater/);
      expect(() => kv.list({ start: ["a"] } as never)).toThrow(/selector/);
      expect(() => kv.list({ prefix: ["a"] }, { limit: 0 })).toThrow(/limit/);
      expect(() => kv.list({ prefix: ["a"] }, { batchSize: 5000 })).toThrow(/batchSize/);
    });
  });
}
