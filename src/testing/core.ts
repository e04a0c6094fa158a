import { afterEach, describe, expect, it } from "vitest";
import { type Kv, KvError, KvU64 } from "../index.js";
import type { KvTarget } from "./context.js";

export function coreSuite(target: KvTarget): void {
  describe("get, set, delete", () => {
    let kv: Kv;
    afterEach(async () => {
      await kv?.close();
    });

    it("returns null value and versionstamp for an absent key", async () => {
      kv = await target.open();
      expect(await kv.get(["missing"])).toEqual({
        key: ["missing"],
        value: null,
        versionstamp: null,
      });
    });

    it("stores and reads back a value with a 20-hex versionstamp", async () => {
      kv = await target.open();
      const res = await kv.set(["a"], { hello: "world" });
      expect(res.ok).toBe(true);
      expect(res.versionstamp).toMatch(/^[0-9a-f]{20}$/);
      expect(await kv.get(["a"])).toEqual({
        key: ["a"],
        value: { hello: "world" },
        versionstamp: res.versionstamp,
      });
    });

    it("gives strictly increasing versionstamps across commits", async () => {
      kv = await target.open();
      const stamps: string[] = [];
      for (let i = 0; i < 20; i++) stamps.push((await kv.set(["k", i % 3], i)).versionstamp);
      stamps.push(
        ...(await Promise.all([1, 2, 3, 4, 5].map((i) => kv.set(["c", i], i)))).map(
          (r) => r.versionstamp,
        ),
      );
      expect(new Set(stamps).size).toBe(stamps.length);
      const sequential = stamps.slice(0, 20);
      expect([...sequential].sort()).toEqual(sequential);
    });

    it("round-trips everything structured clone carries, and KvU64", async () => {
      kv = await target.open();
      const values: unknown[] = [
        "text",
        "",
        42,
        -0,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        12345678901234567890n,
        true,
        null,
        undefined,
        [1, "two", [3]],
        { nested: { deep: [1, { x: null }] } },
        new Date("2024-05-06T07:08:09.010Z"),
        new Map<unknown, unknown>([
          ["k", 1],
          [2, { v: 3 }],
        ]),
        new Set([1, "a", 2n]),
        new Uint8Array([0, 1, 255]),
        new Int32Array([-1, 2]),
        new Float64Array([1.5]),
        /ab+c/gi,
        new KvU64(18446744073709551615n),
        { date: new Date(0), big: 1n, bytes: new Uint8Array([9]) },
      ];
      for (const [i, value] of values.entries()) await kv.set(["v", i], value);
      for (const [i, value] of values.entries()) {
        const { value: read } = await kv.get(["v", i]);
        expect(read).toStrictEqual(value);
      }
    });

    it("returns a fresh copy on every read", async () => {
      kv = await target.open();
      await kv.set(["obj"], { list: [1] });
      const first = (await kv.get<{ list: number[] }>(["obj"])).value!;
      first.list.push(2);
      expect((await kv.get(["obj"])).value).toEqual({ list: [1] });
    });

    it("overwrites and deletes", async () => {
      kv = await target.open();
      await kv.set(["a"], 1);
      await kv.set(["a"], 2);
      expect((await kv.get(["a"])).value).toBe(2);
      await kv.delete(["a"]);
      expect((await kv.get(["a"])).value).toBeNull();
      await kv.delete(["never-there"]);
    });

    it("reads many keys in order with getMany", async () => {
      kv = await target.open();
      await kv.set(["x", 1], "one");
      await kv.set(["x", 3], "three");
      const entries = await kv.getMany([
        ["x", 3],
        ["x", 2],
        ["x", 1],
      ]);
      expect(entries.map((e) => e.value)).toEqual(["three", null, "one"]);
      expect(entries[1]).toEqual({ key: ["x", 2], value: null, versionstamp: null });
    });

    it("treats every key part type as distinct", async () => {
      kv = await target.open();
      const keys = [["42"], [42], [42n], [true], [new Uint8Array([42])]] as const;
      for (const [i, key] of keys.entries()) await kv.set(key, i);
      for (const [i, key] of keys.entries()) expect((await kv.get(key)).value).toBe(i);
    });

    it("refuses operations after close with DATABASE_CLOSED", async () => {
      kv = await target.open();
      await kv.close();
      await expect(kv.get(["a"])).rejects.toMatchObject({ code: "DATABASE_CLOSED" });
      await expect(kv.set(["a"], 1)).rejects.toBeInstanceOf(KvError);
      await kv.close();
    });

    it("closes through Symbol.asyncDispose", async () => {
      kv = await target.open();
      {
        await using scoped = kv;
        await scoped.set(["a"], 1);
      }
      await expect(kv.get(["a"])).rejects.toMatchObject({ code: "DATABASE_CLOSED" });
    });

    if (target.reopen) {
      it("keeps data across close and reopen", async () => {
        kv = await target.open();
        const { versionstamp } = await kv.set(["persist"], new Map([["a", 1]]));
        await kv.close();
        kv = await target.reopen!();
        expect(await kv.get(["persist"])).toEqual({
          key: ["persist"],
          value: new Map([["a", 1]]),
          versionstamp,
        });
        const next = await kv.set(["persist2"], 1);
        expect(next.versionstamp > versionstamp).toBe(true);
      });
    }
  });
}
