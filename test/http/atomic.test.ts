/** POST /api/atomic: checks, mutations, placeholders. */
import { describe, expect, it } from "vitest";
import {
  apiServer,
  expectError,
  expectRefused,
  hostileServer,
  json,
  scoped,
  UUID_V7,
  VERSIONSTAMP,
} from "./helpers.js";

describe("HTTP API", () => {
  const server = apiServer();

  describe("atomic", () => {
    const api = scoped(server, "atomic");

    it("writes nothing when a check fails (409 CHECK_FAILED)", async () => {
      const versionstamp = await api.put("acct", { value: 100 });
      const failed = await api.atomic({
        checks: [{ key: ["acct"], versionstamp: null }],
        mutations: [
          { type: "set", key: ["acct"], value: 0 },
          { type: "set", key: ["side-effect"], value: true },
        ],
      });
      expectError(failed, 409, "CHECK_FAILED");
      expect((await api.get("acct")).value).toBe(100);
      expect((await api.get("side-effect")).value).toBeNull();

      const stale = await api.atomic({
        checks: [{ key: ["acct"], versionstamp: "00000000000000000001" }],
        mutations: [],
      });
      expectError(stale, 409, "CHECK_FAILED");

      const ok = await api.atomic({
        checks: [
          { key: ["acct"], versionstamp },
          { key: ["absent"], versionstamp: null },
        ],
        mutations: [{ type: "set", key: ["acct"], value: 50 }],
      });
      expect(ok.status, ok.text).toBe(200);
      expect(ok.json).toEqual({
        ok: true,
        versionstamp: expect.stringMatching(VERSIONSTAMP),
        uuids: [],
      });
      expect(ok.json.versionstamp > versionstamp).toBe(true);
      expect((await api.get("acct")).value).toBe(50);
    });

    it("sums, mins and maxes KvU64 values given as {$u64}", async () => {
      const u64 = (n: string) => ({ $u64: n });
      await api.atomic({ mutations: [{ type: "sum", key: ["hits"], value: u64("5") }] });
      await api.atomic({ mutations: [{ type: "sum", key: ["hits"], value: u64("5") }] });
      expect((await api.get("hits")).value).toEqual(u64("10"));

      await api.atomic({
        mutations: [
          { type: "min", key: ["low"], value: u64("9") },
          { type: "max", key: ["high"], value: u64("1") },
        ],
      });
      await api.atomic({
        mutations: [
          { type: "min", key: ["low"], value: u64("3") },
          { type: "min", key: ["low"], value: u64("7") },
          { type: "max", key: ["high"], value: u64("8") },
          { type: "max", key: ["high"], value: u64("2") },
        ],
      });
      expect((await api.get("low")).value).toEqual(u64("3"));
      expect((await api.get("high")).value).toEqual(u64("8"));

      await api.put("wrap", { value: u64("18446744073709551615") });
      await api.atomic({ mutations: [{ type: "sum", key: ["wrap"], value: u64("2") }] });
      expect((await api.get("wrap")).value).toEqual(u64("1"));
    });

    it("appends and prepends to arrays", async () => {
      await api.put("list", { value: [1] });
      await api.atomic({
        mutations: [
          { type: "append", key: ["list"], value: [2, { $bigint: "3" }] },
          { type: "prepend", key: ["list"], value: [0] },
        ],
      });
      expect((await api.get("list")).value).toEqual([0, 1, 2, { $bigint: "3" }]);
    });

    it("resolves {$uuid} placeholders in keys and values to the commit's UUIDv7s", async () => {
      const reply = await api.atomic({
        mutations: [
          {
            type: "set",
            key: ["orders", { $uuid: 0 }],
            value: { id: { $uuid: 0 }, refs: [{ $uuid: 1 }] },
          },
          { type: "set", key: ["by-ref", { $uuid: 1 }], value: { $uuid: 0 } },
        ],
      });
      expect(reply.status, reply.text).toBe(200);
      const [first, second] = reply.json.uuids;
      expect(reply.json.uuids).toHaveLength(2);
      expect(first).toMatch(UUID_V7);
      expect(second).toMatch(UUID_V7);
      expect(first).not.toBe(second);
      expect((await api.kv().get(["orders", first])).value).toEqual({ id: first, refs: [second] });
      expect((await api.kv().get(["by-ref", second])).value).toBe(first);
    });

    it("applies per-mutation expireIn, tags and comments, and deletes", async () => {
      await api.put("gone", { value: 1 });
      const reply = await api.atomic({
        mutations: [
          {
            type: "set",
            key: ["tagged"],
            value: 1,
            tags: ["a"],
            modifiedBy: "ada",
            comment: "why",
            expireIn: 60_000,
          },
          { type: "delete", key: ["gone"] },
        ],
      });
      expect(reply.status).toBe(200);
      const entry = await api.get("tagged", "?metadata=true");
      expect(entry.metadata).toMatchObject({ tags: ["a"], modifiedBy: "ada", comment: "why" });
      expect(entry.metadata.expiresAt).toBeGreaterThan(Date.now() + 50_000);
      expect((await api.get("gone")).value).toBeNull();
    });
  });
});

describe("malformed and hostile requests", () => {
  const { call, refused } = hostileServer();

  describe("atomic", () => {
    const atomic = (body: unknown, status: number, codes: string | string[]) =>
      refused("/api/atomic", json(body), status, codes);

    it("names the mutation and the key part it refuses", async () => {
      const reply = await call(
        "/api/atomic",
        json({
          mutations: [
            { type: "set", key: ["ok"], value: 1 },
            { type: "set", key: ["u", { $uuid: 0 }, null], value: 1 },
          ],
        }),
      );
      expectRefused(reply, 400, "INVALID_KEY");
      expect(reply.json.error.message).toMatch(/^mutation 1: key part 2 is null/);
    });

    it("refuses an $error value that is not a name and a message", async () => {
      for (const value of [{ $error: 5 }, { $error: { name: 5, message: "m" } }, { $error: {} }]) {
        await refused("/api/keys/e", { method: "PUT", ...json({ value }) }, 400, "INVALID_VALUE");
      }
    });

    it("refuses malformed checks and mutations", async () => {
      await atomic({ checks: {} }, 400, "INVALID_REQUEST");
      await atomic({ mutations: {} }, 400, "INVALID_REQUEST");
      await atomic({ checks: [{ key: ["a"] }] }, 400, "INVALID_REQUEST");
      await atomic({ checks: [{ versionstamp: null }] }, 400, "INVALID_REQUEST");
      await atomic({ mutations: [{ key: ["a"], value: 1 }] }, 400, "INVALID_REQUEST");
      await atomic({ mutations: [{ type: "set", value: 1 }] }, 400, "INVALID_REQUEST");
      await atomic({ mutations: [{ type: "boom", key: ["a"] }] }, 400, "INVALID_REQUEST");
      await atomic({ mutations: [{ type: 1, key: ["a"] }] }, 400, "INVALID_REQUEST");
      await atomic({ mutations: [{ type: "set", key: ["a"] }] }, 400, [
        "INVALID_MUTATION",
        "INVALID_REQUEST",
      ]);
      await atomic(
        { mutations: [{ type: "set", key: ["a"], value: 1, expireIn: 0 }] },
        400,
        "INVALID_REQUEST",
      );
    });

    it("refuses bad versionstamps in checks", async () => {
      for (const versionstamp of [
        "zz",
        12,
        "",
        "0000000000000000000G",
        "0000000000000000000A",
        "000000000000000000001",
        true,
        {},
      ]) {
        await atomic({ checks: [{ key: ["existing"], versionstamp }] }, 400, [
          "INVALID_REQUEST",
          "INVALID_VERSIONSTAMP",
        ]);
      }
    });

    it("refuses too many checks and mutations", async () => {
      const mutations = Array.from({ length: 11 }, (_, i) => ({
        type: "set",
        key: ["m", i],
        value: i,
      }));
      await atomic({ mutations }, 400, "TOO_MANY_MUTATIONS");
      const checks = Array.from({ length: 6 }, (_, i) => ({ key: ["c", i], versionstamp: null }));
      await atomic({ checks }, 400, "TOO_MANY_CHECKS");
      await refused(
        "/api/delete",
        json({ keys: Array.from({ length: 11 }, (_, i) => ["m", i]) }),
        400,
        "TOO_MANY_MUTATIONS",
      );
    });

    it("refuses sum/min/max on anything but KvU64, and append/prepend on anything but arrays", async () => {
      const one = { $u64: "1" };
      await atomic(
        { mutations: [{ type: "sum", key: ["text"], value: one }] },
        400,
        "INVALID_MUTATION",
      );
      await atomic(
        { mutations: [{ type: "min", key: ["list"], value: one }] },
        400,
        "INVALID_MUTATION",
      );
      await atomic(
        { mutations: [{ type: "max", key: ["existing"], value: one }] },
        400,
        "INVALID_MUTATION",
      );
      await atomic(
        {
          mutations: [
            { type: "sum", key: ["counter"], value: one },
            { type: "sum", key: ["text"], value: one },
          ],
        },
        400,
        "INVALID_MUTATION",
      );
      for (const value of [5, "5", { $bigint: "5" }, null, [1]]) {
        await atomic(
          { mutations: [{ type: "sum", key: ["counter"], value }] },
          400,
          "INVALID_MUTATION",
        );
      }
      await atomic({ mutations: [{ type: "sum", key: ["counter"] }] }, 400, "INVALID_MUTATION");
      await atomic(
        { mutations: [{ type: "sum", key: ["counter"], value: { $u64: "18446744073709551616" } }] },
        400,
        ["INVALID_VALUE", "INVALID_MUTATION"],
      );
      await atomic(
        { mutations: [{ type: "append", key: ["counter"], value: [1] }] },
        400,
        "INVALID_MUTATION",
      );
      await atomic(
        { mutations: [{ type: "prepend", key: ["text"], value: [1] }] },
        400,
        "INVALID_MUTATION",
      );
      await atomic(
        { mutations: [{ type: "append", key: ["list"], value: 5 }] },
        400,
        "INVALID_MUTATION",
      );
      await atomic(
        { mutations: [{ type: "append", key: ["list"], value: { $set: [1] } }] },
        400,
        "INVALID_MUTATION",
      );
    });

    it("refuses $uuid placeholders out of range", async () => {
      for (const index of [-1, 101, 1e9]) {
        await atomic(
          { mutations: [{ type: "set", key: ["u", { $uuid: index }], value: 1 }] },
          400,
          "INVALID_MUTATION",
        );
        await atomic(
          { mutations: [{ type: "set", key: ["u"], value: { $uuid: index } }] },
          400,
          "INVALID_MUTATION",
        );
      }
    });
  });
});
