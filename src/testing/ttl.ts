import { afterEach, describe, expect, it } from "vitest";
import type { Kv } from "../index.js";
import { collect, type KvTarget, manualClock } from "./context.js";

export function ttlSuite(target: KvTarget): void {
  describe("expiry", () => {
    let kv: Kv;
    afterEach(async () => {
      await kv.close();
    });

    it("hides an entry from every read from the millisecond it expires, before any sweep", async () => {
      const clock = manualClock();
      kv = await target.open({ clock: clock.now, sweepInterval: 0 });
      await kv.set(["s", 1], "short", { expireIn: 250 });
      await kv.set(["s", 2], "long", { expireIn: 10_000 });
      clock.advance(249);
      expect((await kv.get(["s", 1])).value).toBe("short");
      clock.advance(1);
      expect((await kv.get(["s", 1])).value).toBeNull();
      expect((await kv.getMany([["s", 1]]))[0].value).toBeNull();
      expect((await collect(kv.list({ prefix: ["s"] }))).map((e) => e.value)).toEqual(["long"]);
      expect(await kv.count({ prefix: ["s"] })).toBe(1);
      expect((await kv.paginate({ prefix: ["s"] })).entries).toHaveLength(1);
      const res = await kv
        .atomic()
        .check({ key: ["s", 1], versionstamp: null })
        .set(["s", 1], "again")
        .commit();
      expect(res.ok).toBe(true);
    });

    it("changes an entry's expiry without its value, keeping its tags", async () => {
      const clock = manualClock();
      kv = await target.open({ clock: clock.now, sweepInterval: 0 });
      const first = await kv.set(["s"], { big: "value" }, { tags: ["t"] });
      const res = await kv.expire(["s"], 500);
      expect(res.ok && res.versionstamp > first.versionstamp).toBe(true);
      const entry = await kv.get(["s"], { metadata: true });
      expect(entry.value).toEqual({ big: "value" });
      expect(entry.metadata).toMatchObject({
        expiresAt: clock.now() + 500,
        tags: ["t"],
        version: 2,
      });
      clock.advance(300);
      expect((await kv.expire(["s"], null)).ok).toBe(true);
      clock.advance(300);
      expect((await kv.get(["s"], { metadata: true })).metadata?.expiresAt).toBeNull();
      expect(await kv.expire(["absent"], 100)).toEqual({ ok: false });
      await kv.set(["gone"], 1, { expireIn: 10 });
      clock.advance(10);
      expect(await kv.expire(["gone"], 100)).toEqual({ ok: false });
      await expect(kv.expire(["s"], 0)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    });

    it("reports the expiry in metadata and drops it on a plain overwrite", async () => {
      const clock = manualClock();
      kv = await target.open({ clock: clock.now, sweepInterval: 0 });
      await kv.set(["e"], 1, { expireIn: 1000 });
      expect((await kv.get(["e"], { metadata: true })).metadata?.expiresAt).toBe(
        clock.now() + 1000,
      );
      await kv.set(["e"], 2);
      clock.advance(5000);
      expect((await kv.get(["e"], { metadata: true })).metadata?.expiresAt).toBeNull();
    });

    it("starts a key over at version 1 when it is rewritten after expiring, swept or not", async () => {
      const clock = manualClock();
      kv = await target.open({ clock: clock.now, sweepInterval: 0 });
      for (let i = 1; i <= 3; i++) await kv.set(["k"], `old ${i}`, { expireIn: 20 });
      clock.advance(20);
      const { versionstamp } = await kv.set(["k"], "new");
      expect((await kv.get(["k"], { metadata: true })).metadata?.version).toBe(1);
      expect((await kv.history(["k"])).map((r) => [r.version, r.versionstamp])).toEqual([
        [1, versionstamp],
      ]);
    });

    it("sweeps expired entries away", async () => {
      const clock = manualClock();
      kv = await target.open({ clock: clock.now, sweepInterval: 0 });
      for (let i = 0; i < 5; i++) await kv.set(["t", i], i, { expireIn: 100 });
      await kv.set(["t", "keep"], 1);
      clock.advance(100);
      expect(await kv.sweepExpired()).toBe(5);
      expect(await kv.sweepExpired()).toBe(0);
      expect(await kv.count({ prefix: ["t"] })).toBe(1);
    });

    it("runs the sweeper on its own", async () => {
      kv = await target.open({ sweepInterval: 20 });
      await kv.set(["auto"], 1, { expireIn: 1 });
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(await kv.sweepExpired()).toBe(0);
    });
  });
}
