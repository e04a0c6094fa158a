import { afterEach, describe, expect, it } from "vitest";
import type { Kv, KvLock } from "../index.js";
import type { KvTarget } from "./context.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with a `KvError` of `code` whose message names `field`. */
async function refused(promise: Promise<unknown>, code: string, field: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({
    code,
    message: expect.stringContaining(field),
  });
}

export function lockSuite(target: KvTarget): void {
  const watches = target.skip?.includes("changes") !== true;

  describe("locks", () => {
    let kv: Kv;
    const taken: KvLock[] = [];
    afterEach(async () => {
      await Promise.allSettled(taken.splice(0).map((lock) => lock.release()));
      await kv.close();
    });
    const hold = (lock: KvLock) => {
      taken.push(lock);
      return lock;
    };

    it("lets one holder in at a time, and the next in once it is released", async () => {
      kv = await target.open();
      const contenders = await Promise.allSettled(
        Array.from({ length: 6 }, () => kv.lock("job").then(hold)),
      );
      const winners = contenders.filter((c) => c.status === "fulfilled");
      expect(winners).toHaveLength(1);
      for (const loser of contenders.filter((c) => c.status === "rejected"))
        expect(loser.reason).toMatchObject({ code: "LOCK_HELD" });
      const first = (winners[0] as PromiseFulfilledResult<KvLock>).value;
      expect(first).toMatchObject({ name: "job", held: true });
      expect(first.token).toMatch(/^[0-9a-f]{20}$/);
      await refused(kv.lock("job"), "LOCK_HELD", "job");

      await first.release();
      expect(first.held).toBe(false);
      expect(first.signal.aborted).toBe(true);
      await first.release();
      const second = hold(await kv.lock("job"));
      expect(second.held).toBe(true);
    });

    it("gives every acquisition a greater token than the ones before, in any lock", async () => {
      kv = await target.open();
      const tokens: string[] = [];
      for (const name of ["a", "b", "a", "c", "a"]) {
        const lock = await kv.lock(name);
        tokens.push(lock.token);
        await lock.release();
      }
      const written = await kv.set(["after"], 1);
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]! > tokens[i - 1]!).toBe(true);
      expect(written.versionstamp > tokens.at(-1)!).toBe(true);
    });

    it("frees a lock whose lease ran out, and tells its holder", async () => {
      kv = await target.open();
      const lapsed = hold(await kv.lock("lease", { ttl: 200, renew: false }));
      await refused(kv.lock("lease"), "LOCK_HELD", "lease");
      await sleep(300);
      expect(lapsed.held).toBe(false);
      expect(lapsed.signal.aborted).toBe(true);
      expect(lapsed.signal.reason).toMatchObject({ code: "LOCK_LOST" });
      const next = hold(await kv.lock("lease"));
      expect(next.token > lapsed.token).toBe(true);
      await expect(lapsed.renew()).rejects.toMatchObject({ code: "LOCK_LOST" });
      await lapsed.release();
      expect(next.held).toBe(true);
      await refused(kv.lock("lease"), "LOCK_HELD", "lease");
    });

    it("keeps a lock past its ttl while it renews itself, under the same token", async () => {
      kv = await target.open();
      const lock = hold(await kv.lock("renewed", { ttl: 200 }));
      await sleep(700);
      expect(lock.held).toBe(true);
      expect(lock.signal.aborted).toBe(false);
      await refused(kv.lock("renewed"), "LOCK_HELD", "renewed");
      expect((await kv.atomic().checkLock(lock).set(["fenced"], 1).commit()).ok).toBe(true);
      await lock.renew();
      expect(lock.held).toBe(true);
    });

    it.skipIf(!watches)("lets a waiting acquirer in when the holder releases", async () => {
      kv = await target.open();
      const first = await kv.lock("queue");
      const started = Date.now();
      setTimeout(() => void first.release(), 150);
      const second = hold(await kv.lock("queue", { wait: 5000 }));
      expect(Date.now() - started).toBeGreaterThanOrEqual(100);
      expect(first.held).toBe(false);
      expect(second.token > first.token).toBe(true);
    });

    it.skipIf(!watches)("lets a waiting acquirer in when the holder's lease runs out", async () => {
      kv = await target.open();
      const lapsed = hold(await kv.lock("queue", { ttl: 200, renew: false }));
      const next = hold(await kv.lock("queue", { wait: 5000 }));
      expect(next.token > lapsed.token).toBe(true);
      expect(lapsed.held).toBe(false);
    });

    it.skipIf(!watches)(
      "fails a waiting acquirer with LOCK_HELD once its wait is over",
      async () => {
        kv = await target.open();
        hold(await kv.lock("busy"));
        const started = Date.now();
        await refused(kv.lock("busy", { wait: 200 }), "LOCK_HELD", "busy");
        expect(Date.now() - started).toBeGreaterThanOrEqual(190);
      },
    );

    it("commits a fenced write while the lock is held, and refuses it once lost", async () => {
      kv = await target.open();
      const lock = hold(await kv.lock("fence", { ttl: 200, renew: false }));
      const ok = await kv.atomic().checkLock(lock).set(["data"], "holder 1").commit();
      expect(ok.ok).toBe(true);
      const byToken = { name: "fence", token: lock.token };
      expect((await kv.atomic().checkLock(byToken).sum(["n"], 1).commit()).ok).toBe(true);

      await sleep(300);
      // Lapsed, and nobody else took it yet: still refused.
      expect(await kv.atomic().checkLock(lock).set(["data"], "late").commit()).toEqual({
        ok: false,
      });
      const next = hold(await kv.lock("fence"));
      expect((await kv.atomic().checkLock(lock).set(["data"], "stale").commit()).ok).toBe(false);
      expect((await kv.atomic().checkLock(byToken).set(["data"], "stale").commit()).ok).toBe(false);
      expect((await kv.get(["data"])).value).toBe("holder 1");
      expect((await kv.get(["n"])).value).toBe(1);

      const fresh = { name: "fence", token: next.token };
      expect((await kv.atomic().checkLock(fresh).set(["data"], "holder 2").commit()).ok).toBe(true);
      await next.release();
      expect((await kv.atomic().checkLock(next).set(["data"], "after").commit()).ok).toBe(false);
      expect((await kv.get(["data"])).value).toBe("holder 2");
    });

    it("commits fenced writes that race the lock's own renewals", async () => {
      kv = await target.open();
      const lock = hold(await kv.lock("busy-holder", { ttl: 400 }));
      const results = await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          await sleep(i * 20);
          const renewal = lock.renew();
          const fenced = kv.atomic().checkLock(lock).sum(["fenced"], 1).commit();
          await renewal;
          return (await fenced).ok;
        }),
      );
      expect(results.every(Boolean)).toBe(true);
      expect((await kv.get(["fenced"])).value).toBe(10);
    });

    it("fences a transaction: it commits while held and fails with LOCK_LOST once lost", async () => {
      kv = await target.open();
      const lock = hold(await kv.lock("tx", { ttl: 200, renew: false }));
      const done = await kv.transaction(async (tx) => {
        const { value } = await tx.get<number>(["count"]);
        tx.checkLock(lock).set(["count"], (value ?? 0) + 1);
      });
      expect(done.ok).toBe(true);
      await sleep(300);
      const late = await kv.transaction((tx) => {
        tx.checkLock(lock).set(["count"], 100);
      });
      expect(late).toMatchObject({ ok: false, error: { code: "LOCK_LOST" } });
      expect((await kv.get(["count"])).value).toBe(1);
    });

    it("runs a function under a lock and releases it after, returned or thrown", async () => {
      kv = await target.open();
      const value = await kv.withLock("with", async (lock) => {
        expect(lock.held).toBe(true);
        await refused(kv.lock("with"), "LOCK_HELD", "with");
        return 42;
      });
      expect(value).toBe(42);
      await expect(
        kv.withLock("with", () => {
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      hold(await kv.lock("with"));
      await refused(
        kv.withLock("with", () => 1),
        "LOCK_HELD",
        "with",
      );
    });

    it("keeps the locks of each namespace apart, and out of its keys", async () => {
      kv = await target.open();
      const a = kv.namespace("a");
      const b = kv.namespace("b");
      const inA = hold(await a.lock("same"));
      hold(await b.lock("same"));
      hold(await kv.lock("same"));
      await refused(a.lock("same"), "LOCK_HELD", "same");
      expect(await a.count({ prefix: [] })).toBe(0);
      expect(await kv.count({ prefix: [] })).toBe(0);
      // A token carried to another namespace names that namespace's lock, not this one.
      const elsewhere = { name: "same", token: inA.token };
      expect((await b.atomic().checkLock(elsewhere).set(["x"], 1).commit()).ok).toBe(false);
      expect((await a.atomic().checkLock(elsewhere).set(["x"], 1).commit()).ok).toBe(true);
      // The lock itself may fence a write of another namespace of its database.
      expect((await b.atomic().checkLock(inA).set(["x"], 2).commit()).ok).toBe(true);
    });

    it("refuses bad names, options and fences with INVALID_ARGUMENT naming the field", async () => {
      kv = await target.open();
      await refused(kv.lock(""), "INVALID_ARGUMENT", "name");
      await refused(kv.lock(42 as unknown as string), "INVALID_ARGUMENT", "name");
      for (const ttl of [0, -1, 1.5, "100", Number.NaN, 2 ** 31])
        await refused(kv.lock("x", { ttl: ttl as number }), "INVALID_ARGUMENT", "ttl");
      for (const wait of [-1, 0.5, "10"])
        await refused(kv.lock("x", { wait: wait as number }), "INVALID_ARGUMENT", "wait");
      await refused(
        kv.lock("x", { renew: "yes" as unknown as boolean }),
        "INVALID_ARGUMENT",
        "renew",
      );
      await refused(
        kv.lock("x", { tll: 5 } as unknown as { ttl: number }),
        "INVALID_ARGUMENT",
        "tll",
      );
      await refused(kv.withLock("x", 5 as never), "INVALID_ARGUMENT", "function");
      expect(() => kv.atomic().checkLock({ name: "x", token: "nope" })).toThrow(
        expect.objectContaining({
          code: "INVALID_ARGUMENT",
          message: expect.stringContaining("token"),
        }),
      );
      expect(() => kv.atomic().checkLock({ name: "", token: "0".repeat(20) })).toThrow(
        expect.objectContaining({
          code: "INVALID_ARGUMENT",
          message: expect.stringContaining("name"),
        }),
      );
      expect(() => kv.atomic().checkLock(null as never)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }),
      );
      hold(await kv.lock("x"));
    });
  });
}
