import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { Kv } from "../index.js";
import { type KvTarget, manualClock } from "./context.js";

export function metadataSuite(target: KvTarget): void {
  describe("metadata and history", () => {
    let kv: Kv;
    afterEach(async () => {
      await kv.close();
    });

    it("keeps metadata only when asked", async () => {
      kv = await target.open();
      await kv.set(["m"], 1);
      expect((await kv.get(["m"])).metadata).toBeUndefined();
      expect((await kv.get(["m"], { metadata: true })).metadata).toBeDefined();
    });

    it("tracks version, times, tags, author, comment and the value's hash", async () => {
      const clock = manualClock();
      kv = await target.open({ clock: clock.now });
      await kv.set(["doc"], { v: 1 }, { tags: ["draft"], modifiedBy: "ann", comment: "create" });
      const created = clock.now();
      clock.advance(10);
      await kv.set(["doc"], { v: 2 }, { modifiedBy: "bob" });
      const { metadata } = await kv.get(["doc"], { metadata: true });
      expect(metadata).toMatchObject({
        version: 2,
        createdAt: created,
        updatedAt: created + 10,
        tags: ["draft"],
        modifiedBy: "bob",
        comment: null,
        expiresAt: null,
      });
      const expectedHash = createHash("sha256")
        .update(Buffer.concat([Buffer.of(4), Buffer.from(JSON.stringify({ v: 2 }))]))
        .digest("hex");
      expect(metadata?.dataHash).toBe(expectedHash);
      await kv.set(["doc"], { v: 3 }, { tags: [] });
      expect((await kv.get(["doc"], { metadata: true })).metadata?.tags).toEqual([]);
    });

    it("returns metadata from list and getMany too", async () => {
      kv = await target.open();
      await kv.set(["l", 1], "a", { tags: ["t"] });
      const [entry] = await kv.getMany([["l", 1]], { metadata: true });
      expect(entry.metadata?.tags).toEqual(["t"]);
      for await (const e of kv.list({ prefix: ["l"] }, { metadata: true }))
        expect(e.metadata?.version).toBe(1);
    });

    it("restarts the version after a delete", async () => {
      kv = await target.open();
      await kv.set(["r"], 1);
      await kv.set(["r"], 2);
      await kv.delete(["r"]);
      await kv.set(["r"], 3);
      expect((await kv.get(["r"], { metadata: true })).metadata?.version).toBe(1);
    });

    it("lists revisions newest first, bounded by the history depth", async () => {
      kv = await target.open({ history: { depth: 3 } });
      for (let i = 1; i <= 5; i++) await kv.set(["h"], i, { comment: `v${i}` });
      const history = await kv.history(["h"]);
      expect(history.map((r) => [r.version, r.comment])).toEqual([
        [5, "v5"],
        [4, "v4"],
        [3, "v3"],
      ]);
      expect(history[0]?.value).toBeUndefined();
      expect(history[0]!.versionstamp > history[1]!.versionstamp).toBe(true);
      expect(await kv.history(["h"], { limit: 1 })).toHaveLength(1);
    });

    it("keeps past values, and deletions, under the configured prefixes", async () => {
      kv = await target.open({ history: { keepValues: [["audit"]] } });
      await kv.set(["audit", "x"], { n: 1 });
      await kv.set(["audit", "x"], { n: 2 }, { modifiedBy: "eve" });
      await kv.delete(["audit", "x"], { modifiedBy: "mallory", comment: "cleanup" });
      await kv.set(["plain"], 1);
      const history = await kv.history(["audit", "x"]);
      expect(
        history.map((r) => [r.version, r.dataHash === null, r.value ?? null, r.modifiedBy]),
      ).toEqual([
        [3, true, null, "mallory"],
        [2, false, { n: 2 }, "eve"],
        [1, false, { n: 1 }, null],
      ]);
      expect((await kv.history(["plain"]))[0]?.value).toBeUndefined();
    });

    it("forgets the history of a deleted key outside those prefixes", async () => {
      kv = await target.open();
      await kv.set(["gone"], 1);
      await kv.delete(["gone"]);
      expect(await kv.history(["gone"])).toEqual([]);
    });
  });
}
