import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { Agent } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KvU64, openKv } from "../../src/index.js";
import { type RunningServer, startServer, type TokenGrant } from "../../src/server/index.js";
import { keyToPath } from "../../src/wire/json.js";
import {
  muted,
  type Reply,
  rawExchange,
  type Send,
  send,
  serve,
  sleep,
  sse,
  tempDir,
} from "./helpers.js";

const VERSIONSTAMP = /^[0-9a-f]{20}$/;
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = join(ROOT, "src/cli/index.ts");

const query = (params: Record<string, string | string[]>) => {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, item);
  }
  return `?${search}`;
};

const valueAt = async (base: string, path: string, options: Send = {}) =>
  (await send(base, `/api/keys/${path}`, options)).json.value;

function expectError(reply: Reply, status: number, code: string): void {
  expect({ status: reply.status, code: reply.json?.error?.code }, reply.text).toEqual({
    status,
    code,
  });
  expect(reply.json.error.message).toEqual(expect.any(String));
}

/** Requests confined to one namespace, so each block of tests starts from an empty key space. */
function scoped(server: () => RunningServer, namespace: string) {
  const call = (path: string, options: Send = {}) =>
    send(server().url, path, { namespace, ...options });
  return {
    call,
    kv: () => server().kv.namespace(namespace),
    put: async (path: string, body: object) => {
      const reply = await call(`/api/keys/${path}`, { method: "PUT", body });
      expect(reply.status, reply.text).toBe(200);
      return reply.json.versionstamp as string;
    },
    get: async (path: string, q = "") => (await call(`/api/keys/${path}${q}`)).json,
    atomic: (body: object) => call("/api/atomic", { body }),
  };
}

describe("HTTP API", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await serve({
      openOptions: { history: { keepValues: [["audit"]] } },
      pingInterval: 200,
    });
  });
  afterAll(() => server.close());

  describe("single keys", () => {
    const api = scoped(() => server, "keys");

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
    const api = scoped(() => server, "values");
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

    it("refuses to serve a stored value JSON cannot carry with INVALID_VALUE", async () => {
      const cyclic: Record<string, unknown> = { name: "loop" };
      cyclic.self = cyclic;
      await api.kv().set(["cyclic"], cyclic);
      // biome-ignore lint/suspicious/noSparseArray: the sparse array is the point
      await api.kv().set(["sparse"], [1, , 3]);
      expectError(await api.call("/api/keys/cyclic"), 400, "INVALID_VALUE");
      expectError(await api.call("/api/keys/sparse"), 400, "INVALID_VALUE");
      await api.kv().delete(["cyclic"]);
      await api.kv().delete(["sparse"]);
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

  describe("ranges", () => {
    const api = scoped(() => server, "ranges");
    beforeAll(async () => {
      const mutations = Array.from({ length: 25 }, (_, i) => ({
        type: "set",
        key: ["items", i],
        value: i,
      }));
      await api.atomic({ mutations: [...mutations, { type: "set", key: ["other"], value: "x" }] });
    });

    const pages = async (first: (cursor: string | null) => Promise<Reply>) => {
      const seen: unknown[][] = [];
      let cursor: string | null = null;
      do {
        const reply = await first(cursor);
        expect(reply.status, reply.text).toBe(200);
        seen.push(reply.json.entries.map((e: { value: unknown }) => e.value));
        expect(reply.json.hasMore).toBe(reply.json.cursor !== null);
        cursor = reply.json.cursor;
      } while (cursor !== null);
      return seen;
    };
    const range = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => from + i);

    it("pages through a prefix with GET /api/list until the cursor is null", async () => {
      const seen = await pages((cursor) =>
        api.call(`/api/list${query({ prefix: "items", limit: "10", ...(cursor && { cursor }) })}`),
      );
      expect(seen).toEqual([range(0, 10), range(10, 20), range(20, 25)]);
    });

    it("ends on a full last page with a null cursor", async () => {
      const seen = await pages((cursor) =>
        api.call(`/api/list${query({ prefix: "items", limit: "5", ...(cursor && { cursor }) })}`),
      );
      expect(seen).toHaveLength(5);
    });

    it("pages in reverse", async () => {
      const seen = await pages((cursor) =>
        api.call(
          `/api/list${query({ prefix: "items", limit: "20", reverse: "true", ...(cursor && { cursor }) })}`,
        ),
      );
      expect(seen).toEqual([range(5, 25).reverse(), range(0, 5).reverse()]);
    });

    it("lists start/end and prefix/start ranges given as key paths", async () => {
      const between = await api.call(
        `/api/list${query({ start: "items/~n:5", end: "items/~n:8" })}`,
      );
      expect(between.json.entries.map((e: { key: unknown }) => e.key)).toEqual([
        ["items", 5],
        ["items", 6],
        ["items", 7],
      ]);
      const after = await api.call(`/api/list${query({ prefix: "items", start: "items/~n:22" })}`);
      expect(after.json.entries.map((e: { value: unknown }) => e.value)).toEqual([22, 23, 24]);
      const everything = await api.call("/api/list?limit=100&metadata=true");
      expect(everything.json.entries).toHaveLength(26);
      expect(everything.json.entries[0].metadata.version).toBe(1);
    });

    it("pages with POST /api/list and JSON keys", async () => {
      const seen = await pages((cursor) =>
        api.call("/api/list", {
          body: { prefix: ["items"], limit: 7, reverse: true, ...(cursor && { cursor }) },
        }),
      );
      expect(seen.flat()).toEqual(range(0, 25).reverse());
      const between = await api.call("/api/list", {
        body: { start: ["items", 3], end: ["items", 5], metadata: true },
      });
      expect(between.json.entries.map((e: { value: unknown }) => e.value)).toEqual([3, 4]);
      expect(between.json.entries[0].metadata).toHaveProperty("dataHash");
    });

    it("counts with GET and POST /api/count", async () => {
      expect((await api.call("/api/count?prefix=items")).json).toEqual({ count: 25 });
      expect((await api.call("/api/count")).json).toEqual({ count: 26 });
      expect(
        (await api.call(`/api/count${query({ start: "items/~n:0", end: "items/~n:10" })}`)).json,
      ).toEqual({ count: 10 });
      expect(
        (await api.call("/api/count", { body: { prefix: ["items"], start: ["items", 20] } })).json,
      ).toEqual({ count: 5 });
      expect((await api.call("/api/count", { body: {} })).json).toEqual({ count: 26 });
    });
  });

  describe("deleting ranges and namespaces", () => {
    const api = scoped(() => server, "deletes");

    it("deletes a prefix and a start/end range with POST /api/delete-range", async () => {
      await api.atomic({
        mutations: Array.from({ length: 10 }, (_, i) => ({ type: "set", key: ["d", i], value: i })),
      });
      await api.put("keep", { value: 1 });
      const some = await api.call("/api/delete-range", {
        body: { start: ["d", 0], end: ["d", 3] },
      });
      expect(some.json).toEqual({ deleted: 3 });
      const rest = await api.call("/api/delete-range", { body: { prefix: ["d"] } });
      expect(rest.json).toEqual({ deleted: 7 });
      expect(await api.kv().count({ prefix: [] })).toBe(1);
    });

    it("empties only the request's namespace with DELETE /api/namespace", async () => {
      await api.put("a", { value: 1 });
      await api.put("b", { value: 2 });
      await server.kv.namespace("bystander").set(["a"], "stays");
      const reply = await api.call("/api/namespace", { method: "DELETE" });
      expect(reply.status).toBe(200);
      expect(reply.json.deleted).toBeGreaterThanOrEqual(2);
      expect(await api.kv().count({ prefix: [] })).toBe(0);
      expect((await server.kv.namespace("bystander").get(["a"])).value).toBe("stays");
    });
  });

  describe("atomic", () => {
    const api = scoped(() => server, "atomic");

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

  describe("watch", () => {
    const api = scoped(() => server, "watch");

    it("streams the current state, then one entries event per change; Last-Event-ID skips the unchanged state", async () => {
      await api.put("w/a", { value: 1 });
      const path = `/api/watch${query({ key: ["w/a", "w/b"] })}`;
      const stream = await sse(server.url, path, { namespace: "watch" });
      try {
        expect(stream.status).toBe(200);
        expect(stream.headers["content-type"]).toMatch(/^text\/event-stream/);
        const initial = await stream.next();
        expect(initial.event).toBe("entries");
        expect(initial.data).toEqual([
          { key: ["w", "a"], value: 1, versionstamp: expect.stringMatching(VERSIONSTAMP) },
          { key: ["w", "b"], value: null, versionstamp: null },
        ]);

        await api.put("w/b", { value: { $bigint: "2" } });
        const changed = await stream.next();
        expect(changed.data.map((e: { value: unknown }) => e.value)).toEqual([1, { $bigint: "2" }]);
        expect(changed.id).not.toBe(initial.id);
        stream.close();

        const resumed = await sse(server.url, path, {
          namespace: "watch",
          headers: { "last-event-id": changed.id! },
        });
        try {
          expect(await resumed.drain(300)).toEqual([]);
          await api.put("w/a", { value: 3 });
          const next = await resumed.next();
          expect(next.data.map((e: { value: unknown }) => e.value)).toEqual([3, { $bigint: "2" }]);
        } finally {
          resumed.close();
        }

        const stale = await sse(server.url, path, {
          namespace: "watch",
          headers: { "last-event-id": initial.id! },
        });
        try {
          expect((await stale.next()).data.map((e: { value: unknown }) => e.value)).toEqual([
            3,
            { $bigint: "2" },
          ]);
        } finally {
          stale.close();
        }
      } finally {
        stream.close();
      }
    });

    it("long-polls keys with since and timeout", async () => {
      const first = await api.call(`/api/watch/poll${query({ key: "p/1" })}`);
      expect(first.json).toEqual({
        id: expect.any(String),
        changed: true,
        entries: [{ key: ["p", "1"], value: null, versionstamp: null }],
      });

      let started = Date.now();
      const idle = await api.call(
        `/api/watch/poll${query({ key: "p/1", since: first.json.id, timeout: "150" })}`,
      );
      expect(Date.now() - started).toBeGreaterThanOrEqual(120);
      expect(idle.json).toMatchObject({ id: first.json.id, changed: false });

      started = Date.now();
      const waiting = api.call(
        `/api/watch/poll${query({ key: "p/1", since: first.json.id, timeout: "10000" })}`,
      );
      await sleep(100);
      await api.put("p/1", { value: "now" });
      const woke = await waiting;
      expect(Date.now() - started).toBeLessThan(5000);
      expect(woke.json.changed).toBe(true);
      expect(woke.json.id).not.toBe(first.json.id);
      expect(woke.json.entries[0].value).toBe("now");
    });

    it("streams one change event per commit under a prefix, and replays missed commits after Last-Event-ID", async () => {
      const path = `/api/watch/prefix${query({ prefix: "orders" })}`;
      const stream = await sse(server.url, path, { namespace: "watch" });
      let last: string;
      try {
        expect(stream.status).toBe(200);
        const vs1 = await api.put("orders/1", { value: "one" });
        const vs2 = (
          await api.atomic({
            mutations: [
              { type: "set", key: ["orders", "2"], value: "two" },
              { type: "set", key: ["orders", "3"], value: "three" },
            ],
          })
        ).json.versionstamp;
        await api.put("elsewhere", { value: "not watched" });
        const vs3 = await api.put("orders/4", { value: "four" });

        const events = [await stream.next(), await stream.next(), await stream.next()];
        expect(events.map((e) => [e.event, e.id])).toEqual([
          ["change", vs1],
          ["change", vs2],
          ["change", vs3],
        ]);
        expect(events[1]!.data).toEqual({
          versionstamp: vs2,
          entries: [
            { key: ["orders", "2"], value: "two", versionstamp: vs2 },
            { key: ["orders", "3"], value: "three", versionstamp: vs2 },
          ],
        });
        last = vs3;
      } finally {
        stream.close();
      }

      const vs4 = await api.put("orders/5", { value: "five" });
      const del = await api.call("/api/keys/orders/1", { method: "DELETE" });
      expect(del.status).toBe(200);

      for (const resume of [
        { headers: { "last-event-id": last } },
        { path: `${path}&after=${last}` },
      ]) {
        const replay = await sse(server.url, resume.path ?? path, {
          namespace: "watch",
          ...(resume.headers && { headers: resume.headers }),
        });
        try {
          const missed = [await replay.next(), await replay.next()];
          expect(missed[0]).toMatchObject({
            event: "change",
            id: vs4,
            data: { entries: [{ key: ["orders", "5"], value: "five" }] },
          });
          expect(missed[1]!.data.entries).toEqual([
            { key: ["orders", "1"], value: null, versionstamp: null },
          ]);
          expect(missed[1]!.id! > vs4).toBe(true);
          expect(await replay.drain(200)).toEqual([]);
        } finally {
          replay.close();
        }
      }
    });

    it("long-polls commits under a prefix", async () => {
      const now = await api.call(`/api/watch/prefix/poll${query({ prefix: "polled" })}`);
      expect(now.json).toEqual({ changes: [], cursor: expect.stringMatching(VERSIONSTAMP) });
      const cursor = now.json.cursor;

      const idle = await api.call(
        `/api/watch/prefix/poll${query({ prefix: "polled", after: cursor, timeout: "100" })}`,
      );
      expect(idle.json).toEqual({ changes: [], cursor });

      const waiting = api.call(
        `/api/watch/prefix/poll${query({ prefix: "polled", after: cursor, timeout: "10000" })}`,
      );
      await sleep(100);
      await api.put("unrelated", { value: 0 });
      const vs = await api.put("polled/x", { value: { $date: "2020-02-02T00:00:00.000Z" } });
      const woke = await waiting;
      expect(woke.json).toEqual({
        changes: [
          {
            versionstamp: vs,
            entries: [
              {
                key: ["polled", "x"],
                value: { $date: "2020-02-02T00:00:00.000Z" },
                versionstamp: vs,
              },
            ],
          },
        ],
        cursor: vs,
      });
    });
  });

  describe("health and documentation", () => {
    it("answers /healthz and /readyz", async () => {
      expect(await send(server.url, "/healthz").then((r) => [r.status, r.json])).toEqual([
        200,
        { ok: true },
      ]);
      expect(await send(server.url, "/readyz").then((r) => [r.status, r.json])).toEqual([
        200,
        { ok: true },
      ]);
    });

    it("reports 503 UNAVAILABLE from /readyz once the database is closed", async () => {
      const other = await serve();
      try {
        await other.kv.close();
        expectError(await send(other.url, "/readyz"), 503, "UNAVAILABLE");
        expect((await send(other.url, "/healthz")).status).toBe(200);
      } finally {
        await other.close();
      }
    });

    it("serves an OpenAPI 3.1 document listing every route", async () => {
      const reply = await send(server.url, "/api/openapi.json");
      expect(reply.status).toBe(200);
      const doc = reply.json;
      expect(doc.openapi).toBe("3.1.0");
      expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
      const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
        ([path, item]) =>
          Object.keys(item)
            .filter((m) => ["get", "put", "post", "delete", "patch"].includes(m))
            .map((m) => `${m.toUpperCase()} ${path}`),
      );
      expect(routes).toEqual(
        expect.arrayContaining([
          "GET /api/keys/{key}",
          "PUT /api/keys/{key}",
          "DELETE /api/keys/{key}",
          "POST /api/get",
          "POST /api/delete",
          "GET /api/history/{key}",
          "GET /api/list",
          "POST /api/list",
          "GET /api/count",
          "POST /api/count",
          "POST /api/delete-range",
          "DELETE /api/namespace",
          "POST /api/atomic",
          "GET /api/watch",
          "GET /api/watch/poll",
          "GET /api/watch/prefix",
          "GET /api/watch/prefix/poll",
        ]),
      );
      expect(new Set(routes).size).toBe(routes.length);
      expect(reply.text).not.toContain("{key{");

      const refs = new Set<string>();
      JSON.stringify(doc, (name, value) => {
        if (name === "$ref") refs.add(value);
        return value;
      });
      for (const ref of refs) {
        const target = ref
          .replace(/^#\//, "")
          .split("/")
          .reduce((node: Record<string, unknown> | undefined, part) => node?.[part] as never, doc);
        expect(target, ref).toBeDefined();
      }
      for (const [path, item] of Object.entries(
        doc.paths as Record<
          string,
          Record<
            string,
            { parameters?: { name: string; in: string; required?: boolean }[]; responses: object }
          >
        >,
      )) {
        const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
        for (const operation of Object.values(item)) {
          expect(Object.keys(operation.responses).length, path).toBeGreaterThan(0);
          for (const name of templated) {
            expect(operation.parameters, path).toContainEqual(
              expect.objectContaining({ name, in: "path", required: true }),
            );
          }
        }
      }
    });

    it("serves the reference page and its assets", async () => {
      const page = await send(server.url, "/api/docs");
      expect(page.status).toBe(200);
      expect(page.headers["content-type"]).toMatch(/^text\/html/);
      expect(page.text).toContain("/api/openapi.json");
      const css = await send(server.url, "/api/docs/swagger-ui.css");
      expect([css.status, css.headers["content-type"]]).toEqual([200, "text/css"]);
    });
  });
});

describe("authentication and namespaces", () => {
  const tokens: TokenGrant[] = [
    { token: "admin-token-0000000000", namespaces: ["*"], access: "admin" },
    { token: "read-a-token-000000000", namespaces: ["a"], access: "read" },
    { token: "write-a-token-00000000", namespaces: ["a"], access: "write" },
    { token: "write-b-token-00000000", namespaces: ["b"], access: "write" },
    { token: "write-ab-token-0000000", namespaces: ["a", "b"], access: "write" },
  ];
  const [admin, readA, writeA, writeB, writeAB] = tokens.map((t) => t.token) as [
    string,
    string,
    string,
    string,
    string,
  ];
  let server: RunningServer;
  beforeAll(async () => {
    server = await serve({ tokens });
  });
  afterAll(() => server.close());

  const put = (token: string, path: string, value: unknown, options: Send = {}) =>
    send(server.url, `/api/keys/${path}`, { method: "PUT", body: { value }, token, ...options });

  it("refuses requests without a valid bearer token (401 UNAUTHORIZED)", async () => {
    expectError(await send(server.url, "/api/keys/x"), 401, "UNAUTHORIZED");
    expectError(
      await send(server.url, "/api/keys/x", { token: "not-a-valid-token-at-all" }),
      401,
      "UNAUTHORIZED",
    );
    expectError(
      await send(server.url, "/api/keys/x", { headers: { authorization: `Basic ${admin}` } }),
      401,
      "UNAUTHORIZED",
    );
    expectError(await send(server.url, "/api/list"), 401, "UNAUTHORIZED");
    expectError(
      await send(server.url, "/api/atomic", { body: { mutations: [] } }),
      401,
      "UNAUTHORIZED",
    );
    expectError(await send(server.url, `/api/watch?key=x`), 401, "UNAUTHORIZED");
    expectError(await send(server.url, "/api/driver/info"), 401, "UNAUTHORIZED");
    expect((await send(server.url, "/healthz")).status).toBe(200);
    expect((await send(server.url, "/readyz")).status).toBe(200);
  });

  it("takes the token from ?token= too, for EventSource clients", async () => {
    expect((await send(server.url, `/api/keys/x?token=${writeA}`)).status).toBe(200);
  });

  it("lets a read token read but not write (403 FORBIDDEN)", async () => {
    expect((await put(writeA, "shared", "from a")).status).toBe(200);
    expect(await valueAt(server.url, "shared", { token: readA })).toBe("from a");
    expectError(await put(readA, "shared", "overwrite"), 403, "FORBIDDEN");
    expectError(
      await send(server.url, "/api/atomic", {
        token: readA,
        body: { mutations: [{ type: "delete", key: ["shared"] }] },
      }),
      403,
      "FORBIDDEN",
    );
    expectError(
      await send(server.url, "/api/keys/shared", { method: "DELETE", token: readA }),
      403,
      "FORBIDDEN",
    );
    expect(await valueAt(server.url, "shared", { token: readA })).toBe("from a");
  });

  it("confines a token to its namespace", async () => {
    expect((await put(writeA, "same", "A")).status).toBe(200);
    expect((await put(writeB, "same", "B")).status).toBe(200);
    expect(await valueAt(server.url, "same", { token: writeA })).toBe("A");
    expect(await valueAt(server.url, "same", { token: writeB })).toBe("B");
    expect((await server.kv.namespace("a").get(["same"])).value).toBe("A");
    expect((await server.kv.get(["same"])).value).toBeNull();

    const listed = await send(server.url, "/api/list", { token: writeB });
    expect(listed.json.entries.map((e: { value: unknown }) => e.value)).toEqual(["B"]);

    expectError(
      await send(server.url, "/api/keys/same", { token: writeA, namespace: "b" }),
      403,
      "FORBIDDEN",
    );
    expectError(await put(writeA, "same", "sneaky", { namespace: "b" }), 403, "FORBIDDEN");
    expect((await server.kv.namespace("b").get(["same"])).value).toBe("B");
  });

  it("makes a token of several namespaces name one with X-Cellar-Namespace", async () => {
    expectError(await send(server.url, "/api/keys/same", { token: writeAB }), 403, "FORBIDDEN");
    expect(await valueAt(server.url, "same", { token: writeAB, namespace: "b" })).toBe("B");
    expectError(
      await send(server.url, "/api/keys/same", { token: writeAB, namespace: "c" }),
      403,
      "FORBIDDEN",
    );
    expect(await valueAt(server.url, "same", { token: admin, namespace: "a" })).toBe("A");
  });

  it("needs an admin token to empty a namespace", async () => {
    expectError(
      await send(server.url, "/api/namespace", { method: "DELETE", token: writeA }),
      403,
      "FORBIDDEN",
    );
    await server.kv.namespace("doomed").set(["x"], 1);
    const reply = await send(server.url, "/api/namespace", {
      method: "DELETE",
      token: admin,
      namespace: "doomed",
    });
    expect([reply.status, reply.json]).toEqual([200, { deleted: 1 }]);
  });

  it("lets the remote client in with a valid token, and refuses a wrong one with UNAUTHORIZED", async () => {
    const kv = await openKv(server.url, { token: writeA });
    try {
      await kv.set(["remote"], new Map([["ok", 1n]]));
      expect((await kv.get(["remote"])).value).toEqual(new Map([["ok", 1n]]));
      expect((await server.kv.namespace("a").get(["remote"])).value).toEqual(new Map([["ok", 1n]]));
    } finally {
      await kv.close();
    }
    await expect(openKv(server.url, { token: "wrong-token-0000000000" })).rejects.toMatchObject({
      name: "KvError",
      code: "UNAUTHORIZED",
    });
    await expect(openKv(server.url)).rejects.toMatchObject({ code: "UNAUTHORIZED" });

    const reader = await openKv(server.url, { token: readA });
    try {
      await expect(reader.set(["remote"], 2)).rejects.toMatchObject({ code: "FORBIDDEN" });
    } finally {
      await reader.close();
    }
  });

  it("maps the Host header to the namespace with namespaceFrom: host", async () => {
    const byHost = await serve({ namespaceFrom: "host" });
    try {
      const write = await send(byHost.url, "/api/keys/k", {
        method: "PUT",
        body: { value: "tenant" },
        headers: { host: "Tenant-A.example.com:8080" },
      });
      expect(write.status, write.text).toBe(200);
      expect((await byHost.kv.namespace("tenant-a.example.com").get(["k"])).value).toBe("tenant");
      expect(await valueAt(byHost.url, "k", { headers: { host: "tenant-a.example.com" } })).toBe(
        "tenant",
      );
      expect(
        await valueAt(byHost.url, "k", { headers: { host: "tenant-b.example.com" } }),
      ).toBeNull();
      // The header does not override the host.
      expect(
        await valueAt(byHost.url, "k", {
          headers: { host: "tenant-b.example.com" },
          namespace: "tenant-a.example.com",
        }),
      ).toBeNull();
    } finally {
      await byHost.close();
    }
  });

  it("refuses a Host that is not one host name when it chooses the namespace", async () => {
    const byHost = await serve({ namespaceFrom: "host" });
    try {
      const bad = await send(byHost.url, "/api/keys/k", { headers: { host: "a b.example.com" } });
      expectError(bad, 400, "INVALID_REQUEST");
      expect(bad.json.error.message).toContain("Host header or target is malformed");
      // Two Host headers: each path through the server sees them joined, or refuses them.
      const twice = await rawExchange(
        byHost.url,
        "GET /api/keys/k HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\nConnection: close\r\n\r\n",
      );
      expect(twice.status).toMatch(/^HTTP\/1\.1 400 /);
      expect(twice.body.error.message).toContain(
        '"a.example.com, b.example.com" is not one host name',
      );
      expect(await byHost.kv.namespace("a.example.com").get(["k"])).toMatchObject({ value: null });
    } finally {
      await byHost.close();
    }
  });

  it("takes the namespace from X-Cellar-Namespace with namespaceFrom: header", async () => {
    const byHeader = await serve({ namespaceFrom: "header" });
    try {
      const put = (value: string, options: Send = {}) =>
        send(byHeader.url, "/api/keys/k", { method: "PUT", body: { value }, ...options });
      expect((await put("h1", { namespace: "h1" })).status).toBe(200);
      expect((await put("root")).status).toBe(200);
      expect((await byHeader.kv.namespace("h1").get(["k"])).value).toBe("h1");
      expect((await byHeader.kv.get(["k"])).value).toBe("root");
      expect(await valueAt(byHeader.url, "k", { namespace: "h2" })).toBeNull();
    } finally {
      await byHeader.close();
    }
  });

  it("refuses to listen on a non-loopback host without tokens unless insecure", async () => {
    await expect(startServer({ db: ":memory:", host: "0.0.0.0", port: 0 })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringMatching(/refusing to listen on 0\.0\.0\.0/),
    });
    for (const options of [{ insecure: true }, { tokens }]) {
      const open = await startServer({ db: ":memory:", host: "0.0.0.0", port: 0, ...options });
      await open.close();
    }
  });
});

describe("the cellar serve command", () => {
  const dir = tempDir("cellar-http-");
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    dir.cleanup();
  });

  function run(args: string[]) {
    const child = spawn(process.execPath, ["--import", "tsx", CLI, "serve", ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr!.on("data", (chunk) => {
      stderr += chunk;
    });
    children.push(child);
    const exited = once(child, "exit").then(([code]) => code as number | null);
    /** The URL the server prints once it listens. */
    const listening = async (): Promise<string> => {
      for (;;) {
        const match = /cellar listening on (http:\/\/\S+)/.exec(stdout);
        if (match) return match[1]!;
        if (child.exitCode !== null) throw new Error(`the server did not start: ${stderr}`);
        await sleep(20);
      }
    };
    return { child, exited, listening, output: () => ({ stdout, stderr }) };
  }

  it("acknowledges only durable writes across a SIGTERM under load, and exits 0", async () => {
    const db = join(dir.path, "shutdown.db");
    const server = run(["--db", db, "--port", "0"]);
    const url = await server.listening();

    const acknowledged: number[] = [];
    let next = 0;
    let stopped: () => void;
    const enough = new Promise<void>((resolve) => {
      stopped = resolve;
    });
    const worker = async () => {
      while (next < 5000) {
        const i = next++;
        try {
          const reply = await send(url, `/api/keys/load/~n:${i}`, {
            method: "PUT",
            body: { value: { i } },
          });
          if (reply.status !== 200) throw new Error(reply.text);
          acknowledged.push(i);
          if (acknowledged.length === 150) stopped();
        } catch {
          return;
        }
      }
    };
    const workers = Array.from({ length: 32 }, worker);
    await enough;
    server.child.kill("SIGTERM");
    await Promise.all(workers);
    expect(await server.exited).toBe(0);
    expect(server.output().stdout).toContain("SIGTERM, shutting down");
    expect(acknowledged.length).toBeGreaterThanOrEqual(150);

    const kv = await openKv(db);
    try {
      const stored = new Map<number, unknown>();
      for await (const entry of kv.list<{ i: number }>({ prefix: ["load"] })) {
        stored.set(entry.key[1] as number, entry.value);
      }
      const missing = acknowledged.filter((i) => !stored.has(i));
      expect(missing).toEqual([]);
      for (const i of acknowledged) expect(stored.get(i)).toEqual({ i });
    } finally {
      await kv.close();
    }
  });

  it("answers a waiting queue poll at once on SIGTERM, and exits promptly", async () => {
    const server = run(["--db", ":memory:", "--port", "0"]);
    const url = await server.listening();
    try {
      const poll = send(url, "/api/queues/jobs/dequeue", {
        method: "POST",
        body: { wait: 20_000 },
      });
      // The poll was sent first; once a later request is answered, the server has read it.
      await sleep(300);
      expect((await send(url, "/healthz")).status).toBe(200);
      server.child.kill("SIGTERM");
      const reply = await poll;
      expect(reply.status).toBe(200);
      expect(reply.json).toEqual({ messages: [] });
      expect(await Promise.race([server.exited, sleep(2500).then(() => "still running")])).toBe(0);
    } finally {
      if (server.child.exitCode === null) server.child.kill("SIGKILL");
    }
  });

  // Bug: close() calls closeIdleConnections() once, before the streams it ends have finished
  // their responses; their keep-alive connections then turn idle and hold the process until
  // the server's keepAliveTimeout (5 s) passes.
  it("exits promptly on SIGTERM while watch streams are open on keep-alive connections", async () => {
    const server = run(["--db", ":memory:", "--port", "0"]);
    const url = await server.listening();
    const agent = new Agent({ keepAlive: true });
    try {
      const stream = await sse(url, "/api/watch?key=a", { agent });
      await stream.next();
      server.child.kill("SIGTERM");
      expect(await Promise.race([server.exited, sleep(2500).then(() => "still running")])).toBe(0);
    } finally {
      agent.destroy();
      if (server.child.exitCode === null) server.child.kill("SIGKILL");
    }
  });

  it("refuses --host 0.0.0.0 without tokens, with a clear message and a non-zero exit", async () => {
    const server = run(["--db", ":memory:", "--host", "0.0.0.0", "--port", "0"]);
    expect(await server.exited).not.toBe(0);
    expect(server.output().stderr).toMatch(
      /refusing to listen on 0\.0\.0\.0 without a tokens file.*--tokens.*--insecure/,
    );
    expect(server.output().stdout).not.toContain("listening");
  });
});
