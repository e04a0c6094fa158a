import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Kv, KvErrorCode } from "../index.js";
import { collect, type KvTarget } from "./context.js";

export function badInputSuite(target: KvTarget): void {
  describe("bad input", () => {
    let kv: Kv;
    let snapshot: unknown[];
    beforeEach(async () => {
      kv = await target.open({ limits: { maxValueSize: 1024, maxMutations: 10, maxChecks: 5 } });
      await kv.set(["existing"], "untouched");
      snapshot = await collect(kv.list({ prefix: [] }));
    });
    afterEach(async () => {
      // Whatever failed, the database is exactly as it was.
      expect(await collect(kv.list({ prefix: [] }))).toEqual(snapshot);
      await kv.close();
    });

    const rejects = async (
      promise: () => Promise<unknown>,
      code: KvErrorCode,
      message?: RegExp,
    ) => {
      let error: unknown;
      try {
        await promise();
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ name: "KvError", code });
      if (message) expect((error as Error).message).toMatch(message);
    };

    it("refuses an option it does not know, naming it, so a typo never drops a TTL", async () => {
      const typo = { expirein: 5 } as never;
      await rejects(() => kv.set(["a"], 1, typo), "INVALID_ARGUMENT", /"expirein"/);
      await rejects(() => kv.atomic().set(["a"], 1, typo).commit(), "INVALID_ARGUMENT");
      await rejects(
        () =>
          kv
            .transaction((tx) => tx.set(["a"], 1, typo))
            .then((r) => {
              if (!r.ok) throw r.error;
            }),
        "INVALID_ARGUMENT",
      );
      await rejects(
        () => kv.delete(["existing"], { comment: "x", tag: ["y"] } as never),
        "INVALID_ARGUMENT",
        /"tag"/,
      );
      await rejects(() => kv.get(["a"], { metdata: true } as never), "INVALID_ARGUMENT");
      await rejects(
        () => collect(kv.list({ prefix: [] }, { limt: 1 } as never)),
        "INVALID_ARGUMENT",
      );
      await rejects(
        () => kv.paginate({ prefix: [] }, { batchSize: 1 } as never),
        "INVALID_ARGUMENT",
      );
    });

    it("refuses invalid key parts, naming the part", async () => {
      for (const part of [{}, undefined, null, Symbol("s"), () => 1, [1], new Date()]) {
        await rejects(() => kv.set(["ok", part as never], 1), "INVALID_KEY", /key part 1/);
        await rejects(() => kv.get([part as never]), "INVALID_KEY");
      }
      await rejects(() => kv.set("not-an-array" as never, 1), "INVALID_KEY");
      await rejects(() => kv.set([], 1), "INVALID_KEY", /at least one part/);
      await rejects(() => kv.get([]), "INVALID_KEY");
    });

    it("refuses oversized keys and values", async () => {
      await rejects(() => kv.set(["k", "x".repeat(2048)], 1), "KEY_TOO_LARGE", /2048/);
      await rejects(() => kv.set(["big"], "x".repeat(2000)), "VALUE_TOO_LARGE", /1024/);
      await rejects(
        () => kv.atomic().set(["a"], 1).set(["big"], new Uint8Array(5000)).commit(),
        "VALUE_TOO_LARGE",
      );
    });

    it("refuses values structured clone cannot carry", async () => {
      await rejects(() => kv.set(["f"], () => 1), "INVALID_VALUE");
      await rejects(() => kv.set(["f"], { nested: Symbol("x") }), "INVALID_VALUE");
    });

    it("refuses bad expireIn", async () => {
      const pastLastDate = Number.MAX_SAFE_INTEGER;
      for (const expireIn of [
        -1,
        0,
        1.5,
        Number.NaN,
        "10",
        Number.POSITIVE_INFINITY,
        pastLastDate,
      ]) {
        await rejects(
          () => kv.set(["t"], 1, { expireIn: expireIn as number }),
          "INVALID_ARGUMENT",
          /expireIn/,
        );
      }
    });

    it("refuses bad versionstamps and too many operations", async () => {
      for (const versionstamp of ["abc", "0000000000000000000G", 12, undefined]) {
        await rejects(
          async () =>
            kv
              .atomic()
              .check({ key: ["existing"], versionstamp: versionstamp as string })
              .commit(),
          "INVALID_VERSIONSTAMP",
        );
      }
      await rejects(async () => {
        const op = kv.atomic();
        for (let i = 0; i < 11; i++) op.set(["m", i], i);
      }, "TOO_MANY_MUTATIONS");
      await rejects(async () => {
        const op = kv.atomic();
        for (let i = 0; i < 6; i++) op.check({ key: ["c", i], versionstamp: null });
      }, "TOO_MANY_CHECKS");
    });

    it("refuses bad metadata", async () => {
      await rejects(() => kv.set(["x"], 1, { tags: "t" as never }), "INVALID_ARGUMENT", /tags/);
      await rejects(
        () => kv.set(["x"], 1, { modifiedBy: 5 as never }),
        "INVALID_ARGUMENT",
        /modifiedBy/,
      );
      await rejects(
        () => kv.set(["x"], 1, { comment: "c".repeat(5000) }),
        "INVALID_ARGUMENT",
        /comment/,
      );
    });

    it("refuses an append that would grow a value past the limit", async () => {
      await rejects(async () => {
        for (let i = 0; i < 10; i++)
          await kv
            .atomic()
            .append(["grow"], ["x".repeat(200)])
            .commit();
      }, "VALUE_TOO_LARGE");
      expect(JSON.stringify((await kv.get(["grow"])).value).length).toBeLessThanOrEqual(1024);
      await kv.delete(["grow"]);
    });

    it("refuses bad limits when opening", async () => {
      await expect(target.open({ limits: { maxValueSize: -1 } })).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      await expect(target.open({ history: { depth: 0 } })).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
    });
  });
}
