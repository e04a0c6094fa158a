import { afterEach, describe, expect, it } from "vitest";
import type { Kv } from "../index.js";
import { collect, type KvTarget } from "./context.js";

export function namespaceSuite(target: KvTarget): void {
  describe("namespaces", () => {
    let kv: Kv;
    afterEach(async () => {
      await kv.close();
    });

    it("isolates keys, lists, counts and atomic checks", async () => {
      kv = await target.open();
      const a = kv.namespace("tenant-a");
      const b = kv.namespace("tenant-b");
      await kv.set(["k"], "root");
      await a.set(["k"], "a");
      await b.set(["k"], "b");
      await a.set(["list", 1], 1);
      expect((await kv.get(["k"])).value).toBe("root");
      expect((await a.get(["k"])).value).toBe("a");
      expect((await b.get(["k"])).value).toBe("b");
      expect(await a.count({ prefix: [] })).toBe(2);
      expect(await kv.count({ prefix: [] })).toBe(1);
      expect((await collect(b.list({ prefix: [] }))).map((e) => e.key)).toEqual([["k"]]);
      expect(
        (await collect(kv.list({ start: [], end: [true, true] }))).map((e) => e.value),
      ).toEqual(["root"]);
      const bStamp = (await b.get(["k"])).versionstamp;
      expect(
        (
          await a
            .atomic()
            .check({ key: ["k"], versionstamp: bStamp })
            .set(["k"], "x")
            .commit()
        ).ok,
      ).toBe(false);
    });

    it("isolates watches", async () => {
      kv = await target.open();
      const a = kv.namespace("a");
      const reader = a.watch([["shared"]]).getReader();
      await reader.read();
      await kv.namespace("b").set(["shared"], "b");
      await a.set(["shared"], "a");
      expect((await reader.read()).value?.[0]?.value).toBe("a");
      await reader.cancel();
    });

    it("drops a namespace and nothing else", async () => {
      kv = await target.open();
      const a = kv.namespace("drop-me");
      for (let i = 0; i < 700; i++) await a.set(["i", i], i);
      await kv.namespace("keep").set(["i"], 1);
      await kv.set(["i"], 1);
      expect(await kv.dropNamespace("drop-me")).toBe(700);
      expect(await a.count({ prefix: [] })).toBe(0);
      expect(await kv.namespace("keep").count({ prefix: [] })).toBe(1);
      expect(await kv.count({ prefix: [] })).toBe(1);
    });

    it("drops a namespace's revision history and expired entries, and tells its watchers", async () => {
      kv = await target.open({ history: { keepValues: [["audit"]] } });
      const a = kv.namespace("drop-me");
      await a.set(["audit", "x"], 1);
      await a.set(["audit", "x"], 2);
      await a.delete(["audit", "x"]);
      await a.set(["audit", "y"], "live");
      await a.set(["brief"], "gone soon", { expireIn: 1 });
      await new Promise((resolve) => setTimeout(resolve, 5));
      await kv.namespace("keep").set(["audit", "x"], "kept");
      const reader = a.watch([["audit", "y"]]).getReader();
      expect((await reader.read()).value?.[0]?.value).toBe("live");
      expect(await kv.dropNamespace("drop-me")).toBe(1);
      expect((await reader.read()).value?.[0]?.value).toBeNull();
      await reader.cancel();
      expect(await a.history(["audit", "x"])).toEqual([]);
      expect(await a.history(["audit", "y"])).toEqual([]);
      expect(await a.count({ prefix: [] })).toBe(0);
      expect(await kv.sweepExpired()).toBe(0);
      expect(await kv.namespace("keep").history(["audit", "x"])).toHaveLength(1);
    });

    it("refuses bad names and nesting", async () => {
      kv = await target.open();
      for (const name of ["", "$system", "a\0b", "x".repeat(257), 5]) {
        expect(() => kv.namespace(name as string)).toThrow(
          expect.objectContaining({ code: "INVALID_ARGUMENT" }),
        );
      }
      expect(() => kv.namespace("a").namespace("b")).toThrow(/nest/);
      await expect(kv.namespace("a").dropNamespace("b")).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
    });
  });
}
