import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Kv, KvU64 } from "../index.js";
import type { KvTarget } from "./context.js";

export function transactionSuite(target: KvTarget): void {
  describe("transactions", () => {
    let kv: Kv;
    beforeEach(async () => {
      kv = await target.open();
    });
    afterEach(async () => {
      await kv.close();
    });

    it("reads its own writes and commits them together", async () => {
      await kv.set(["bal", "a"], 100);
      const res = await kv.transaction(async (tx) => {
        const a = await tx.get<number>(["bal", "a"]);
        tx.set(["bal", "a"], a.value! - 30);
        tx.set(["bal", "b"], 30);
        tx.sum(["transfers"], 1n);
        const again = await tx.get<number>(["bal", "a"]);
        const count = await tx.get<KvU64>(["transfers"]);
        return [again.value, again.versionstamp, count.value];
      });
      expect(res).toMatchObject({ ok: true, value: [70, null, new KvU64(1n)] });
      expect((await kv.get(["bal", "a"])).value).toBe(70);
      expect((await kv.get(["bal", "b"])).value).toBe(30);
    });

    it("retries on conflict so concurrent read-modify-writes all count", async () => {
      await kv.set(["counter"], 0);
      const runs = await Promise.all(
        Array.from({ length: 20 }, () =>
          kv.transaction(
            async (tx) => {
              const { value } = await tx.get<number>(["counter"]);
              await new Promise((resolve) => setTimeout(resolve, 1));
              tx.set(["counter"], value! + 1);
            },
            { maxRetries: 100, backoff: { initialMs: 1, maxMs: 20 } },
          ),
        ),
      );
      expect(runs.every((r) => r.ok)).toBe(true);
      expect((await kv.get(["counter"])).value).toBe(20);
    });

    it("lists a range with its own writes applied, in order, within the limit", async () => {
      for (const id of [1, 2, 3, 4]) await kv.set(["o", id], `stored ${id}`);
      const res = await kv.transaction(async (tx) => {
        tx.delete(["o", 2]);
        tx.set(["o", 5], "new");
        tx.set(["o", 3], "changed");
        const all = await tx.list<string>({ prefix: ["o"] });
        const firstTwo = await tx.list<string>({ prefix: ["o"] }, { limit: 2 });
        const lastTwo = await tx.list<string>({ prefix: ["o"] }, { limit: 2, reverse: true });
        return { all, firstTwo, lastTwo };
      });
      if (!res.ok) throw res.error;
      const values = (entries: { value: string | null }[]) => entries.map((e) => e.value);
      expect(values(res.value.all)).toEqual(["stored 1", "changed", "stored 4", "new"]);
      expect(res.value.all.map((e) => e.versionstamp === null)).toEqual([false, true, false, true]);
      expect(values(res.value.firstTwo)).toEqual(["stored 1", "changed"]);
      expect(values(res.value.lastTwo)).toEqual(["new", "stored 4"]);
    });

    it("runs again when a key is added to, changed in or deleted from a range it listed", async () => {
      for (const id of [1, 2, 3]) await kv.set(["q", id], id);
      for (const interfere of [
        () => kv.set(["q", 2.5], "added"),
        () => kv.set(["q", 3], "changed"),
        () => kv.delete(["q", 1]),
      ]) {
        let runs = 0;
        const res = await kv.transaction(async (tx) => {
          runs++;
          const seen = await tx.list({ prefix: ["q"] });
          if (runs === 1) await interfere();
          tx.set(["q-count"], seen.length);
          return seen.length;
        });
        expect(res.ok).toBe(true);
        expect(runs).toBe(2);
      }
      // A write outside the range, or past the part a limited list saw, is no conflict.
      let runs = 0;
      const res = await kv.transaction(async (tx) => {
        runs++;
        await tx.list({ prefix: ["q"] }, { limit: 1 });
        if (runs === 1) {
          await kv.set(["other"], 1);
          await kv.set(["q", 9], "beyond what was seen");
        }
        tx.set(["q-count"], 1);
      });
      expect(res.ok).toBe(true);
      expect(runs).toBe(1);
    });

    it("gives up with a CONFLICT error after maxRetries", async () => {
      await kv.set(["hot"], 0);
      let attempts = 0;
      const res = await kv.transaction(
        async (tx) => {
          attempts++;
          await tx.get(["hot"]);
          await kv.set(["hot"], attempts);
          tx.set(["hot"], -1);
        },
        { maxRetries: 2, backoff: { initialMs: 1 } },
      );
      expect(attempts).toBe(3);
      expect(res.ok).toBe(false);
      if (!res.ok) expect(res.error).toMatchObject({ code: "CONFLICT" });
      expect((await kv.get(["hot"])).value).toBe(3);
    });

    it("returns the callback's error and writes nothing", async () => {
      const res = await kv.transaction((tx) => {
        tx.set(["partial"], 1);
        throw new Error("boom");
      });
      expect(res.ok).toBe(false);
      if (!res.ok) expect((res.error as Error).message).toBe("boom");
      expect((await kv.get(["partial"])).value).toBeNull();
    });
  });
}
