import { afterEach, describe, expect, it } from "vitest";
import type { Kv, KvQueueMessage } from "../index.js";
import { type KvTarget, manualClock } from "./context.js";

export function queueSuite(target: KvTarget): void {
  describe("queues", () => {
    let kv: Kv;
    afterEach(async () => {
      await kv.close();
    });

    const open = async () => {
      const clock = manualClock();
      kv = await target.open({ clock: clock.now, sweepInterval: 0 });
      return clock;
    };

    const drain = async (name: string, limit = 100) => {
      const out: KvQueueMessage[] = [];
      for (;;) {
        const batch = await kv.queue(name).dequeueMany(limit, { visibilityTimeout: 1000 });
        if (batch.length === 0) return out;
        out.push(...batch);
      }
    };

    it("delivers FIFO within a priority, higher priorities first", async () => {
      await open();
      const q = kv.queue("jobs");
      for (const [value, priority] of [
        ["a", 0],
        ["b", 5],
        ["c", 0],
        ["d", 5],
        ["e", -1],
      ] as const) {
        await q.enqueue(value, { priority });
      }
      expect((await drain("jobs")).map((m) => m.value)).toEqual(["b", "d", "a", "c", "e"]);
    });

    it("holds delayed messages until they are due", async () => {
      const clock = await open();
      const q = kv.queue("later");
      await q.enqueue("soon", { delay: 100 });
      await q.enqueue("now");
      expect((await drain("later")).map((m) => m.value)).toEqual(["now"]);
      expect(await q.stats()).toMatchObject({
        pending: 0,
        delayed: 1,
        inFlight: 1,
        nextAt: clock.now() + 100,
      });
      clock.advance(100);
      expect((await drain("later")).map((m) => m.value)).toEqual(["soon"]);
    });

    it("acks with the lock token and refuses wrong or stale tokens", async () => {
      const clock = await open();
      const q = kv.queue("t");
      await q.enqueue({ n: 1 }, { backoffSchedule: [0, 0] });
      const message = (await q.dequeue({ visibilityTimeout: 50 }))!;
      expect(message).toMatchObject({ value: { n: 1 }, attempts: 1, maxAttempts: 3 });
      await expect(q.ack("not-a-token")).rejects.toMatchObject({ code: "INVALID_TOKEN" });
      clock.advance(50);
      await expect(q.ack(message.token)).rejects.toMatchObject({ code: "INVALID_TOKEN" });
      const again = (await q.dequeue())!;
      expect(again.attempts).toBe(2);
      await q.ack(again.token);
      await expect(q.ack(again.token)).rejects.toMatchObject({ code: "INVALID_TOKEN" });
      expect(await q.stats()).toMatchObject({ pending: 0, delayed: 0, inFlight: 0, dead: 0 });
    });

    it("retries a nacked message on its backoff schedule, then dead-letters it and writes keysIfUndelivered", async () => {
      const clock = await open();
      const q = kv.queue("flaky");
      const { id } = await q.enqueue("payload", {
        backoffSchedule: [10, 20],
        keysIfUndelivered: [
          ["failed", 1],
          ["failed", 2],
        ],
      });
      let message = (await q.dequeue())!;
      await q.nack(message.token, { error: "boom" });
      expect(await q.dequeue()).toBeNull();
      clock.advance(10);
      message = (await q.dequeue())!;
      expect(message.attempts).toBe(2);
      await q.nack(message.token);
      clock.advance(19);
      expect(await q.dequeue()).toBeNull();
      clock.advance(1);
      message = (await q.dequeue())!;
      expect(message.attempts).toBe(3);
      await q.nack(message.token, { error: "final" });
      expect(await q.dequeue()).toBeNull();
      expect(await q.stats()).toMatchObject({ pending: 0, delayed: 0, inFlight: 0, dead: 1 });
      expect(await q.dlq.get(id)).toMatchObject({
        id,
        value: "payload",
        attempts: 3,
        error: "final",
      });
      expect(
        (
          await kv.getMany([
            ["failed", 1],
            ["failed", 2],
          ])
        ).map((e) => e.value),
      ).toEqual(["payload", "payload"]);
    });

    it("counts an expired lease as a delivery, so a message that keeps killing workers is dead-lettered", async () => {
      const clock = await open();
      const q = kv.queue("poison");
      await q.enqueue("poison", { backoffSchedule: [0], keysIfUndelivered: [["poisoned"]] });
      for (let i = 0; i < 2; i++) {
        expect(await q.dequeue({ visibilityTimeout: 100 })).not.toBeNull();
        clock.advance(100);
      }
      expect(await q.dequeue()).toBeNull();
      expect((await q.dlq.list())[0]).toMatchObject({
        value: "poison",
        attempts: 2,
        error: "lock expired",
      });
      expect((await kv.get(["poisoned"])).value).toBe("poison");
    });

    it("redelivers an expired lease once its backoff has run from the lease's expiry, never counting it in flight", async () => {
      const clock = await open();
      const q = kv.queue("crashed");
      await q.enqueue("job", { backoffSchedule: [200] });
      const leasedAt = clock.now();
      expect(await q.dequeue({ visibilityTimeout: 100 })).not.toBeNull();
      clock.advance(150);
      expect(await q.stats()).toMatchObject({
        pending: 0,
        delayed: 1,
        inFlight: 0,
        nextAt: leasedAt + 300,
      });
      expect(await q.dequeue()).toBeNull();
      clock.advance(150);
      expect(await q.stats()).toMatchObject({ pending: 1, delayed: 0, inFlight: 0, nextAt: null });
      expect(await q.dequeue()).toMatchObject({ value: "job", attempts: 2 });
    });

    it("counts a message whose last lease expired as dead as of that expiry", async () => {
      const clock = await open();
      const q = kv.queue("last");
      await q.enqueue("job", { backoffSchedule: [] });
      const leasedAt = clock.now();
      expect(await q.dequeue({ visibilityTimeout: 100 })).not.toBeNull();
      clock.advance(2000);
      expect(await q.stats()).toMatchObject({
        pending: 0,
        delayed: 0,
        inFlight: 0,
        dead: 1,
        nextAt: null,
      });
      expect(await q.dequeue()).toBeNull();
      expect((await q.dlq.list())[0]).toMatchObject({
        value: "job",
        failedAt: leasedAt + 100,
        error: "lock expired",
      });
    });

    it("extends a lease", async () => {
      const clock = await open();
      const q = kv.queue("long");
      await q.enqueue(1);
      const message = (await q.dequeue({ visibilityTimeout: 100 }))!;
      clock.advance(90);
      await q.extend(message.token, 100);
      clock.advance(90);
      expect(await q.dequeue()).toBeNull();
      await q.ack(message.token);
    });

    it("drops a duplicate enqueue inside the dedup window and says so", async () => {
      const clock = await open();
      const q = kv.queue("dedup");
      const first = await q.enqueue("one", { dedupKey: "order-1", dedupWindow: 1000 });
      const second = await q.enqueue("two", { dedupKey: "order-1", dedupWindow: 1000 });
      expect(first.deduplicated).toBe(false);
      expect(second).toMatchObject({ deduplicated: true, id: first.id });
      clock.advance(1000);
      expect((await q.enqueue("three", { dedupKey: "order-1" })).deduplicated).toBe(false);
      expect((await drain("dedup")).map((m) => m.value)).toEqual(["one", "three"]);
    });

    it("refuses an enqueue or listen option it does not know, naming it", async () => {
      await open();
      await expect(kv.enqueue("job", { dealy: 10 } as never)).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
        message: expect.stringContaining('"dealy"'),
      });
      await expect(kv.listenQueue(() => {}, { concurency: 2 } as never)).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      expect((await kv.queue("default").stats()).pending).toBe(0);
    });

    it("refuses a dedup key with NUL in it, or of no or too many characters, on every driver", async () => {
      await open();
      const q = kv.queue("dedup");
      for (const dedupKey of ["a\0b", "", "k".repeat(257)]) {
        await expect(q.enqueue("x", { dedupKey })).rejects.toMatchObject({
          code: "INVALID_ARGUMENT",
        });
        expect(() => kv.atomic().enqueue("x", { dedupKey })).toThrow(
          expect.objectContaining({ code: "INVALID_ARGUMENT" }),
        );
      }
      expect((await q.stats()).pending).toBe(0);
    });

    it("enqueues atomically with the rest of an operation, or not at all", async () => {
      await open();
      const { versionstamp } = await kv.set(["stock"], 1);
      const ok = await kv
        .atomic()
        .check({ key: ["stock"], versionstamp })
        .set(["stock"], 0)
        .enqueue("ship", { queue: "orders" })
        .commit();
      expect(ok.ok && ok.enqueued?.length).toBe(1);
      const failed = await kv
        .atomic()
        .check({ key: ["stock"], versionstamp })
        .enqueue("ship again", { queue: "orders" })
        .commit();
      expect(failed.ok).toBe(false);
      const tx = await kv.transaction((t) => {
        t.enqueue("from tx", { queue: "orders" });
        throw new Error("abort");
      });
      expect(tx.ok).toBe(false);
      expect((await drain("orders")).map((m) => m.value)).toEqual(["ship"]);
    });

    it("requeues, deletes and purges dead letters", async () => {
      await open();
      const q = kv.queue("dl");
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await q.enqueue(i, { backoffSchedule: [] })).id);
      for (const message of await drain("dl")) await q.nack(message.token);
      expect((await q.dlq.list()).map((m) => m.value)).toEqual([0, 1, 2]);
      expect((await q.dlq.list({ limit: 1, after: ids[0] })).map((m) => m.value)).toEqual([1]);
      expect(await q.dlq.requeue(ids[0]!)).toBe(1);
      const revived = (await q.dequeue())!;
      expect(revived).toMatchObject({ value: 0, attempts: 1 });
      await q.ack(revived.token);
      expect(await q.dlq.delete(ids[1]!)).toBe(1);
      expect(await q.dlq.purge()).toBe(1);
      expect(await q.stats()).toMatchObject({ dead: 0, pending: 0 });
    });

    it("lists dead letters by the time they failed, oldest first", async () => {
      const clock = await open();
      const q = kv.queue("order");
      await q.enqueue("first enqueued", { backoffSchedule: [] });
      await q.enqueue("second enqueued", { backoffSchedule: [] });
      const [first, second] = await q.dequeueMany(2);
      await q.nack(second!.token);
      clock.advance(1);
      await q.nack(first!.token);
      expect((await q.dlq.list()).map((m) => m.value)).toEqual([
        "second enqueued",
        "first enqueued",
      ]);
      expect((await q.dlq.list({ after: second!.id })).map((m) => m.value)).toEqual([
        "first enqueued",
      ]);
    });

    it("keeps queues of different namespaces apart", async () => {
      await open();
      await kv.namespace("a").queue("q").enqueue("for a");
      expect(await kv.namespace("b").queue("q").dequeue()).toBeNull();
      expect((await kv.namespace("a").queue("q").dequeue())?.value).toBe("for a");
    });

    it("drops a namespace's queues with it: pending, leased and dead messages and dedup keys", async () => {
      await open();
      const q = kv.namespace("gone").queue("q");
      await q.enqueue("leased");
      await q.enqueue("dead", { backoffSchedule: [] });
      const leased = (await q.dequeue())!;
      await q.nack((await q.dequeue())!.token);
      await q.enqueue("pending", { dedupKey: "once" });
      await q.enqueue("delayed", { delay: 1000 });
      await kv.namespace("kept").queue("q").enqueue("stays");
      expect(await q.stats()).toMatchObject({ pending: 1, delayed: 1, inFlight: 1, dead: 1 });
      expect(await kv.dropNamespace("gone")).toBe(0);
      expect(await q.stats()).toEqual({
        pending: 0,
        delayed: 0,
        inFlight: 0,
        dead: 0,
        nextAt: null,
      });
      expect(await q.dlq.list()).toEqual([]);
      await expect(q.ack(leased.token)).rejects.toMatchObject({ code: "INVALID_TOKEN" });
      expect(await q.enqueue("again", { dedupKey: "once" })).toMatchObject({ deduplicated: false });
      expect((await kv.namespace("kept").queue("q").dequeue())?.value).toBe("stays");
    });

    it("listens: acks what the handler finishes, retries what it throws, up to its concurrency", async () => {
      kv = await target.open({ sweepInterval: 0 });
      const seen: unknown[] = [];
      let running = 0;
      let peak = 0;
      let failedOnce = false;
      const controller = new AbortController();
      let listening: Promise<void> | undefined;
      const done = new Promise<void>((resolve) => {
        listening = kv.listenQueue(
          async (value) => {
            running++;
            peak = Math.max(peak, running);
            await new Promise((r) => setTimeout(r, 5));
            running--;
            if (value === 3 && !failedOnce) {
              failedOnce = true;
              throw new Error("transient");
            }
            seen.push(value);
            if (seen.length === 6) resolve();
          },
          { concurrency: 3, signal: controller.signal },
        );
      });
      for (let i = 0; i < 6; i++) await kv.enqueue(i, { backoffSchedule: [1] });
      await done;
      controller.abort();
      await listening;
      expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5]);
      expect(peak).toBeGreaterThan(1);
      expect(peak).toBeLessThanOrEqual(3);
      expect(await kv.queue("default").stats()).toMatchObject({ pending: 0, inFlight: 0, dead: 0 });
    });

    it("validates its input", async () => {
      await open();
      const q = kv.queue("v");
      await expect(q.enqueue(1, { delay: -1 })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      await expect(q.enqueue(1, { delay: 31 * 24 * 3600 * 1000 })).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      await expect(q.enqueue(1, { backoffSchedule: [1.5] })).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      await expect(q.enqueue(() => 1)).rejects.toMatchObject({ code: "INVALID_VALUE" });
      expect(() => kv.queue("")).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
      expect(await q.stats()).toMatchObject({ pending: 0, delayed: 0 });
    });
  });
}
