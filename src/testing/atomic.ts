import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Kv, KvU64 } from "../index.js";
import { collect, type KvTarget } from "./context.js";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export function atomicSuite(target: KvTarget): void {
  describe("atomic operations", () => {
    let kv: Kv;
    beforeEach(async () => {
      kv = await target.open();
    });
    afterEach(async () => {
      await kv.close();
    });

    it("commits when every check holds", async () => {
      const { versionstamp } = await kv.set(["acct"], 100);
      const res = await kv
        .atomic()
        .check({ key: ["acct"], versionstamp }, { key: ["new"], versionstamp: null })
        .set(["acct"], 90)
        .set(["new"], 10)
        .commit();
      expect(res.ok).toBe(true);
      if (!res.ok) return;
      expect(res.versionstamp > versionstamp).toBe(true);
      expect((await kv.get(["acct"])).versionstamp).toBe(res.versionstamp);
      expect((await kv.get(["new"])).versionstamp).toBe(res.versionstamp);
    });

    it("applies a commit of hundreds of keys as each would be alone", async () => {
      const before = kv.atomic();
      for (let i = 0; i < 150; i++) before.set(["many", i], i);
      expect((await before.commit()).ok).toBe(true);
      const op = kv.atomic();
      for (let i = 0; i < 300; i++) op.set(["many", i], i * 10);
      op.sum(["many", "counter"], new KvU64(2n)).sum(["many", "counter"], new KvU64(3n));
      op.delete(["many", 5]).set(["many", 7], "second");
      const res = await op.commit();
      if (!res.ok) throw new Error("the commit failed");
      const entries = await collect(kv.list({ prefix: ["many"] }, { metadata: true }));
      expect(entries).toHaveLength(300);
      expect(entries.every((e) => e.versionstamp === res.versionstamp)).toBe(true);
      const byKey = new Map(entries.map((e) => [JSON.stringify(e.key), e]));
      expect(byKey.has('["many",5]')).toBe(false);
      expect(byKey.get('["many",7]')?.value).toBe("second");
      expect(byKey.get('["many",149]')).toMatchObject({ value: 1490, metadata: { version: 2 } });
      expect(byKey.get('["many",150]')).toMatchObject({ value: 1500, metadata: { version: 1 } });
      expect(byKey.get('["many","counter"]')?.value).toEqual(new KvU64(5n));
      expect((await kv.history(["many", 3])).map((r) => r.version)).toEqual([2, 1]);
    });

    it("writes nothing when a check fails", async () => {
      const first = await kv.set(["acct"], 100);
      await kv.set(["acct"], 200);
      const res = await kv
        .atomic()
        .check({ key: ["acct"], versionstamp: first.versionstamp })
        .set(["other"], 1)
        .commit();
      expect(res).toEqual({ ok: false });
      expect((await kv.get(["other"])).value).toBeNull();
      const absent = await kv
        .atomic()
        .check({ key: ["acct"], versionstamp: null })
        .set(["other"], 1)
        .commit();
      expect(absent.ok).toBe(false);
    });

    it("lets exactly one of two racing check-and-sets win", async () => {
      const { versionstamp } = await kv.set(["lock"], "free");
      const results = await Promise.all(
        ["a", "b"].map((owner) =>
          kv
            .atomic()
            .check({ key: ["lock"], versionstamp })
            .set(["lock"], owner)
            .commit(),
        ),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(1);
    });

    it("sums KvU64 values with wrap-around, and takes min and max", async () => {
      await kv.atomic().sum(["n"], 5n).commit();
      await kv.atomic().sum(["n"], new KvU64(7n)).commit();
      expect((await kv.get(["n"])).value).toEqual(new KvU64(12n));
      await kv.set(["wrap"], new KvU64(18446744073709551615n));
      await kv.atomic().sum(["wrap"], 2n).commit();
      expect((await kv.get(["wrap"])).value).toEqual(new KvU64(1n));
      await kv.atomic().min(["lo"], 10n).min(["lo"], 3n).min(["lo"], 8n).commit();
      await kv.atomic().max(["hi"], 10n).max(["hi"], 30n).max(["hi"], 8n).commit();
      expect((await kv.get(["lo"])).value).toEqual(new KvU64(3n));
      expect((await kv.get(["hi"])).value).toEqual(new KvU64(30n));
    });

    it("refuses sum on a non-KvU64 value and writes nothing", async () => {
      await kv.set(["text"], "not a number");
      await expect(kv.atomic().set(["side"], 1).sum(["text"], 1n).commit()).rejects.toMatchObject({
        code: "INVALID_MUTATION",
      });
      expect((await kv.get(["side"])).value).toBeNull();
      expect((await kv.get(["text"])).value).toBe("not a number");
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, "1", null]) {
        expect(() => kv.atomic().sum(["n"], bad as never)).toThrow(
          expect.objectContaining({ code: "INVALID_MUTATION" }),
        );
      }
    });

    it("sums, and takes min and max of, plain numbers when given a number", async () => {
      await kv.atomic().sum(["hits"], 1).commit();
      await kv.atomic().sum(["hits"], 2).sum(["hits"], 0.5).commit();
      expect((await kv.get(["hits"])).value).toBe(3.5);
      await kv.atomic().min(["low"], 7).min(["low"], -2).max(["high"], 1).max(["high"], 9).commit();
      expect((await kv.getMany([["low"], ["high"]])).map((e) => e.value)).toEqual([-2, 9]);
      const tx = await kv.transaction(async (t) => {
        t.sum(["hits"], 10);
        return (await t.get(["hits"])).value;
      });
      expect(tx).toMatchObject({ ok: true, value: 13.5 });
      // A number never mixes with a KvU64 or another kind of value, and a failed sum writes nothing.
      await kv.set(["u"], new KvU64(1n));
      await kv.set(["text"], "x");
      for (const [key, n] of [
        [["u"], 1],
        [["text"], 1],
        [["hits"], 1n],
      ] as const) {
        await expect(kv.atomic().set(["side"], 1).sum(key, n).commit()).rejects.toMatchObject({
          code: "INVALID_MUTATION",
        });
      }
      expect((await kv.get(["side"])).value).toBeNull();
      expect((await kv.get(["hits"])).value).toBe(13.5);
    });

    it("appends and prepends to arrays", async () => {
      await kv.atomic().append(["log"], ["b"]).commit();
      await kv.atomic().append(["log"], ["c", "d"]).prepend(["log"], ["a"]).commit();
      expect((await kv.get(["log"])).value).toEqual(["a", "b", "c", "d"]);
      // biome-ignore lint/suspicious/noSparseArray: holes must survive an append
      await kv.set(["sparse"], [1, , 3]);
      await kv.atomic().append(["sparse"], [4]).commit();
      expect(1 in ((await kv.get<unknown[]>(["sparse"])).value ?? [])).toBe(false);
      await kv.set(["scalar"], 1);
      await expect(kv.atomic().append(["scalar"], [2]).commit()).rejects.toMatchObject({
        code: "INVALID_MUTATION",
      });
    });

    it("resolves uuid placeholders once per commit, in keys and values", async () => {
      const op = kv.atomic();
      const id = op.uuid();
      const other = op.uuid();
      const res = await op
        .set(["items", id], { id, tags: [other] })
        .set(["index", "latest"], id)
        .commit();
      expect(res.ok).toBe(true);
      if (!res.ok) return;
      const [uuid, uuid2] = res.uuids;
      expect(uuid).toMatch(UUID_V7);
      expect(uuid2).toMatch(UUID_V7);
      expect(uuid).not.toBe(uuid2);
      expect((await kv.get(["items", uuid!])).value).toEqual({ id: uuid, tags: [uuid2] });
      expect((await kv.get(["index", "latest"])).value).toBe(uuid);
    });

    it("writes keys ending with their own commit's versionstamp, in commit order", async () => {
      const stamps: string[] = [];
      for (const event of ["a", "b", "c"]) {
        const res = await kv
          .atomic()
          .set(["log", kv.commitVersionstamp()], event)
          .sum(["n"], 1n)
          .commit();
        if (res.ok) stamps.push(res.versionstamp);
      }
      const entries = await collect(kv.list({ prefix: ["log"] }));
      expect(entries.map((e) => [e.key, e.value, e.versionstamp])).toEqual(
        stamps.map((vs, i) => [["log", vs], ["a", "b", "c"][i], vs]),
      );
      expect(() => kv.atomic().delete(["log", kv.commitVersionstamp()])).toThrow(
        expect.objectContaining({ code: "INVALID_KEY" }),
      );
      expect(() => kv.atomic().set([kv.commitVersionstamp(), "x"], 1)).toThrow(/last part/);
    });

    it("accepts Deno KV mutation objects", async () => {
      const res = await kv
        .atomic()
        .mutate(
          { type: "set", key: ["m", 1], value: "x" },
          { type: "sum", key: ["m", 2], value: new KvU64(4n) },
          { type: "delete", key: ["m", 3] },
        )
        .commit();
      expect(res.ok).toBe(true);
      expect((await kv.get(["m", 2])).value).toEqual(new KvU64(4n));
    });

    it("applies mutations of one key in order", async () => {
      await kv.atomic().set(["k"], 1).delete(["k"]).set(["k"], 3).commit();
      expect((await kv.get(["k"])).value).toBe(3);
      await kv.atomic().set(["c"], new KvU64(1n)).sum(["c"], 1n).sum(["c"], 1n).commit();
      expect((await kv.get(["c"])).value).toEqual(new KvU64(3n));
    });

    it("groups concurrent commits and keeps every one", async () => {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          kv.atomic().sum(["hits"], 1n).set(["w", i], i).commit(),
        ),
      );
      expect(results.every((r) => r.ok)).toBe(true);
      expect((await kv.get(["hits"])).value).toEqual(new KvU64(200n));
      expect(new Set(results.map((r) => (r.ok ? r.versionstamp : ""))).size).toBe(200);
    });

    it("refuses a second commit of the same operation", async () => {
      const op = kv.atomic().set(["a"], 1);
      await op.commit();
      await expect(op.commit()).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    });
  });
}
