import { afterEach, describe, expect, it } from "vitest";
import type { Kv, KvEntryMaybe } from "../index.js";
import { type KvTarget, nextWithin } from "./context.js";

const next = <T>(reader: ReadableStreamDefaultReader<T>, ms = 2000) =>
  nextWithin(reader, ms, "watch event");

export function watchSuite(target: KvTarget): void {
  describe("watch", () => {
    let kv: Kv;
    afterEach(async () => {
      await kv.close();
    });

    it("emits the current state, then every change of the watched keys", async () => {
      kv = await target.open();
      await kv.set(["w", "a"], 1);
      const reader = kv
        .watch([
          ["w", "a"],
          ["w", "b"],
        ])
        .getReader();
      const first = await next(reader);
      expect(first.map((e: KvEntryMaybe) => e.value)).toEqual([1, null]);
      await kv.set(["w", "unrelated"], 0);
      const { versionstamp } = await kv.set(["w", "b"], 2);
      const second = await next(reader);
      expect(second.map((e: KvEntryMaybe) => e.value)).toEqual([1, 2]);
      expect(second[1]?.versionstamp).toBe(versionstamp);
      await kv.delete(["w", "a"]);
      expect((await next(reader)).map((e: KvEntryMaybe) => e.value)).toEqual([null, 2]);
      await reader.cancel();
    });

    it("always delivers the latest state to a slow reader", async () => {
      kv = await target.open();
      const reader = kv.watch([["n"]]).getReader();
      await next(reader);
      for (let i = 1; i <= 50; i++) await kv.set(["n"], i);
      let last: unknown;
      while (last !== 50) last = (await next(reader))[0]?.value;
      expect(last).toBe(50);
      await reader.cancel();
    });

    it("shows a reader that keeps up the state of each write acknowledged before the next", async () => {
      kv = await target.open();
      const reader = kv.watch([["seq"]]).getReader();
      expect((await next(reader))[0]?.value).toBeNull();
      await kv.set(["seq"], 1);
      await kv.set(["seq"], 2);
      await kv.delete(["seq"]);
      const seen = [await next(reader), await next(reader), await next(reader)];
      expect(seen.map((entries) => entries[0]?.value)).toEqual([1, 2, null]);
      await reader.cancel();
    });

    it("emits null when a watched entry expires", async () => {
      kv = await target.open({ sweepInterval: 0 });
      await kv.set(["ttl"], "soon", { expireIn: 60 });
      const reader = kv.watch([["ttl"]]).getReader();
      expect((await next(reader))[0]?.value).toBe("soon");
      expect((await next(reader))[0]?.value).toBeNull();
      await reader.cancel();
    });

    it("streams the commits under a prefix, in order, and resumes after a versionstamp", async () => {
      kv = await target.open();
      await kv.set(["orders", 0], "before");
      // Without `after` a stream starts at the head it reads when it opens, which over a network
      // may come after the writes below; pinning the position keeps the test deterministic.
      const reader = kv
        .watchPrefix(["orders"], { after: await kv.currentVersionstamp() })
        .getReader();
      // A batch holds the keys' entries as they are when it is read, so each write is read
      // back before the next one changes the same key.
      await kv.set(["orders", 1], "a");
      const first = await next(reader);
      expect(first.entries.map((e) => [e.key, e.value])).toEqual([[["orders", 1], "a"]]);
      await kv.set(["elsewhere"], "ignored");
      await kv.atomic().set(["orders", 2], "b").set(["orders", 3], "c").commit();
      await kv.delete(["orders", 1]);
      const second = await next(reader);
      expect(second.entries.map((e) => e.value)).toEqual(["b", "c"]);
      expect(second.versionstamp > first.versionstamp).toBe(true);
      const third = await next(reader);
      expect(third.entries).toEqual([{ key: ["orders", 1], value: null, versionstamp: null }]);
      await reader.cancel();

      await kv.set(["orders", 4], "d");
      const resumed = kv.watchPrefix(["orders"], { after: first.versionstamp }).getReader();
      const replay = [await next(resumed), await next(resumed), await next(resumed)];
      expect(replay.map((b) => b.versionstamp)).toEqual([
        second.versionstamp,
        third.versionstamp,
        expect.any(String),
      ]);
      expect(replay[2]!.entries.map((e) => e.value)).toEqual(["d"]);
      await resumed.cancel();
    });

    it("resets a prefix watch resumed after a versionstamp the database never reached", async () => {
      kv = await target.open();
      await kv.set(["orders", 1], "a");
      const head = await kv.currentVersionstamp();
      const reader = kv.watchPrefix(["orders"], { after: "0000ffffffffffff0000" }).getReader();
      const reset = await next(reader);
      expect(reset).toEqual({ versionstamp: head, entries: [], reset: true });
      await kv.set(["orders", 2], "b");
      expect((await next(reader)).entries.map((e) => e.value)).toEqual(["b"]);
      await reader.cancel();
    });

    it("ends open streams when the database closes", async () => {
      kv = await target.open();
      const reader = kv.watch([["x"]]).getReader();
      await next(reader);
      const pending = reader.read();
      await kv.close();
      expect((await pending).done).toBe(true);
    });
  });
}
