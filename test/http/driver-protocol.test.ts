/** The driver protocol the remote driver speaks: /api/driver/*. */
import { describe, expect, it } from "vitest";
import {
  A_WRITER,
  expectRefused,
  hostileServer,
  json,
  MAX_KEY,
  MAX_VALUE,
  send,
  serve,
  stored,
} from "./helpers.js";

describe("malformed and hostile requests", () => {
  const { call, refused } = hostileServer();

  describe("driver routes", () => {
    const inA = stored("a", "x");
    const inB = stored("b", "x");
    const setA = { t: "set", k: inA, v: { e: "json", d: "1" } };

    it("refuses garbage reads", async () => {
      const read = (body: unknown, status: number, codes: string | string[]) =>
        refused("/api/driver/read", json(body), status, codes);
      await read({}, 400, "INVALID_REQUEST");
      await read({ ranges: 5 }, 400, "INVALID_REQUEST");
      await read({ ranges: [null] }, 400, "INVALID_REQUEST");
      await read({ ranges: [5] }, 400, "INVALID_REQUEST");
      await read({ ranges: [{ limit: 1 }] }, 400, "INVALID_REQUEST");
      await read({ ranges: [{ limit: -1, start: inA, end: inA }] }, 400, "INVALID_REQUEST");
      await read({ ranges: [{ limit: 1001, start: inA, end: inA }] }, 400, "INVALID_REQUEST");
      await read({ ranges: [{ limit: "1", start: inA, end: inA }] }, 400, "INVALID_REQUEST");
      await read({ ranges: [{ limit: 1, start: "!!", end: inA }] }, 400, "INVALID_REQUEST");
      await read({ ranges: [{ limit: 1, start: inA, end: 5 }] }, 400, "INVALID_REQUEST");
      await read({ ranges: [{ limit: 1, start: "AA", end: "AA" }] }, 400, "INVALID_KEY");
      await read({ ranges: [{ limit: 1, start: "", end: "" }] }, 400, "INVALID_KEY");
      await read({ ranges: Array.from({ length: 1001 }, () => ({})) }, 400, "INVALID_REQUEST");
      await refused("/api/driver/count", json({ start: "!!", end: inA }), 400, "INVALID_REQUEST");
      await refused("/api/driver/history", json({ key: inA }), 400, "INVALID_REQUEST");
      await refused("/api/driver/history", json({ key: "!!", limit: 1 }), 400, "INVALID_REQUEST");
      await refused(
        "/api/driver/history",
        json({ key: stored("a", "x".repeat(MAX_KEY + 1)), limit: 1 }),
        413,
        "KEY_TOO_LARGE",
      );
      await refused("/api/driver/changes", json({ after: "x" }), 400, "INVALID_VERSIONSTAMP");
    });

    it("refuses garbage write batches", async () => {
      const write = (body: unknown) =>
        refused("/api/driver/write", json(body), 400, "INVALID_REQUEST");
      await write({});
      await write({ writes: 5 });
      await write({ writes: "x" });
      await write({ writes: Array.from({ length: 1001 }, () => ({})) });
    });

    it("answers each garbage write in a batch with its own error, and writes none of them", async () => {
      const garbage: [unknown, string][] = [
        [{ checks: 5 }, "INVALID_REQUEST"],
        [{ mutations: "x" }, "INVALID_REQUEST"],
        [{ mutations: [null] }, "INVALID_REQUEST"],
        [{ mutations: [{ t: "set", k: "!!", v: { e: "json", d: "1" } }] }, "INVALID_REQUEST"],
        [{ mutations: [{ t: "set", k: "AA", v: { e: "json", d: "1" } }] }, "INVALID_KEY"],
        [{ mutations: [{ ...setA, v: { e: "json", d: "{" } }] }, "INVALID_VALUE"],
        [{ mutations: [{ ...setA, v: { e: "v8", d: "AAAA" } }] }, "INVALID_VALUE"],
        [{ mutations: [{ ...setA, v: { e: "u64", d: "AAAA" } }] }, "INVALID_VALUE"],
        [{ mutations: [{ ...setA, v: { e: "zip", d: "" } }] }, "INVALID_REQUEST"],
        [{ mutations: [{ ...setA, v: null }] }, "INVALID_REQUEST"],
        [
          {
            mutations: [
              { ...setA, v: { e: "json", d: JSON.stringify("x".repeat(MAX_VALUE + 1)) } },
            ],
          },
          "VALUE_TOO_LARGE",
        ],
        [{ mutations: [{ ...setA, t: "zap" }] }, "INVALID_MUTATION"],
        [{ mutations: [{ ...setA, t: "append", v: { e: "json", d: "5" } }] }, "INVALID_MUTATION"],
        [{ mutations: [{ t: "sum", k: inA, o: "abc" }] }, "INVALID_MUTATION"],
        [{ mutations: [{ t: "sum", k: inA, o: "18446744073709551616" }] }, "INVALID_VALUE"],
        [{ mutations: [{ ...setA, x: "soon" }] }, "INVALID_REQUEST"],
        [{ mutations: [{ ...setA, k: stored("a", "x".repeat(MAX_KEY + 1)) }] }, "KEY_TOO_LARGE"],
        [{ checks: [null] }, "INVALID_VERSIONSTAMP"],
        [{ checks: [{ k: inA, vs: "zz" }] }, "INVALID_VERSIONSTAMP"],
        [{ checks: Array.from({ length: 6 }, () => ({ k: inA, vs: null })) }, "TOO_MANY_CHECKS"],
        [{ mutations: Array.from({ length: 11 }, () => setA) }, "TOO_MANY_MUTATIONS"],
      ];
      const reply = await call(
        "/api/driver/write",
        json({ writes: garbage.map(([write]) => write) }),
      );
      expect(reply.status, reply.text).toBe(200);
      expect(reply.json.results.map((r: { error?: { code: string } }) => r.error?.code)).toEqual(
        garbage.map(([, code]) => code),
      );
    });

    // Bug: Guard.write reads `raw ?? {}`, so a write that is null, a number or a string is taken
    // as an empty write and commits (a new versionstamp, an entry in the change log).
    it("refuses a write that is not an object instead of committing it", async () => {
      const reply = await call("/api/driver/write", json({ writes: [null, 5, "x"] }));
      expect(reply.json.results.every((r: { error?: unknown }) => r.error !== undefined)).toBe(
        true,
      );
    });

    it("refuses keys and ranges outside the token's namespace with 403 FORBIDDEN", async () => {
      const asA = (path: string, body: unknown) => call(path, { token: A_WRITER, ...json(body) });
      expect(
        (await asA("/api/driver/read", { ranges: [{ start: inA, end: `${inA}_w`, limit: 1 }] }))
          .status,
      ).toBe(200);
      expectRefused(
        await asA("/api/driver/read", { ranges: [{ start: inB, end: inB, limit: 1 }] }),
        403,
        "FORBIDDEN",
      );
      expectRefused(
        await asA("/api/driver/read", {
          ranges: [{ start: stored("a"), end: stored("b"), limit: 10 }],
        }),
        403,
        "FORBIDDEN",
      );
      expectRefused(
        await asA("/api/driver/read", { ranges: [{ start: stored(""), end: "_w", limit: 10 }] }),
        403,
        "FORBIDDEN",
      );
      expectRefused(await asA("/api/driver/count", { start: inB, end: inB }), 403, "FORBIDDEN");
      expectRefused(await asA("/api/driver/history", { key: inB, limit: 1 }), 403, "FORBIDDEN");

      // Writes travel in batches, so a forbidden write is refused on its own, inside a 200.
      const write = await asA("/api/driver/write", {
        writes: [
          { mutations: [{ t: "set", k: inB, v: { e: "json", d: '"hijacked"' } }] },
          { checks: [{ k: inB, vs: null }] },
        ],
      });
      expect(write.status).toBe(200);
      expect(write.json.results.map((r: { error?: { code: string } }) => r.error?.code)).toEqual([
        "FORBIDDEN",
        "FORBIDDEN",
      ]);
    });

    it("drops a namespace only for an admin, and only by a whole namespace's prefix", async () => {
      expectRefused(
        await call("/api/driver/purge", { token: A_WRITER, ...json({ prefix: stored("a") }) }),
        403,
        "FORBIDDEN",
      );
      expectRefused(
        await call("/api/driver/purge", json({ prefix: inA })),
        400,
        "INVALID_ARGUMENT",
      );
      expectRefused(await call("/api/driver/purge", json({ prefix: 5 })), 400, "INVALID_REQUEST");
    });

    it("confines driver keys to the request's namespace when the namespace comes from a header", async () => {
      const byHeader = await serve({ namespaceFrom: "header" });
      try {
        await byHeader.kv.namespace("b").set(["x"], "in b");
        const read = await send(byHeader.url, "/api/driver/read", {
          namespace: "a",
          ...json({ ranges: [{ start: inB, end: inB, limit: 1 }] }),
        });
        expectRefused(read, 403, "FORBIDDEN");
        const write = await send(byHeader.url, "/api/driver/write", {
          namespace: "a",
          ...json({ writes: [{ mutations: [{ t: "delete", k: inB }] }] }),
        });
        expect(write.json.results[0].error.code).toBe("FORBIDDEN");
        expect((await byHeader.kv.namespace("b").get(["x"])).value).toBe("in b");
      } finally {
        await byHeader.close();
      }
    });
  });
});
