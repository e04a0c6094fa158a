import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Kv, KvError, type KvKey, KvU64 } from "../index.js";
import { collect, type KvTarget } from "./context.js";

const PEOPLE: [KvKey, unknown][] = [
  [["p", 1], { name: "Ada", age: 36, city: "London", tags: ["math", "poet"], active: true }],
  [["p", 2], { name: "alan", age: 41, city: "Wilmslow", tags: ["math"], active: false }],
  [["p", 3], { name: "Grace", age: 85, address: { city: "Arlington" }, tags: [] }],
  [["p", 4], { name: "Édith", age: 36.5, city: null, tags: ["poet"] }],
  [["p", 5], { name: "Linus", age: 55n, born: new Date("1969-12-28"), active: true }],
  [["p", 6], { name: "Zoë", age: 30, city: "Helsinki" }],
  [["p", 7], "a plain string"],
  [["p", 8], 42],
];

const ids = (entries: { key: KvKey }[]) => entries.map((e) => e.key[1]);

export function whereSuite(target: KvTarget): void {
  describe("where filters", () => {
    let kv: Kv;
    beforeEach(async () => {
      kv = await target.open();
      for (const [key, value] of PEOPLE) await kv.set(key, value);
    });
    afterEach(async () => {
      await kv.close();
    });

    const select = async (where: Record<string, unknown>) =>
      ids(await collect(kv.list({ prefix: ["p"] }, { where })));

    it("compares within a kind: numbers of every type, strings, booleans, dates", async () => {
      expect(await select({ age: 36 })).toEqual([1]);
      expect(await select({ age: { $gte: 36, $lt: 56 } })).toEqual([1, 2, 4, 5]);
      expect(await select({ age: { $gt: 40n } })).toEqual([2, 3, 5]);
      expect(await select({ age: { $lte: new KvU64(30n) } })).toEqual([6]);
      expect(await select({ age: { $between: [36, 41] } })).toEqual([1, 2, 4]);
      expect(await select({ name: { $gt: "Z" } })).toEqual([2, 4, 6]);
      expect(await select({ active: true })).toEqual([1, 5]);
      expect(await select({ active: { $lt: true } })).toEqual([2]);
      expect(await select({ born: { $lt: new Date("1970-01-01") } })).toEqual([5]);
      expect(await select({ born: { $lt: { $now: 0 } } })).toEqual([5]);
      expect(await select({ age: { $gt: "1" } })).toEqual([]);
    });

    it("treats null as a value and a missing field as absent", async () => {
      expect(await select({ city: null })).toEqual([4]);
      expect(await select({ city: { $exists: false } })).toEqual([3, 5, 7, 8]);
      expect(await select({ city: { $ne: "London" } })).toEqual([2, 3, 4, 5, 6, 7, 8]);
      expect(await select({ city: { $nin: ["London", "Helsinki"] } })).toEqual([2, 3, 4, 5, 7, 8]);
      expect(await select({ city: { $in: ["London", "Helsinki"] } })).toEqual([1, 6]);
    });

    it("follows paths into objects and arrays, and looks inside arrays only when asked", async () => {
      expect(await select({ "address.city": "Arlington" })).toEqual([3]);
      expect(await select({ "tags.0": "math" })).toEqual([1, 2]);
      expect(await select({ "tags.1": { $exists: true } })).toEqual([1]);
      expect(await select({ tags: "math" })).toEqual([]);
      expect(await select({ tags: { $contains: "poet" } })).toEqual([1, 4]);
      expect(await select({ "name.0": "A" })).toEqual([]);
    });

    it("matches strings by substring, prefix and suffix, ignoring ASCII case when asked", async () => {
      expect(await select({ name: { $contains: "a" } })).toEqual([1, 2, 3]);
      expect(await select({ name: { $contains: "A" } })).toEqual([1]);
      expect(await select({ name: { $icontains: "A" } })).toEqual([1, 2, 3]);
      expect(await select({ name: { $icontains: "é" } })).toEqual([]);
      expect(await select({ name: { $startsWith: "A" } })).toEqual([1]);
      expect(await select({ name: { $istartsWith: "a" } })).toEqual([1, 2]);
      expect(await select({ name: { $iendsWith: "US" } })).toEqual([5]);
      expect(await select({ name: { $ieq: "ADA" } })).toEqual([1]);
      expect(await select({ name: { $ieq: "édith" } })).toEqual([]);
    });

    it("combines with $and, $or and $not", async () => {
      expect(await select({ $or: [{ city: "London" }, { "address.city": "Arlington" }] })).toEqual([
        1, 3,
      ]);
      expect(
        await select({ $and: [{ age: { $gte: 36 } }, { tags: { $contains: "math" } }] }),
      ).toEqual([1, 2]);
      expect(await select({ $not: { age: { $exists: true } } })).toEqual([7, 8]);
    });

    it("keeps pages full and cursors on matches", async () => {
      for (let i = 0; i < 40; i++) await kv.set(["n", i], { even: i % 2 === 0, i });
      const all = await collect(
        kv.list({ prefix: ["n"] }, { where: { even: true }, batchSize: 3 }),
      );
      expect(all.map((e: { key: KvKey }) => e.key[1])).toEqual(
        Array.from({ length: 20 }, (_, i) => i * 2),
      );
      const first = await kv.paginate({ prefix: ["n"] }, { where: { even: false }, limit: 7 });
      expect(first.entries.map((e) => e.key[1])).toEqual([1, 3, 5, 7, 9, 11, 13]);
      const second = await kv.paginate(
        { prefix: ["n"] },
        { where: { even: false }, limit: 7, cursor: first.cursor! },
      );
      expect(second.entries.map((e) => e.key[1])).toEqual([15, 17, 19, 21, 23, 25, 27]);
      const reversed = await kv.paginate(
        { prefix: ["n"] },
        { where: { i: { $lt: 5 } }, reverse: true, limit: 2 },
      );
      expect(reversed.entries.map((e) => e.key[1])).toEqual([4, 3]);
      expect(await kv.count({ prefix: ["n"] }, { where: { i: { $gte: 30 } } })).toBe(10);
      expect(await kv.count({ prefix: ["p"] }, { where: { active: true } })).toBe(2);
    });

    it("refuses malformed filters with INVALID_FILTER naming the part", async () => {
      const refusal = async (where: unknown) => {
        try {
          await collect(kv.list({ prefix: ["p"] }, { where: where as never }));
        } catch (error) {
          expect(error).toBeInstanceOf(KvError);
          expect((error as KvError).code).toBe("INVALID_FILTER");
          return (error as KvError).message;
        }
        throw new Error("accepted");
      };
      expect(await refusal({ age: { $near: 3 } })).toMatch(/where\.age\.\$near/);
      expect(await refusal({ "a..b": 1 })).toMatch(/empty segment/);
      expect(await refusal({ age: { $gt: {} } })).toMatch(/where\.age\.\$gt/);
      expect(await refusal({ age: { $in: 3 } })).toMatch(/\$in/);
      expect(await refusal({ $or: [] })).toMatch(/\$or/);
      expect(await refusal({ $where: "1" })).toMatch(/unknown operator/);
      expect(await refusal([1])).toMatch(/object/);
      await expect(kv.count({ prefix: ["p"] }, { where: { x: { $exists: 1 } } })).rejects.toThrow(
        /\$exists/,
      );
    });
  });
}
