import { connect } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { encodeKey } from "../../src/codec/key.js";
import { KvU64 } from "../../src/index.js";
import type { RunningServer } from "../../src/server/index.js";
import {
  muted,
  type Reply,
  rawExchange,
  type Send,
  send,
  serve,
  snapshot,
  sse,
} from "./helpers.js";

const ADMIN = "admin-token-000000000000";
const A_WRITER = "a-writer-token-000000000";
const MAX_BODY = 16 * 1024;
const MAX_KEY = 128;
const MAX_VALUE = 1024;

/** A stored key (namespace first) as the driver protocol carries it. */
const stored = (namespace: string, ...key: string[]) =>
  Buffer.from(encodeKey([namespace, ...key])).toString("base64url");
const json = (body: unknown): Send => ({ body });
const raw = (text: string, contentType = "application/json"): Send => ({
  raw: text,
  headers: { "content-type": contentType },
});
const q = encodeURIComponent;

function expectRefused(reply: Reply, status: number | null, codes: string | string[]): void {
  const accepted = Array.isArray(codes) ? codes : [codes];
  expect(reply.status, reply.text).toBeGreaterThanOrEqual(400);
  expect(reply.status, reply.text).toBeLessThan(500);
  if (status !== null) expect(reply.status, reply.text).toBe(status);
  expect(reply.headers["content-type"]).toMatch(/^application\/json/);
  expect(reply.json, reply.text).toEqual({
    error: { code: expect.any(String), message: expect.any(String) },
  });
  expect(accepted, reply.text).toContain(reply.json.error.code);
  expect(reply.json.error.message.length).toBeGreaterThan(0);
}

describe("malformed and hostile requests", () => {
  let server: RunningServer;
  let before: unknown;

  const call = (path: string, options: Send = {}) =>
    send(server.url, path, { token: ADMIN, ...options });
  const refused = async (
    path: string,
    options: Send,
    status: number | null,
    codes: string | string[],
  ) => expectRefused(await call(path, options), status, codes);

  beforeAll(async () => {
    server = await serve({
      tokens: [
        { token: ADMIN, namespaces: ["*"], access: "admin" },
        { token: A_WRITER, namespaces: ["a"], access: "write" },
      ],
      maxBodySize: MAX_BODY,
      maxPageSize: 50,
      maxWatchKeys: 3,
      openOptions: {
        limits: {
          maxKeySize: MAX_KEY,
          maxValueSize: MAX_VALUE,
          maxMutations: 10,
          maxChecks: 5,
          maxReadKeys: 5,
        },
      },
    });
    const kv = server.kv;
    await kv.set(["existing"], "untouched", { tags: ["seed"] });
    await kv.set(["text"], "not a number");
    await kv.set(["counter"], new KvU64(1n));
    await kv.set(["list"], [1]);
    for (const i of [1, 2, 3]) await kv.set(["items", i], i);
    await kv.namespace("a").set(["x"], "in a");
    await kv.namespace("b").set(["x"], "in b");
  });
  afterAll(() => server.close());

  beforeEach(async () => {
    before = await snapshot(server.kv);
  });
  afterEach(async () => {
    // Whatever was refused, nothing was written, in any namespace.
    expect(await snapshot(server.kv)).toEqual(before);
  });

  describe("bodies", () => {
    const jsonRoutes: [string, string][] = [
      ["PUT", "/api/keys/k"],
      ["POST", "/api/get"],
      ["POST", "/api/delete"],
      ["POST", "/api/list"],
      ["POST", "/api/count"],
      ["POST", "/api/delete-range"],
      ["POST", "/api/atomic"],
      ["POST", "/api/driver/read"],
      ["POST", "/api/driver/count"],
      ["POST", "/api/driver/write"],
      ["POST", "/api/driver/history"],
      ["POST", "/api/driver/changes"],
      ["POST", "/api/driver/sweep"],
    ];

    it.each(jsonRoutes)(
      "%s %s refuses malformed JSON with INVALID_REQUEST",
      async (method, path) => {
        for (const text of ["{bad", "", "[1,", '{"value":1}garbage', "\u0000", "nul"]) {
          await refused(path, { method, ...raw(text) }, 400, "INVALID_REQUEST");
        }
      },
    );

    it.each(jsonRoutes)(
      "%s %s refuses a body sent without a JSON content type with 415",
      async (method, path) => {
        await refused(
          path,
          { method, ...raw('{"value":1}', "text/plain") },
          415,
          "UNSUPPORTED_MEDIA_TYPE",
        );
        await refused(path, { method, raw: '{"value":1}' }, 415, "UNSUPPORTED_MEDIA_TYPE");
      },
    );

    it.each(jsonRoutes)("%s %s refuses a JSON body that is not an object", async (method, path) => {
      for (const body of [null, "text", 42, true]) {
        await refused(path, { method, ...json(body) }, 400, "INVALID_REQUEST");
      }
      if (path === "/api/driver/sweep") return;
      await refused(
        path,
        { method, ...json([]) },
        400,
        path === "/api/driver/changes"
          ? ["INVALID_REQUEST", "INVALID_VERSIONSTAMP"]
          : "INVALID_REQUEST",
      );
    });

    // Bug: the driver routes' readJson checks `typeof body === "object"`, which lets an array
    // through; /api/driver/sweep needs no field, so `[]` runs a sweep and answers 200.
    it("POST /api/driver/sweep refuses a JSON array body", async () => {
      await refused("/api/driver/sweep", json([]), 400, "INVALID_REQUEST");
    });

    it("refuses bodies over maxBodySize with 413 PAYLOAD_TOO_LARGE, with or without a Content-Length", async () => {
      const big = { value: "x".repeat(MAX_BODY + 1) };
      await refused("/api/keys/big", { method: "PUT", ...json(big) }, 413, "PAYLOAD_TOO_LARGE");
      await refused(
        "/api/keys/big",
        { method: "PUT", ...json(big), chunked: true },
        413,
        "PAYLOAD_TOO_LARGE",
      );
      await refused(
        "/api/atomic",
        json({ mutations: [{ type: "set", key: ["big"], value: big.value }] }),
        413,
        "PAYLOAD_TOO_LARGE",
      );
      await refused(
        "/api/driver/write",
        { ...json({ writes: [], pad: big.value }), chunked: true },
        413,
        "PAYLOAD_TOO_LARGE",
      );
    });

    it("refuses wrong JSON types and missing fields on PUT /api/keys", async () => {
      const put = (body: unknown, codes: string | string[] = "INVALID_REQUEST") =>
        refused("/api/keys/k", { method: "PUT", ...json(body) }, 400, codes);
      await put({});
      await put({ tags: ["t"] });
      await put({ value: 1, expireIn: "10" });
      await put({ value: 1, expireIn: 0 });
      await put({ value: 1, expireIn: -5 });
      await put({ value: 1, expireIn: 1.5 });
      await put({ value: 1, expireIn: 2 ** 60 });
      await put({ value: 1, tags: "t" });
      await put({ value: 1, tags: [1] });
      await put({ value: 1, tags: Array.from({ length: 65 }, (_, i) => `t${i}`) });
      await put({ value: 1, tags: ["x".repeat(257)] });
      await put({ value: 1, modifiedBy: 5 });
      await put({ value: 1, modifiedBy: "x".repeat(257) });
      await put({ value: 1, comment: "x".repeat(4097) });
    });

    it("refuses unknown and malformed tagged values with INVALID_VALUE", async () => {
      for (const value of [
        { $foo: 1 },
        { nested: [{ $foo: 1 }] },
        { $date: "yesterday" },
        { $date: 0 },
        { $bigint: "1.5" },
        { $bigint: "1e3" },
        { $u64: "-1" },
        { $u64: "18446744073709551616" },
        { $number: "1" },
        { $bytes: "not base64!" },
        { $typed: { type: "Nope", data: "" } },
        { $typed: { type: "Float64Array", data: "AAA" } },
        { $typed: null },
        { $map: "x" },
        { $map: [[1, 2, 3]] },
        { $set: {} },
        { $regexp: { source: "(", flags: "" } },
        { $regexp: { source: "a", flags: "zz" } },
        { $object: 5 },
      ]) {
        await refused("/api/keys/k", { method: "PUT", ...json({ value }) }, 400, "INVALID_VALUE");
        await refused(
          "/api/atomic",
          json({ mutations: [{ type: "set", key: ["k"], value }] }),
          400,
          "INVALID_VALUE",
        );
      }
      await refused(
        "/api/atomic",
        json({ mutations: [{ type: "append", key: ["list"], value: [{ $foo: 1 }] }] }),
        400,
        "INVALID_VALUE",
      );
    });

    it("refuses oversized keys and values with 413", async () => {
      const long = "x".repeat(MAX_KEY + 1);
      await refused(
        `/api/keys/${long}`,
        { method: "PUT", ...json({ value: 1 }) },
        413,
        "KEY_TOO_LARGE",
      );
      await refused(
        "/api/atomic",
        json({ mutations: [{ type: "set", key: [long], value: 1 }] }),
        413,
        "KEY_TOO_LARGE",
      );
      await refused(
        "/api/atomic",
        json({ checks: [{ key: [long], versionstamp: null }] }),
        413,
        "KEY_TOO_LARGE",
      );
      await refused("/api/get", json({ keys: [[long]] }), 413, "KEY_TOO_LARGE");

      const huge = "x".repeat(MAX_VALUE + 1);
      await refused(
        "/api/keys/k",
        { method: "PUT", ...json({ value: huge }) },
        413,
        "VALUE_TOO_LARGE",
      );
      await refused(
        "/api/keys/k",
        {
          method: "PUT",
          ...json({ value: { $bytes: Buffer.alloc(MAX_VALUE + 1).toString("base64url") } }),
        },
        413,
        "VALUE_TOO_LARGE",
      );
      await refused(
        "/api/atomic",
        json({
          mutations: [
            { type: "set", key: ["fine"], value: 1 },
            { type: "set", key: ["k"], value: huge },
          ],
        }),
        413,
        "VALUE_TOO_LARGE",
      );
      await refused(
        "/api/atomic",
        json({ mutations: [{ type: "append", key: ["list"], value: [huge] }] }),
        413,
        "VALUE_TOO_LARGE",
      );
    });

    // Bug: valueFromJson (and Placeholders.value in the atomic route) recurse once per level, so a
    // body of a few KB nesting a few thousand arrays overflows the stack: 500 STORAGE_ERROR.
    it("refuses deeply nested values with a 4xx", () =>
      muted(async () => {
        const deep = `${"[".repeat(5000)}${"]".repeat(5000)}`;
        const codes = ["INVALID_VALUE", "VALUE_TOO_LARGE"];
        await refused(
          "/api/keys/deep",
          { method: "PUT", ...raw(`{"value":${deep}}`) },
          null,
          codes,
        );
        await refused(
          "/api/atomic",
          raw(`{"mutations":[{"type":"set","key":["deep"],"value":${deep}}]}`),
          null,
          codes,
        );
      }));

    it("does not let __proto__ keys pollute prototypes", async () => {
      const pad = JSON.stringify("x".repeat(MAX_VALUE));
      for (const hostile of [
        '{"__proto__":{"polluted":true}}',
        '{"a":{"__proto__":{"polluted":true}}}',
        '{"$object":{"__proto__":{"polluted":true}}}',
        '{"constructor":{"prototype":{"polluted":true}}}',
        '{"$map":[["__proto__",{"polluted":true}]]}',
      ]) {
        // The padding makes the write fail after the value was parsed, so nothing is stored.
        const body = `{"value":[${hostile},${pad}]}`;
        await refused("/api/keys/proto", { method: "PUT", ...raw(body) }, 413, "VALUE_TOO_LARGE");
        expect(({} as Record<string, unknown>).polluted, hostile).toBeUndefined();
      }
    });
  });

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

  describe("ranges", () => {
    it("refuses limits above maxPageSize and malformed limits", async () => {
      for (const limit of [
        "51",
        "1000000000",
        "99999999999999999999",
        "0",
        "-1",
        "1.5",
        "abc",
        "1e400",
      ]) {
        await refused(`/api/list?limit=${limit}`, {}, 400, ["INVALID_ARGUMENT", "INVALID_REQUEST"]);
      }
      await refused("/api/list?limit=1&limit=2", {}, 400, "INVALID_REQUEST");
      for (const limit of [51, 1e9, 0, -1, 1.5, "10"]) {
        await refused("/api/list", json({ limit }), 400, ["INVALID_ARGUMENT", "INVALID_REQUEST"]);
      }
      await refused("/api/list", raw('{"limit":1e400}'), 400, [
        "INVALID_ARGUMENT",
        "INVALID_REQUEST",
      ]);
      for (const limit of ["0", "10001", "x"])
        await refused(`/api/history/existing?limit=${limit}`, {}, 400, "INVALID_REQUEST");
    });

    it("refuses bad cursors with INVALID_CURSOR", async () => {
      await refused(
        `/api/list?prefix=items&cursor=${q("not a cursor!")}`,
        {},
        400,
        "INVALID_CURSOR",
      );
      await refused("/api/list", json({ prefix: ["items"], cursor: "@@@" }), 400, "INVALID_CURSOR");
      await refused("/api/list?prefix=items&reverse=true&cursor=_____w", {}, 400, "INVALID_CURSOR");
      await refused("/api/list", json({ prefix: ["items"], cursor: 5 }), 400, "INVALID_REQUEST");
    });

    it("refuses malformed selectors", async () => {
      await refused("/api/list", json({ start: ["a"] }), 400, "INVALID_SELECTOR");
      await refused("/api/list", json({ start: ["b"], end: ["a"] }), 400, "INVALID_SELECTOR");
      await refused(
        "/api/list",
        json({ prefix: ["items"], start: ["other"] }),
        400,
        "INVALID_SELECTOR",
      );
      await refused("/api/list?start=items", {}, 400, "INVALID_SELECTOR");
      await refused("/api/list?reverse=maybe", {}, 400, "INVALID_REQUEST");
      await refused("/api/list?prefix=a&prefix=b", {}, 400, "INVALID_REQUEST");
      await refused("/api/count", json({ end: ["a"] }), 400, "INVALID_SELECTOR");
      await refused("/api/delete-range", json({}), 400, "INVALID_SELECTOR");
      await refused("/api/delete-range", json({ end: ["z"] }), 400, "INVALID_SELECTOR");
      await refused("/api/delete-range", json({ start: ["a"] }), 400, "INVALID_SELECTOR");
    });
  });

  describe("watch", () => {
    it("refuses watches of more than maxWatchKeys keys with 400, as a request that can never succeed", async () => {
      const keys = ["a", "b", "c", "d"].map((k) => `key=${k}`).join("&");
      await refused(`/api/watch?${keys}`, {}, 400, "INVALID_ARGUMENT");
      await refused(`/api/watch/poll?${keys}&timeout=0`, {}, 400, "INVALID_ARGUMENT");
    });

    it("refuses malformed watch parameters", async () => {
      await refused("/api/watch", {}, 400, "INVALID_REQUEST");
      await refused("/api/watch/poll", {}, 400, "INVALID_REQUEST");
      await refused("/api/watch/prefix", {}, 400, "INVALID_REQUEST");
      await refused("/api/watch/prefix/poll", {}, 400, "INVALID_REQUEST");
      for (const timeout of ["-1", "60001", "x"]) {
        await refused(`/api/watch/poll?key=a&timeout=${timeout}`, {}, 400, "INVALID_REQUEST");
        await refused(
          `/api/watch/prefix/poll?prefix=a&after=00000000000000000001&timeout=${timeout}`,
          {},
          400,
          "INVALID_REQUEST",
        );
      }
      for (const after of ["xyz", "0000000000000000000A", ""]) {
        await refused(`/api/watch/prefix?prefix=a&after=${after}`, {}, 400, [
          "INVALID_REQUEST",
          "INVALID_VERSIONSTAMP",
        ]);
        await refused(`/api/watch/prefix/poll?prefix=a&after=${after}`, {}, 400, [
          "INVALID_REQUEST",
          "INVALID_VERSIONSTAMP",
        ]);
      }
      for (const path of ["/api/watch/prefix?prefix=a", "/api/watch/prefix/poll?prefix=a"]) {
        await refused(path, { headers: { "last-event-id": "nope" } }, 400, "INVALID_VERSIONSTAMP");
      }
    });

    it("answers 429 LIMIT_EXCEEDED to a long poll once the server holds maxStreams", async () => {
      const small = await serve({ maxStreams: 1, pingInterval: 60_000 });
      const held = await sse(small.url, "/api/watch?key=a");
      try {
        await held.next();
        expectRefused(
          await send(small.url, "/api/watch/poll?key=a&timeout=0"),
          429,
          "LIMIT_EXCEEDED",
        );
      } finally {
        held.close();
        await small.close();
      }
    });

    // Bug: the stream registry is consulted inside streamSSE's callback, after the 200 and its
    // headers are sent, so an SSE watch over maxStreams gets an empty 200 that closes at once
    // (and an EventSource client reconnects to it in a loop).
    it("answers 429 LIMIT_EXCEEDED to an SSE watch once the server holds maxStreams", () =>
      muted(async () => {
        const small = await serve({ maxStreams: 1, pingInterval: 60_000 });
        const held = await sse(small.url, "/api/watch?key=a");
        try {
          await held.next();
          for (const path of ["/api/watch?key=a", "/api/watch/prefix?prefix=a"]) {
            const extra = await sse(small.url, path);
            extra.close();
            expect(extra.status).toBe(429);
          }
        } finally {
          held.close();
          await small.close();
        }
      }));
  });

  describe("routes and methods", () => {
    it("answers what node cannot parse with a JSON error, and changes nothing", async () => {
      const before = await snapshot(server.kv);
      const long = await rawExchange(
        server.url,
        `PUT /api/keys/a?comment=${"x".repeat(20_000)} HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{"value":"a"}`,
      );
      expect(long.status).toBe("HTTP/1.1 431 Request Header Fields Too Large");
      expect(long.body).toMatchObject({ error: { code: "PAYLOAD_TOO_LARGE" } });
      const garbage = await rawExchange(server.url, "NOT HTTP AT ALL\r\n\r\n");
      expect(garbage.status).toBe("HTTP/1.1 400 Bad Request");
      expect(garbage.body).toMatchObject({ error: { code: "INVALID_REQUEST" } });
      expect(await snapshot(server.kv)).toEqual(before);
    });

    it("closes, without writing into it, a stream that garbage is pipelined behind", async () => {
      const seen = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(new URL(server.url).port), "127.0.0.1", () =>
          socket.write(
            `GET /api/watch?key=a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\n\r\n`,
          ),
        );
        let text = "";
        socket.on("data", (chunk) => {
          text += chunk.toString();
          if (text.includes("event: entries")) socket.write("GARBAGE\r\n\r\n");
        });
        socket.on("close", () => resolve(text));
        socket.on("error", reject);
      });
      expect(seen).toMatch(/^HTTP\/1\.1 200 /);
      expect(seen).toContain("event: entries");
      expect(seen).not.toContain("HTTP/1.1 400");
    });

    it("answers unknown routes with 404 NOT_FOUND", async () => {
      for (const path of [
        "/api/nope",
        "/nope",
        "/",
        "/api",
        "/api/keys",
        "/api/keys/",
        "/api/driver/nope",
        "/api/docs/nope.css",
        "/api/history/",
      ]) {
        await refused(path, {}, 404, "NOT_FOUND");
      }
    });

    it("answers wrong methods with 405 and the methods the path takes", async () => {
      for (const [method, path] of [
        ["PATCH", "/api/keys/x"],
        ["POST", "/api/keys/x"],
        ["GET", "/api/atomic"],
        ["PUT", "/api/list"],
        ["DELETE", "/api/list"],
        ["GET", "/api/delete-range"],
        ["GET", "/api/get"],
        ["POST", "/api/watch"],
        ["GET", "/api/driver/read"],
        ["GET", "/api/driver/write"],
        ["POST", "/healthz"],
        ["DELETE", "/api/openapi.json"],
        ["GET", "/api/namespace"],
      ] as const) {
        const reply = await call(path, { method });
        expectRefused(reply, 405, "METHOD_NOT_ALLOWED");
        expect(reply.headers.allow).toMatch(/^(GET|POST|PUT|DELETE)(, [A-Z]+)*$/);
        expect(reply.headers.allow).not.toContain(method);
      }
    });
  });

  describe("authentication and namespaces", () => {
    it("refuses missing, empty and garbage tokens with 401", async () => {
      for (const authorization of [
        "",
        "Bearer",
        "Bearer ",
        `Basic ${ADMIN}`,
        `Bearer ${"x".repeat(10_000)}`,
        `Bearer ${ADMIN}x`,
        `Bearer ${ADMIN.slice(1)}`,
      ]) {
        await refused(
          "/api/keys/existing",
          { token: "", headers: { authorization } },
          401,
          "UNAUTHORIZED",
        );
      }
      await refused(
        "/api/keys/k",
        { token: "", method: "PUT", ...json({ value: 1 }) },
        401,
        "UNAUTHORIZED",
      );
    });

    it("refuses invalid and foreign namespaces", async () => {
      await refused("/api/keys/x", { namespace: "$system" }, 400, "INVALID_ARGUMENT");
      await refused("/api/keys/x", { namespace: "n".repeat(257) }, 400, "INVALID_ARGUMENT");
      await refused("/api/keys/x", { token: A_WRITER, namespace: "b" }, 403, "FORBIDDEN");
      await refused(
        "/api/keys/x",
        { token: A_WRITER, namespace: "b", method: "PUT", ...json({ value: 1 }) },
        403,
        "FORBIDDEN",
      );
      await refused("/api/namespace", { token: A_WRITER, method: "DELETE" }, 403, "FORBIDDEN");
    });
  });

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
