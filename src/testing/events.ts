import { afterEach, describe, expect, it } from "vitest";
import { ANY, type Kv, KvError, type KvEvent, type KvProgress, REST } from "../index.js";
import { type KvTarget, manualClock, nextWithin } from "./context.js";

/** Collects a subscription's events; `take(n)` waits until `n` have arrived. */
function recorder() {
  const events: KvEvent[] = [];
  let wake = () => {};
  return {
    events,
    listener: (event: KvEvent) => {
      events.push(event);
      wake();
    },
    async take(n: number, ms = 3000): Promise<KvEvent[]> {
      const deadline = Date.now() + ms;
      while (events.length < n) {
        if (Date.now() > deadline) throw new Error(`got ${events.length} of ${n} events`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
      }
      return events.splice(0, n);
    },
  };
}

const summary = (events: readonly KvEvent[]) =>
  events.map((e) => [e.type, e.key, e.previous?.value ?? null, e.entry?.value ?? null]);

const read = <T>(reader: ReadableStreamDefaultReader<T>, ms = 3000) =>
  nextWithin(reader, ms, "event");

export function eventsSuite(target: KvTarget): void {
  describe("events", () => {
    let kv: Kv;
    afterEach(async () => {
      await kv.close();
    });

    it("reports sets and deletes with the entry before and after, metadata included", async () => {
      kv = await target.open();
      const seen = recorder();
      const stop = kv.subscribe(["users", ANY, "settings"], seen.listener);
      await kv.set(["users", "ada", "settings"], { theme: "dark" }, { tags: ["ui"] });
      const second = await kv.set(["users", "ada", "settings"], { theme: "light" });
      await kv.set(["users", "ada", "profile"], "not matched");
      await kv.delete(["users", "ada", "settings"]);
      await kv.delete(["users", "nobody", "settings"]);
      const [created, updated, deleted] = await seen.take(3);
      expect(summary([created!, updated!, deleted!])).toEqual([
        ["set", ["users", "ada", "settings"], null, { theme: "dark" }],
        ["set", ["users", "ada", "settings"], { theme: "dark" }, { theme: "light" }],
        ["delete", ["users", "ada", "settings"], { theme: "light" }, null],
      ]);
      expect(updated!.versionstamp).toBe(second.versionstamp);
      expect(updated!.entry!.versionstamp).toBe(second.versionstamp);
      expect(updated!.previous!.versionstamp).toBe(created!.versionstamp);
      expect(created!.entry!.metadata).toMatchObject({ version: 1, tags: ["ui"] });
      expect(updated!.entry!.metadata).toMatchObject({ version: 2, tags: ["ui"] });
      expect(updated!.previous!.metadata).toMatchObject({ version: 1 });
      stop();
      await kv.set(["users", "ada", "settings"], "after unsubscribe");
      await kv.set(["sync"], 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(seen.events).toEqual([]);
    });

    it("matches REST against zero or more parts and ANY against exactly one of any type", async () => {
      kv = await target.open();
      const rest = recorder();
      const any = recorder();
      kv.subscribe(["users", REST], rest.listener);
      kv.subscribe(["users", ANY], any.listener);
      await kv.set(["users"], 0);
      await kv.set(["users", 7n], 1);
      await kv.set(["users", "a", "b"], 2);
      await kv.set(["usersX"], 3);
      await kv.set(["other", "users"], 4);
      expect((await rest.take(3)).map((e) => e.key)).toEqual([
        ["users"],
        ["users", 7n],
        ["users", "a", "b"],
      ]);
      expect((await any.take(1)).map((e) => e.key)).toEqual([["users", 7n]]);
      await kv.set(["end"], 0);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(rest.events.length + any.events.length).toBe(0);
    });

    it("gives one event per key of a commit, in key order, then commits in order", async () => {
      kv = await target.open();
      const seen = recorder();
      kv.subscribe(["c", REST], seen.listener);
      const first = await kv
        .atomic()
        .set(["c", "b"], 2)
        .set(["c", "a"], 1)
        .set(["c", "c"], 3)
        .delete(["c", "absent"])
        .commit();
      const second = await kv.atomic().delete(["c", "a"]).set(["c", "b"], 20).commit();
      const events = await seen.take(5);
      expect(events.map((e) => [e.key[1], e.versionstamp])).toEqual([
        ["a", first.ok && first.versionstamp],
        ["b", first.ok && first.versionstamp],
        ["c", first.ok && first.versionstamp],
        ["a", second.ok && second.versionstamp],
        ["b", second.ok && second.versionstamp],
      ]);
    });

    it("resumes after a versionstamp with no gap and no duplicate at the seam", async () => {
      kv = await target.open();
      const stamps: string[] = [];
      for (let i = 0; i < 30; i++) stamps.push((await kv.set(["r", i % 3], i)).versionstamp);
      const seen = recorder();
      kv.subscribe(["r", REST], seen.listener, { since: stamps[9]! });
      const writes: Promise<unknown>[] = [];
      for (let i = 30; i < 60; i++) writes.push(kv.set(["r", i % 3], i));
      await Promise.all(writes);
      const events = await seen.take(50);
      expect(events.map((e) => e.entry?.value)).toEqual(
        Array.from({ length: 50 }, (_, i) => i + 10),
      );
      const versionstamps = events.map((e) => e.versionstamp);
      expect([...versionstamps].sort()).toEqual(versionstamps);
      expect(new Set(versionstamps).size).toBe(50);
      expect(events[0]!.previous?.value).toBe(7);
    });

    it("refuses a resume point the change log no longer holds, naming the oldest it does", async () => {
      kv = await target.open({ changeLog: { size: 10 } });
      const first = await kv.set(["x"], 0);
      for (let i = 1; i <= 60; i++) await kv.set(["x"], i);
      const failed = new Promise<KvError>((resolve) => {
        kv.subscribe(["x"], () => {}, { since: first.versionstamp, onError: resolve });
      });
      const error = await failed;
      expect(error.code).toBe("COMPACTED");
      const oldest = error.details?.oldest;
      expect(oldest).toMatch(/^[0-9a-f]{20}$/);
      expect(oldest! > first.versionstamp).toBe(true);
      const seen = recorder();
      kv.subscribe(["x"], seen.listener, { since: oldest! });
      const replayed = await seen.take(1);
      expect(replayed[0]!.versionstamp > oldest!).toBe(true);
    });

    it("keeps commits younger than changeLog.age past changeLog.size, and prunes them once older", async () => {
      const clock = manualClock();
      kv = await target.open({ changeLog: { size: 10, age: 60_000 }, clock: clock.now });
      const first = await kv.set(["y"], 0);
      for (let i = 1; i <= 60; i++) await kv.set(["y"], i);
      const young = recorder();
      kv.subscribe(["y"], young.listener, { since: first.versionstamp });
      expect((await young.take(60)).map((e) => e.entry?.value)).toEqual(
        Array.from({ length: 60 }, (_, i) => i + 1),
      );
      clock.advance(120_000);
      for (let i = 61; i <= 120; i++) await kv.set(["y"], i);
      const failed = new Promise<KvError>((resolve) => {
        kv.subscribe(["y"], () => {}, { since: first.versionstamp, onError: resolve });
      });
      expect((await failed).code).toBe("COMPACTED");
    });

    it("reports an expiry when the sweeper removes the entry", async () => {
      const clock = manualClock();
      kv = await target.open({ clock: clock.now, sweepInterval: 0 });
      const seen = recorder();
      kv.subscribe(["session", REST], seen.listener);
      await kv.set(["session", 1], "token", { expireIn: 1000 });
      expect(summary(await seen.take(1))).toEqual([["set", ["session", 1], null, "token"]]);
      clock.advance(2000);
      await kv.sweepExpired();
      const [expired] = await seen.take(1);
      expect(expired!.type).toBe("expire");
      expect(expired!.entry).toBeNull();
      expect(expired!.previous?.value).toBe("token");
    });

    it("confines a subscription to its namespace", async () => {
      kv = await target.open();
      const a = kv.namespace("a");
      const seen = recorder();
      a.subscribe([REST], seen.listener);
      await kv.namespace("b").set(["k"], "b");
      await kv.set(["k"], "root");
      await a.set(["k"], "a");
      const [event] = await seen.take(1);
      expect(event!.key).toEqual(["k"]);
      expect(event!.entry?.value).toBe("a");
      expect(seen.events).toEqual([]);
    });

    it("streams events and progress markers from kv.events", async () => {
      kv = await target.open();
      const reader = kv.events(["s", REST], { progressInterval: 50 }).getReader();
      const { versionstamp } = await kv.set(["s", 1], "one");
      const event = (await read(reader)) as KvEvent;
      expect(event).toMatchObject({ type: "set", key: ["s", 1], versionstamp });
      let progress: KvEvent | KvProgress;
      do progress = await read(reader);
      while (progress.type !== "progress");
      expect(progress.versionstamp >= versionstamp).toBe(true);
      await reader.cancel();
    });

    it("fails a stream whose reader falls behind, saying where to resume", async () => {
      kv = await target.open();
      const reader = kv.events(["b", REST], { bufferSize: 5 }).getReader();
      const stamps: string[] = [];
      for (let i = 0; i < 10; i++) stamps.push((await kv.set(["b", i], i)).versionstamp);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const values: unknown[] = [];
      const error = await (async () => {
        try {
          for (;;) values.push(((await read(reader)) as KvEvent).entry?.value);
        } catch (error) {
          return error as KvError;
        }
      })();
      expect(error).toBeInstanceOf(KvError);
      expect(error.code).toBe("SLOW_CONSUMER");
      expect(values).toEqual([0, 1, 2, 3, 4]);
      expect(error.details?.resume).toBe(stamps[4]);
      const seen = recorder();
      kv.subscribe(["b", REST], seen.listener, { since: error.details!.resume! });
      expect((await seen.take(5)).map((e) => e.entry?.value)).toEqual([5, 6, 7, 8, 9]);
    });

    it("refuses malformed patterns with INVALID_PATTERN naming the part", async () => {
      kv = await target.open();
      const refuse = (pattern: unknown) => {
        try {
          kv.subscribe(pattern as never, () => {});
        } catch (error) {
          expect(error).toBeInstanceOf(KvError);
          expect((error as KvError).code).toBe("INVALID_PATTERN");
          return (error as KvError).message;
        }
        throw new Error("accepted");
      };
      expect(refuse(["a", REST, "b"])).toMatch(/part 1/);
      expect(refuse([])).toMatch(/at least one part/);
      expect(refuse(["a", {}])).toMatch(/part 1/);
      expect(refuse(["a", Number.NaN])).toMatch(/part 1/);
      expect(refuse("users/#")).toMatch(/array/);
      expect(() => kv.subscribe(["a"], () => {}, { since: "nope" })).toThrow(/versionstamp/);
      expect(() => kv.events(["a"], { bufferSize: 0 })).toThrow(/bufferSize/);
    });
  });
}
