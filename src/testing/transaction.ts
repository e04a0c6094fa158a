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
