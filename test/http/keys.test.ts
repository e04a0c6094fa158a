/** Single keys by path, POST /api/get and /api/delete, and the tagged JSON forms of values. */
import { describe, expect, it } from "vitest";
import { KvU64 } from "../../src/index.js";
import { keyToPath } from "../../src/wire/json.js";
import {
  apiServer,
  expectRefused,
  hostileServer,
  json,
  muted,
  q,
  query,
  scoped,
  sleep,
  VERSIONSTAMP,
} from "./helpers.js";

describe("HTTP API", () => {
  const server = apiServer();

  describe("single keys", () => {
    const api = scoped(server, "keys");

    it("writes, reads and deletes a key by path", async () => {
      const versionstamp = await api.put("users/~n:42", { value: { name: "Ada" } });
      expect(versionstamp).toMatch(VERSIONSTAMP);
      expect(await api.get("users/~n:42")).toEqual({
        key: ["users", 42],
        value: { name: "Ada" },
        versionstamp,
      });

      const deleted = await api.call("/api/keys/users/~n:42", { method: "DELETE" });
      expect([deleted.status, deleted.json]).toEqual([200, { ok: true }]);
      expect(await api.get("users/~n:42")).toEqual({
        key: ["users", 42],
        value: null,
        versionstamp: null,
      });
      // Deleting an absent key is not an error.
      expect((await api.call("/api/keys/users/~n:42", { method: "DELETE" })).status).toBe(200);
    });

    it("maps every path segment form to its key part", async () => {
      const path =
        "s/~s:/~s:~x/caf%C3%A9/a%20b/~n:-1.5/~n:NaN/~n:-0/~i:18446744073709551616/~x:00ff/~t/~f/42";
      await api.put(path, { value: 1 });
      const { key } = await api.get(path);
      expect(key).toEqual([
        "s",
        "",
        "~x",
        "café",
        "a b",
        -1.5,
        { $number: "NaN" },
        { $number: "-0" },
        { $bigint: "18446744073709551616" },
        { $bytes: "AP8" },
        true,
        false,
        "42",
      ]);
      const stored = ["s", "", "~x", "café", "a b", -1.5, Number.NaN, -0, 2n ** 64n];
      expect(
        (await api.kv().get([...stored, new Uint8Array([0, 255]), true, false, "42"])).value,
      ).toBe(1);
    });

    // Bug: Hono percent-decodes the {key} parameter before keyFromPath splits and decodes it
    // again, so "%2F" splits a part in two and "%25" is decoded twice.
    it("round-trips string parts holding '/' and '%' through the documented path form", async () => {
      const key = ["paths", "a/b", "100%", "%41"];
      const reply = await api.call(`/api/keys/${keyToPath(key)}`, {
        method: "PUT",
        body: { value: "slash" },
      });
      expect(reply.status, reply.text).toBe(200);
      expect((await api.kv().get(key)).value).toBe("slash");
    });

    it("keeps tags, modifiedBy and comment as metadata, and counts versions", async () => {
      const before = Date.now();
      await api.put("meta", {
        value: "v1",
        tags: ["admin", "ops"],
        modifiedBy: "ada",
        comment: "first",
      });
      await api.put("meta", { value: "v2", modifiedBy: "bob" });
      const entry = await api.get("meta", "?metadata=true");
      expect(entry.value).toBe("v2");
      expect(entry.metadata).toEqual({
        version: 2,
        createdAt: expect.any(Number),
        updatedAt: expect.any(Number),
        expiresAt: null,
        tags: ["admin", "ops"],
        modifiedBy: "bob",
        comment: null,
        dataHash: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
      expect(entry.metadata.createdAt).toBeGreaterThanOrEqual(before - 1000);
      expect(await api.get("meta", "?metadata=1")).toHaveProperty("metadata.version", 2);
      expect(await api.get("meta", "?metadata=false")).not.toHaveProperty("metadata");
      expect(await api.get("meta")).not.toHaveProperty("metadata");
    });

    it("expires a key after expireIn milliseconds", async () => {
      await api.put("ttl", { value: "soon gone", expireIn: 150 });
      const entry = await api.get("ttl", "?metadata=true");
      expect(entry.value).toBe("soon gone");
      expect(entry.metadata.expiresAt).toBeGreaterThan(Date.now());
      await sleep(250);
      expect((await api.get("ttl")).value).toBeNull();
    });

    it("records revisions newest first, with values under keepValues prefixes", async () => {
      await api.put("audit/~n:1", { value: { n: 1 }, modifiedBy: "ada", comment: "create" });
      await api.put("audit/~n:1", { value: { n: 2 }, modifiedBy: "bob" });
      const deleted = await api.call(
        `/api/keys/audit/~n:1${query({ modifiedBy: "eve", comment: "gone" })}`,
        { method: "DELETE" },
      );
      expect(deleted.status).toBe(200);

      const { revisions } = (await api.call("/api/history/audit/~n:1")).json;
      expect(revisions.map((r: { version: number }) => r.version)).toEqual([3, 2, 1]);
      expect(revisions[0]).toMatchObject({ modifiedBy: "eve", comment: "gone", dataHash: null });
      expect(revisions[0].value ?? null).toBeNull();
      expect(revisions[1]).toMatchObject({ modifiedBy: "bob", comment: null, value: { n: 2 } });
      expect(revisions[2]).toMatchObject({ modifiedBy: "ada", comment: "create", value: { n: 1 } });
      for (const r of revisions) expect(r.versionstamp).toMatch(VERSIONSTAMP);

      expect((await api.call("/api/history/audit/~n:1?limit=1")).json.revisions).toHaveLength(1);
    });

    it("records revisions without values elsewhere", async () => {
      await api.put("plain", { value: 1 });
      await api.put("plain", { value: 2 });
      const { revisions } = (await api.call("/api/history/plain")).json;
      expect(revisions).toHaveLength(2);
      expect(revisions[0]).not.toHaveProperty("value");
      expect((await api.call("/api/history/never-written")).json).toEqual({ revisions: [] });
    });

    it("reads many keys from one snapshot with POST /api/get", async () => {
      await api.put("many/~n:1", { value: "one", tags: ["t"] });
      await api.put("many/~i:2", { value: "two" });
      const reply = await api.call("/api/get", {
        body: {
          keys: [
            ["many", 1],
            ["many", { $bigint: "2" }],
            ["many", 3],
          ],
          metadata: true,
        },
      });
      expect(reply.status).toBe(200);
      const [one, two, three] = reply.json.entries;
      expect(one).toMatchObject({ key: ["many", 1], value: "one", metadata: { tags: ["t"] } });
      expect(two).toMatchObject({ key: ["many", { $bigint: "2" }], value: "two" });
      expect(three).toEqual({ key: ["many", 3], value: null, versionstamp: null });
      expect(one.versionstamp).not.toBe(two.versionstamp);
    });

    it("deletes many keys in one commit with POST /api/delete", async () => {
      await api.put("bulk/a", { value: 1 });
      await api.put("bulk/b", { value: 2 });
      const reply = await api.call("/api/delete", {
        body: {
          keys: [
            ["bulk", "a"],
            ["bulk", "b"],
            ["bulk", "absent"],
          ],
          modifiedBy: "ops",
        },
      });
      expect(reply.status).toBe(200);
      expect(reply.json).toEqual({ ok: true, versionstamp: expect.stringMatching(VERSIONSTAMP) });
      expect(await api.kv().count({ prefix: ["bulk"] })).toBe(0);
    });
  });

  describe("values", () => {
    const api = scoped(server, "values");
    const tagged = {
      string: "text",
      number: 1.5,
      bool: false,
      nil: null,
      list: [1, "two", [3]],
      date: { $date: "2024-01-01T00:00:00.000Z" },
      invalidDate: { $date: null },
      big: { $bigint: "-123456789012345678901234567890" },
      nan: { $number: "NaN" },
      negZero: { $number: "-0" },
      inf: { $number: "-Infinity" },
      undef: { $undefined: true },
      bytes: { $bytes: "AP8" },
      ints: { $typed: { type: "Int32Array", data: "AQAAAP____8" } },
      map: {
        $map: [
          [{ $bigint: "1" }, "one"],
          ["k", { $set: [1, 2] }],
        ],
      },
      set: { $set: ["a", { $date: "2000-01-01T00:00:00.000Z" }] },
      re: { $regexp: { source: "^a+$", flags: "gi" } },
      literal: { $object: { $date: "not a tag" } },
    };

    it("round-trips every tagged form losslessly", async () => {
      await api.put("all", { value: tagged });
      expect((await api.get("all")).value).toEqual(tagged);
    });

    it("stores tagged forms as the values they stand for", async () => {
      await api.put("all", { value: tagged });
      const { value } = (await api.kv().get<Record<string, unknown>>(["all"])) as {
        value: Record<string, unknown>;
      };
      expect(value.date).toEqual(new Date("2024-01-01T00:00:00.000Z"));
      expect(value.big).toBe(-123456789012345678901234567890n);
      expect(Object.is(value.negZero, -0)).toBe(true);
      expect(value.nan).toBeNaN();
      expect("undef" in value && value.undef === undefined).toBe(true);
      expect(value.bytes).toEqual(new Uint8Array([0, 255]));
      expect(value.ints).toEqual(new Int32Array([1, -1]));
      expect(value.map).toEqual(
        new Map<unknown, unknown>([
          [1n, "one"],
          ["k", new Set([1, 2])],
        ]),
      );
      expect(value.re).toEqual(/^a+$/gi);
      expect(value.literal).toEqual({ $date: "not a tag" });
    });

    it("stores a KvU64 nested inside an object as its plain fields, as Deno KV does", async () => {
      await api.put("nested-u64", { value: { hits: { $u64: "5" } } });
      expect((await api.get("nested-u64")).value).toEqual({ hits: { value: { $bigint: "5" } } });
    });

    // Bug: valueToJson recurses once per level, so reading a value nested a few thousand levels
    // deep (which the embedded API stores without complaint) overflows the stack: 500.
    it("never answers 5xx for a deeply nested stored value", () =>
      muted(async () => {
        let deep: unknown = 1;
        for (let i = 0; i < 2500; i++) deep = [deep];
        await api.kv().set(["deep"], deep);
        try {
          expect((await api.call("/api/keys/deep")).status).toBeLessThan(500);
        } finally {
          await api.kv().delete(["deep"]);
        }
      }));

    it("serves values written by the embedded API in their tagged forms", async () => {
      await api.kv().set(["embedded"], new Map([["when", new Date(0)]]));
      await api.kv().set(["bytes"], new Uint8Array([1, 2, 3]));
      await api.kv().set(["counter"], new KvU64(5n));
      expect((await api.get("embedded")).value).toEqual({
        $map: [["when", { $date: "1970-01-01T00:00:00.000Z" }]],
      });
      expect((await api.get("bytes")).value).toEqual({ $bytes: "AQID" });
      expect((await api.get("counter")).value).toEqual({ $u64: "5" });
    });

    it("takes top-level tagged values", async () => {
      for (const value of [
        { $bytes: "AQID" },
        { $u64: "0" },
        { $bigint: "7" },
        "plain",
        0,
        null,
        [],
        { $undefined: true },
      ]) {
        await api.put("top", { value });
        expect((await api.get("top")).value).toEqual(value);
      }
    });
  });
});

describe("malformed and hostile requests", () => {
  const { call, refused } = hostileServer();

  describe("keys", () => {
    const badSegments = [
      "~q:1",
      "~n:abc",
      "~n:",
      "~x:zz",
      "~x:f",
      "~i:1.5",
      "~",
      "a//b",
      "a/",
      "%ZZ",
      "a/%E0%A4%A",
    ];

    it.each([
      ["GET", "/api/keys/"],
      ["PUT", "/api/keys/"],
      ["DELETE", "/api/keys/"],
      ["GET", "/api/history/"],
    ])("%s %s<path> refuses bad key path segments with INVALID_KEY", async (method, route) => {
      for (const segment of badSegments) {
        await refused(
          `${route}${segment}`,
          { method, ...(method === "PUT" && json({ value: 1 })) },
          400,
          "INVALID_KEY",
        );
      }
    });

    it.each([
      ["/api/list", "prefix"],
      ["/api/list", "start"],
      ["/api/count", "prefix"],
      ["/api/watch", "key"],
      ["/api/watch/poll", "key"],
      ["/api/watch/prefix", "prefix"],
      ["/api/watch/prefix/poll?after=00000000000000000001&timeout=0", "prefix"],
    ])("GET %s refuses bad key paths in ?%s= with INVALID_KEY", async (route, param) => {
      const other = param === "start" ? "&end=items" : "";
      for (const segment of badSegments) {
        await refused(
          `${route}${route.includes("?") ? "&" : "?"}${param}=${q(segment)}${other}`,
          {},
          400,
          "INVALID_KEY",
        );
      }
    });

    // Bug: without `after`, /api/watch/prefix/poll answers the current position before it
    // parses the prefix, so any prefix, however malformed, gets a 200.
    it("GET /api/watch/prefix/poll refuses a bad prefix even without after", async () => {
      await refused(`/api/watch/prefix/poll?prefix=${q("~q:1")}`, {}, 400, "INVALID_KEY");
    });

    it("refuses keys that are not arrays of valid parts", async () => {
      const keyCodes = ["INVALID_REQUEST", "INVALID_KEY"];
      for (const key of [
        "a",
        { 0: "a" },
        null,
        5,
        [null],
        [{}],
        [["nested"]],
        [{ $foo: 1 }],
        [{ $bigint: "x" }],
        [{ $bytes: 1 }],
        [{ $number: "1" }],
      ]) {
        await refused("/api/get", json({ keys: [key] }), 400, keyCodes);
        await refused("/api/delete", json({ keys: [key] }), 400, keyCodes);
        await refused("/api/list", json({ prefix: key }), 400, keyCodes);
        await refused("/api/count", json({ prefix: key }), 400, keyCodes);
        await refused("/api/delete-range", json({ prefix: key }), 400, keyCodes);
        await refused(
          "/api/atomic",
          json({ mutations: [{ type: "set", key, value: 1 }] }),
          400,
          keyCodes,
        );
        await refused(
          "/api/atomic",
          json({ checks: [{ key, versionstamp: null }] }),
          400,
          keyCodes,
        );
      }
      await refused("/api/get", json({ keys: "a" }), 400, "INVALID_REQUEST");
      await refused("/api/get", json({ keys: [] }), 400, "INVALID_REQUEST");
      await refused("/api/get", json({}), 400, "INVALID_REQUEST");
      await refused("/api/delete", json({}), 400, "INVALID_REQUEST");
      await refused("/api/get", json({ keys: [["a"]], metadata: "yes" }), 400, "INVALID_REQUEST");
    });

    it("says what a key part may be, and what the watch routes need", async () => {
      const part = await call("/api/get", json({ keys: [["a", null]] }));
      expectRefused(part, 400, "INVALID_REQUEST");
      expect(part.json.error.message).toMatch(/^keys\.0\.1: a key part is a string, number/);
      const missing = await call("/api/watch", {});
      expectRefused(missing, 400, "INVALID_REQUEST");
      expect(missing.json.error.message).toContain("?key=<path>");
    });

    it("refuses more keys than maxReadKeys in one read", async () => {
      await refused("/api/get", json({ keys: Array.from({ length: 6 }, (_, i) => [i]) }), 400, [
        "INVALID_ARGUMENT",
        "LIMIT_EXCEEDED",
      ]);
    });
  });
});
