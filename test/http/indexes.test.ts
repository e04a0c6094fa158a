/**
 * Secondary indexes, search indexes and search over HTTP, on an in-memory and on a SQLite
 * server: definitions, lists that read an index (and say so in /api/explain), search with where,
 * cursors and highlights, every refusal as a JSON error that writes nothing, tokens by access
 * level and by namespace, injection strings that stay strings, the OpenAPI document, the remote
 * client, and two servers on one SQLite file.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toBase64Url } from "../../src/codec/bytes.js";
import { encodeKey } from "../../src/codec/key.js";
import { type Kv, type KvKey, openKv } from "../../src/index.js";
import { startServer } from "../../src/server/index.js";
import { collect } from "../../src/testing/context.js";
import {
  expectError,
  muted,
  type Reply,
  type Send,
  send,
  serverFor,
  snapshot,
  tempDir,
} from "./helpers.js";

const ADMIN = "idx-admin-token-000000000";
const READER = "idx-reader-token-00000000";
const WRITER = "idx-writer-token-00000000";
const STRANGER = "other-admin-token-0000000";
const NS = "idx";

const USERS: [string, { name: string; email: string; city: string; age: number }][] = [
  ["ada", { name: "Ada", email: "ada@example.com", city: "London", age: 36 }],
  ["alan", { name: "Alan", email: "alan@example.com", city: "Wilmslow", age: 41 }],
  ["grace", { name: "Grace", email: "grace@example.com", city: "Arlington", age: 85 }],
  ["linus", { name: "Linus", email: "linus@example.com", city: "Helsinki", age: 55 }],
  ["margaret", { name: "Margaret", email: "margaret@example.com", city: "London", age: 33 }],
  ["tim", { name: "Tim", email: "tim@example.com", city: "London", age: 69 }],
];
const POSTS: [number, { title: string; body: string; year: number }][] = [
  [
    1,
    { title: "SQLite in production", body: "The write ahead log keeps readers apart.", year: 2021 },
  ],
  [
    2,
    { title: "Running PostgreSQL", body: "Vacuum and the write ahead log, explained.", year: 2022 },
  ],
  [3, { title: "Café culture", body: "Notes on coffee and crème brûlée in Paris.", year: 2020 }],
  [
    4,
    {
      title: "Log structured storage",
      body: "Why merge trees love writes. Logs, logs.",
      year: 2023,
    },
  ],
  [5, { title: "A runner's diary", body: "I run every morning; the log of my runs.", year: 2019 }],
];

/** Strings that would change an SQL statement or an FTS5 query if they were spliced into one. */
const INJECTIONS = [
  "'; DROP TABLE cellar_kv; --",
  "a'); DROP TABLE cellar_kv; --",
  '" OR 1=1 --',
  "title:log",
  "{title body}: log",
  "NEAR(write log, 2)",
  "log AND NOT write",
  "^log",
  "*",
  '"',
  "\u0000",
  "c0 MATCH 'x'",
  "rowid = 1",
  "%",
  "_",
  ")))",
];

const keysOf = (reply: Reply): unknown[] =>
  (reply.json.entries ?? reply.json.hits).map((e: { key: unknown[] }) => e.key.at(-1));

/** A 4xx JSON error or a 200 answer: never a 5xx, never anything but JSON. */
function expectAnswered(reply: Reply, what: string): void {
  expect(reply.status, `${what}: ${reply.text}`).toBeLessThan(500);
  expect(reply.headers["content-type"], what).toMatch(/^application\/json/);
  if (reply.status !== 200 && reply.status !== 201)
    expect(reply.json?.error?.code, `${what}: ${reply.text}`).toEqual(expect.any(String));
}

const dir = tempDir("cellar-http-indexes-");
afterAll(() => dir.cleanup());

describe.each([
  ["memory", ":memory:"],
  ["sqlite", join(dir.path, "indexes.db")],
])("indexes and search over HTTP (%s)", (_name, db) => {
  const server = serverFor({
    db,
    tokens: [
      { token: ADMIN, namespaces: ["*"], access: "admin" },
      { token: READER, namespaces: [NS], access: "read" },
      { token: WRITER, namespaces: [NS], access: "write" },
      { token: STRANGER, namespaces: ["other"], access: "admin" },
    ],
  });
  /** Requests with `token`, in namespace `namespace` (`null`: the token's own). */
  const as =
    (token: string, namespace: string | null = NS) =>
    (path: string, options: Send = {}) =>
      send(server().url, path, { token, ...(namespace !== null && { namespace }), ...options });
  const admin = as(ADMIN);
  const reader = as(READER);
  const kv = () => server().kv.namespace(NS);
  /** The namespace's own entries (its indexes' entries live elsewhere). */
  const entries = async () =>
    (await collect(kv().list({ prefix: [] }))).map((e) => [e.key, e.value, e.versionstamp]);

  beforeAll(async () => {
    const op = kv().atomic();
    for (const [id, user] of USERS) op.set(["users", id], user);
    for (const [id, post] of POSTS) op.set(["posts", id], post);
    expect((await op.commit()).ok).toBe(true);
    for (const body of [
      { name: "byCity", prefix: ["users"], fields: ["city"] },
      { name: "byCityAge", prefix: ["users"], fields: ["city", "age"] },
      { name: "byEmail", prefix: ["users"], fields: ["email"], unique: true },
    ]) {
      const reply = await admin("/api/indexes", { body });
      expect(reply.status, reply.text).toBe(201);
    }
    const search = await admin("/api/search-indexes", {
      body: { name: "posts", prefix: ["posts"], fields: ["title", "body"], tokenizer: "stemmed" },
    });
    expect(search.status, search.text).toBe(201);
  });

  it("creates, lists and drops indexes and search indexes", async () => {
    const created = await admin("/api/indexes", {
      body: { name: "byAge", prefix: ["users"], fields: ["age"] },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.json).toEqual({
      index: {
        name: "byAge",
        prefix: ["users"],
        fields: ["age"],
        unique: false,
        state: "ready",
        createdAt: expect.any(Number),
      },
    });
    const listed = await admin("/api/indexes");
    expect(listed.json.indexes.map((i: { name: string }) => i.name)).toEqual([
      "byCity",
      "byCityAge",
      "byEmail",
      "byAge",
    ]);
    expect(listed.json.indexes[2]).toMatchObject({ name: "byEmail", unique: true });

    const titles = await admin("/api/search-indexes", {
      body: { name: "titles", prefix: ["posts"], fields: ["title"], tokenizer: "trigram" },
    });
    expect(titles.status, titles.text).toBe(201);
    expect(titles.json.index).toEqual({
      name: "titles",
      prefix: ["posts"],
      fields: ["title"],
      tokenizer: "trigram",
      language: "english",
      state: "ready",
      createdAt: expect.any(Number),
    });
    const searchIndexes = await admin("/api/search-indexes");
    expect(searchIndexes.json.indexes.map((i: { name: string }) => i.name)).toEqual([
      "posts",
      "titles",
    ]);
    expect(keysOf(await admin("/api/search?index=titles&q=postgre"))).toEqual([2]);

    const dropped = await admin("/api/indexes/byAge", { method: "DELETE" });
    expect([dropped.status, dropped.json]).toEqual([200, { dropped: "byAge" }]);
    expectError(await admin("/api/indexes/byAge", { method: "DELETE" }), 404, "NOT_FOUND");
    const droppedSearch = await admin("/api/search-indexes/titles", { method: "DELETE" });
    expect([droppedSearch.status, droppedSearch.json]).toEqual([200, { dropped: "titles" }]);
    expectError(await admin("/api/search?index=titles&q=postgre"), 404, "NOT_FOUND");
    expect((await admin("/api/indexes")).json.indexes).toHaveLength(3);
    expect((await admin("/api/search-indexes")).json.indexes).toHaveLength(1);
  });

  it("walks an index with POST /api/list { index }, a page and a cursor at a time", async () => {
    // byCityAge orders by city, then age, then key: the London users by age.
    const walk = { name: "byCityAge", prefix: ["London"] };
    const first = await reader("/api/list", { body: { index: walk, limit: 2 } });
    expect(first.status, first.text).toBe(200);
    expect(keysOf(first)).toEqual(["margaret", "ada"]);
    expect(first.json.hasMore).toBe(true);
    const second = await reader("/api/list", {
      body: { index: walk, limit: 2, cursor: first.json.cursor },
    });
    expect(keysOf(second)).toEqual(["tim"]);
    expect(second.json).toMatchObject({ cursor: null, hasMore: false });
    const older = await reader("/api/list", {
      body: { index: { name: "byCityAge", start: ["London", 35] }, limit: 10, keysOnly: true },
    });
    expect(keysOf(older)[0]).toBe("ada");
    expectError(
      await reader("/api/list", { body: { index: walk, prefix: ["users"] } }),
      400,
      "INVALID_SELECTOR",
    );
    expectError(await reader("/api/list", { body: { index: { name: "nope" } } }), 404, "NOT_FOUND");
  });

  it("answers POST /api/list with where from the index it names in /api/explain, as a scan would", async () => {
    const cases: [object, { index: string | null; ordered: boolean; ranges: number }, unknown[]][] =
      [
        [
          { city: "London" },
          { index: "byCity", ordered: true, ranges: 1 },
          ["ada", "margaret", "tim"],
        ],
        [
          { city: { $in: ["Helsinki", "Wilmslow"] } },
          { index: "byCity", ordered: false, ranges: 2 },
          ["alan", "linus"],
        ],
        [
          { city: { $in: ["London", "Paris"] }, age: { $gte: 35 } },
          { index: "byCityAge", ordered: false, ranges: 2 },
          ["ada", "tim"],
        ],
        [
          { city: "London", age: 33 },
          { index: "byCityAge", ordered: true, ranges: 1 },
          ["margaret"],
        ],
        [{ email: "grace@example.com" }, { index: "byEmail", ordered: true, ranges: 1 }, ["grace"]],
        [{ name: "Ada" }, { index: null, ordered: false, ranges: 0 }, ["ada"]],
        [
          { city: { $ieq: "london" } },
          { index: null, ordered: false, ranges: 0 },
          ["ada", "margaret", "tim"],
        ],
      ];
    for (const [where, plan, want] of cases) {
      const explained = await reader("/api/explain", { body: { prefix: ["users"], where } });
      expect([explained.status, explained.json], JSON.stringify(where)).toEqual([200, plan]);
      const listed = await reader("/api/list", { body: { prefix: ["users"], where } });
      expect(keysOf(listed), JSON.stringify(where)).toEqual(want);
      const counted = await reader("/api/count", { body: { prefix: ["users"], where } });
      expect(counted.json).toEqual({ count: want.length });
    }
    // Pages through an index: limit counts matches, the cursor resumes after the last.
    const pages: unknown[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await reader("/api/list", {
        body: {
          prefix: ["users"],
          where: { city: "London" },
          limit: 2,
          reverse: true,
          ...(cursor && { cursor }),
        },
      });
      expect(page.status, page.text).toBe(200);
      pages.push(keysOf(page));
      if (!page.json.cursor) break;
      cursor = page.json.cursor;
    }
    expect(pages).toEqual([["tim", "margaret"], ["ada"]]);
    // Outside the index's prefix, or a range of another namespace's keys: a scan.
    const outside = await reader("/api/explain", {
      body: { prefix: ["posts"], where: { city: "London" } },
    });
    expect(outside.json.index).toBeNull();
    const ranged = await reader("/api/explain", {
      body: { start: ["users", "a"], end: ["users", "m"], where: { city: "London" } },
    });
    expect(ranged.json).toEqual({ index: "byCity", ordered: true, ranges: 1 });
    const inRange = await reader("/api/list", {
      body: { start: ["users", "a"], end: ["users", "m"], where: { city: "London" } },
    });
    expect(keysOf(inRange)).toEqual(["ada"]);
  });

  it("searches with GET and POST: ranking, where, limit, cursor and highlights", async () => {
    const got = await reader(`/api/search?index=posts&q=${encodeURIComponent("write ahead log")}`);
    expect(got.status, got.text).toBe(200);
    expect(new Set(keysOf(got))).toEqual(new Set([1, 2]));
    for (const hit of got.json.hits) {
      expect(hit).toEqual({
        key: ["posts", expect.any(Number)],
        value: expect.objectContaining({ title: expect.any(String) }),
        versionstamp: expect.stringMatching(/^[0-9a-f]{20}$/),
        score: expect.any(Number),
      });
    }
    expect(got.json.cursor).toBeNull();
    // Stemmed: "running" finds "runner's", "run" and "runs"; every word must match.
    expect(new Set(keysOf(await reader("/api/search?index=posts&q=running")))).toEqual(
      new Set([2, 5]),
    );

    const all = keysOf(await reader("/api/search?index=posts&q=log&limit=100"));
    expect(new Set(all)).toEqual(new Set([1, 2, 4, 5]));
    const paged: unknown[] = [];
    let cursor: string | null = null;
    do {
      const page: Reply = await reader(
        `/api/search?index=posts&q=log&limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      );
      expect(page.json.hits.length, page.text).toBeLessThanOrEqual(1);
      paged.push(...keysOf(page));
      cursor = page.json.cursor;
    } while (cursor);
    expect(paged).toEqual(all);

    const highlighted = await reader("/api/search?index=posts&q=coffee&highlight=1");
    expect(highlighted.json.hits).toHaveLength(1);
    expect(highlighted.json.hits[0].highlights).toEqual({
      title: null,
      body: expect.stringContaining("<mark>coffee</mark>"),
    });

    const posted = await reader("/api/search", {
      body: {
        index: "posts",
        query: "log",
        where: { year: { $gte: 2022 } },
        limit: 1,
        highlight: { start: "[", end: "]" },
        metadata: true,
      },
    });
    expect(posted.status, posted.text).toBe(200);
    expect(posted.json.hits).toHaveLength(1);
    expect(posted.json.hits[0].highlights.title ?? posted.json.hits[0].highlights.body).toMatch(
      /\[log/i,
    );
    expect(posted.json.hits[0].metadata).toMatchObject({ version: expect.any(Number) });
    const rest = await reader("/api/search", {
      body: {
        index: "posts",
        query: "log",
        where: { year: { $gte: 2022 } },
        cursor: posted.json.cursor,
      },
    });
    expect(new Set([...keysOf(posted), ...keysOf(rest)])).toEqual(new Set([2, 4]));
    expect(rest.json.cursor).toBeNull();
  });

  describe("refusals, each a JSON error that writes nothing", () => {
    let before: unknown;
    beforeAll(async () => {
      before = await snapshot(server().kv);
    });
    afterAll(async () => {
      expect(await snapshot(server().kv)).toEqual(before);
    });

    it("an unknown index is 404 NOT_FOUND", async () => {
      expectError(await reader("/api/search?index=nope&q=log"), 404, "NOT_FOUND");
      expectError(
        await reader("/api/search", { body: { index: "nope", query: "log" } }),
        404,
        "NOT_FOUND",
      );
      expectError(await admin("/api/indexes/nope", { method: "DELETE" }), 404, "NOT_FOUND");
      expectError(await admin("/api/search-indexes/nope", { method: "DELETE" }), 404, "NOT_FOUND");
      // A search index is not a secondary index, nor the other way round.
      expectError(await admin("/api/indexes/posts", { method: "DELETE" }), 404, "NOT_FOUND");
      expectError(await reader("/api/search?index=byCity&q=London"), 404, "NOT_FOUND");
    });

    it("a taken name is 409 ALREADY_EXISTS", async () => {
      expectError(
        await admin("/api/indexes", {
          body: { name: "byCity", prefix: ["users"], fields: ["age"] },
        }),
        409,
        "ALREADY_EXISTS",
      );
      expectError(
        await admin("/api/search-indexes", {
          body: { name: "posts", prefix: ["posts"], fields: ["title"] },
        }),
        409,
        "ALREADY_EXISTS",
      );
    });

    it("a write that breaks a unique index is 409 UNIQUE_VIOLATION", async () => {
      const put = await admin("/api/keys/users/eve", {
        method: "PUT",
        body: { value: { name: "Eve", email: "ada@example.com" } },
      });
      expectError(put, 409, "UNIQUE_VIOLATION");
      expect(put.json.error.index).toBe("byEmail");
      expect((await admin("/api/keys/users/eve")).json.value).toBeNull();
      const atomic = await admin("/api/atomic", {
        body: {
          mutations: [
            { type: "set", key: ["users", "x"], value: { email: "same@example.com" } },
            { type: "set", key: ["users", "y"], value: { email: "same@example.com" } },
          ],
        },
      });
      expectError(atomic, 409, "UNIQUE_VIOLATION");
    });

    it("a query with nothing to look for, or too long, is 400 INVALID_QUERY", async () => {
      for (const q of [
        "",
        "   ",
        "-draft",
        '-"write ahead"',
        "!!! ,,, ...",
        "x".repeat(1001),
        Array(65).fill("w").join(" "),
      ]) {
        expectError(
          await reader(`/api/search?index=posts&q=${encodeURIComponent(q)}`),
          400,
          "INVALID_QUERY",
        );
        expectError(
          await reader("/api/search", { body: { index: "posts", query: q } }),
          400,
          "INVALID_QUERY",
        );
      }
    });

    it("bad definitions and bad search options are 400", async () => {
      const bad: [string, object, string][] = [
        ["/api/indexes", { name: "bad", prefix: ["users"], fields: ["a..b"] }, "INVALID_ARGUMENT"],
        ["/api/indexes", { name: "bad", prefix: ["users"], fields: [".a"] }, "INVALID_ARGUMENT"],
        ["/api/indexes", { name: "bad", prefix: ["users"], fields: [] }, "INVALID_ARGUMENT"],
        [
          "/api/indexes",
          { name: "bad", prefix: ["users"], fields: ["a", "a"] },
          "INVALID_ARGUMENT",
        ],
        [
          "/api/indexes",
          {
            name: "bad",
            prefix: ["users"],
            fields: Array(9)
              .fill(0)
              .map((_, i) => `f${i}`),
          },
          "INVALID_ARGUMENT",
        ],
        [
          "/api/indexes",
          { name: "has space", prefix: ["users"], fields: ["a"] },
          "INVALID_ARGUMENT",
        ],
        ["/api/indexes", { name: "bad", prefix: "users", fields: ["a"] }, "INVALID_REQUEST"],
        ["/api/indexes", { name: "bad", prefix: ["users"], fields: [1] }, "INVALID_REQUEST"],
        [
          "/api/indexes",
          { name: "bad", prefix: ["users"], fields: ["a"], unique: "yes" },
          "INVALID_REQUEST",
        ],
        [
          "/api/indexes",
          { name: "bad", prefix: ["users"], fields: ["a"], colour: "red" },
          "INVALID_REQUEST",
        ],
        [
          "/api/search-indexes",
          { name: "bad", prefix: ["posts"], fields: ["title"], tokenizer: "soundex" },
          "INVALID_REQUEST",
        ],
        [
          "/api/search-indexes",
          { name: "bad", prefix: ["posts"], fields: ["title"], language: "klingon" },
          "INVALID_ARGUMENT",
        ],
        [
          "/api/search-indexes",
          { name: "bad", prefix: ["posts"], fields: ["ti..tle"] },
          "INVALID_ARGUMENT",
        ],
        [
          "/api/search-indexes",
          { name: "bad", prefix: ["posts"], fields: ["title"], onProgress: 1 },
          "INVALID_REQUEST",
        ],
        ["/api/search", { index: "posts", query: "log", colour: "red" }, "INVALID_REQUEST"],
        ["/api/search", { index: "posts", query: "log", limit: 5000 }, "INVALID_ARGUMENT"],
        ["/api/search", { index: "posts", query: "log", cursor: "not a cursor" }, "INVALID_CURSOR"],
        [
          "/api/search",
          { index: "posts", query: "log", highlight: { start: '"', end: "]" } },
          "INVALID_ARGUMENT",
        ],
        [
          "/api/search",
          { index: "posts", query: "log", where: { year: { $near: 1 } } },
          "INVALID_FILTER",
        ],
        ["/api/search", { index: "posts", query: 42 }, "INVALID_REQUEST"],
        ["/api/explain", { prefix: ["users"] }, "INVALID_REQUEST"],
        ["/api/explain", { prefix: ["users"], where: { city: { $near: 1 } } }, "INVALID_FILTER"],
      ];
      for (const [path, body, code] of bad) {
        const reply = await admin(path, { body });
        expect(reply.status, `${path} ${JSON.stringify(body)}: ${reply.text}`).toBe(400);
        expect(reply.json.error.code, `${path} ${JSON.stringify(body)}`).toBe(code);
      }
      expectError(await reader("/api/search?index=posts&q=log&limit=0"), 400, "INVALID_REQUEST");
      expectError(await reader("/api/search?index=posts"), 400, "INVALID_REQUEST");
      expectError(await reader("/api/search?index=bad%20name&q=log"), 400, "INVALID_ARGUMENT");
      expect((await admin("/api/indexes")).json.indexes).toHaveLength(3);
      expect((await admin("/api/search-indexes")).json.indexes).toHaveLength(1);
    });
  });

  it("refuses a unique index over duplicates with 409 UNIQUE_VIOLATION, leaving none behind", async () => {
    // Numbering and building the index commit to the reserved namespaces; the entries stay as they are.
    const before = await entries();
    expectError(
      await admin("/api/indexes", {
        body: { name: "byCityOnce", prefix: ["users"], fields: ["city"], unique: true },
      }),
      409,
      "UNIQUE_VIOLATION",
    );
    expect((await admin("/api/indexes")).json.indexes).toHaveLength(3);
    expect(await entries()).toEqual(before);
    const created = await admin("/api/indexes", {
      body: { name: "byCityOnce", prefix: ["users"], fields: ["city"] },
    });
    expect(created.status, created.text).toBe(201);
    expect((await admin("/api/indexes/byCityOnce", { method: "DELETE" })).status).toBe(200);
  });

  // A misspelt parameter is a 400 naming it, never a silently wider answer.
  it("refuses an unknown query parameter of GET /api/search, as every other route does", async () => {
    const reply = await reader("/api/search?index=posts&q=log&limt=1");
    expect(reply.status, reply.text).toBe(400);
    expect(reply.json.error).toMatchObject({
      code: "INVALID_REQUEST",
      message: expect.stringContaining("limt"),
    });
  });

  describe("tokens", () => {
    it("a namespace's write token cannot reach its indexes' entries through the driver protocol", async () => {
      const catalog = toBase64Url(encodeKey([`$index:${NS}`, "catalog"]));
      const write = await as(WRITER)("/api/driver/write", {
        body: {
          writes: [{ checks: [], mutations: [{ t: "delete", k: catalog }], now: Date.now() }],
        },
      });
      expect(write.json.results[0].error.code, write.text).toBe("FORBIDDEN");
      const read = await as(WRITER)("/api/driver/read", {
        body: {
          ranges: [
            {
              start: catalog,
              end: toBase64Url(encodeKey([`$index:${NS}`, "catalog", 0])),
              limit: 1,
            },
          ],
          now: Date.now(),
        },
      });
      expect(read.status, read.text).toBe(403);
      expect((await admin("/api/indexes")).json.indexes).toHaveLength(3);
      expectError(
        await admin("/api/driver/indexes", {
          body: { namespace: `$index:${NS}`, op: "listIndexes", args: {} },
        }),
        400,
        "INVALID_ARGUMENT",
      );
    });

    it("a read token searches, lists, explains and lists indexes, but defines none (403)", async () => {
      for (const [path, body] of [
        ["/api/indexes", { name: "byName", prefix: ["users"], fields: ["name"] }],
        ["/api/search-indexes", { name: "names", prefix: ["users"], fields: ["name"] }],
      ] as const) {
        expectError(await reader(path, { body }), 403, "FORBIDDEN");
        expectError(await as(WRITER)(path, { body }), 403, "FORBIDDEN");
      }
      expectError(await reader("/api/indexes/byCity", { method: "DELETE" }), 403, "FORBIDDEN");
      expectError(
        await as(WRITER)("/api/search-indexes/posts", { method: "DELETE" }),
        403,
        "FORBIDDEN",
      );
      expectError(
        await reader("/api/driver/indexes", {
          body: {
            namespace: NS,
            op: "createIndex",
            args: { name: "byName", prefix: ["users"], fields: ["name"] },
          },
        }),
        403,
        "FORBIDDEN",
      );
      expect((await reader("/api/indexes")).json.indexes).toHaveLength(3);
      expect((await reader("/api/search-indexes")).json.indexes).toHaveLength(1);
      expect(keysOf(await reader("/api/search?index=posts&q=coffee"))).toEqual([3]);
      expect(
        keysOf(await reader("/api/search", { body: { index: "posts", query: "coffee" } })),
      ).toEqual([3]);
      const walked = await reader("/api/driver/indexes", {
        body: { namespace: NS, op: "search", args: { name: "posts", query: "coffee" } },
      });
      expect(walked.status, walked.text).toBe(200);
      expect(walked.json.hits).toHaveLength(1);
    });

    it("a token of another namespace neither sees nor uses this namespace's indexes", async () => {
      const stranger = as(STRANGER, null);
      expectError(await as(STRANGER)("/api/indexes"), 403, "FORBIDDEN");
      expectError(await as(STRANGER)("/api/search?index=posts&q=log"), 403, "FORBIDDEN");
      expect((await stranger("/api/indexes")).json).toEqual({ indexes: [] });
      expect((await stranger("/api/search-indexes")).json).toEqual({ indexes: [] });
      expectError(await stranger("/api/search?index=posts&q=log"), 404, "NOT_FOUND");
      expectError(
        await stranger("/api/search", { body: { index: "posts", query: "log" } }),
        404,
        "NOT_FOUND",
      );
      expectError(await stranger("/api/indexes/byCity", { method: "DELETE" }), 404, "NOT_FOUND");
      expectError(
        await stranger("/api/search-indexes/posts", { method: "DELETE" }),
        404,
        "NOT_FOUND",
      );
      expect(
        (await stranger("/api/explain", { body: { prefix: ["users"], where: { city: "London" } } }))
          .json.index,
      ).toBeNull();
      for (const op of ["listIndexes", "listSearchIndexes", "dropIndex"]) {
        const reply = await stranger("/api/driver/indexes", {
          body: { namespace: NS, op, args: { name: "byCity" } },
        });
        expectError(reply, 403, "FORBIDDEN");
      }
      // Names belong to their namespace: the stranger's own byCity is another index.
      const own = await stranger("/api/indexes", {
        body: { name: "byCity", prefix: ["users"], fields: ["city"] },
      });
      expect(own.status, own.text).toBe(201);
      expect((await stranger("/api/indexes/byCity", { method: "DELETE" })).status).toBe(200);
      expect((await admin("/api/indexes")).json.indexes).toHaveLength(3);
      expect(
        (await reader("/api/explain", { body: { prefix: ["users"], where: { city: "London" } } }))
          .json.index,
      ).toBe("byCity");
    });
  });

  it("keeps SQL and FTS injection strings as strings: field paths, operands and queries", async () => {
    const before = await entries();
    for (const field of INJECTIONS) {
      for (const [path, body] of [
        ["/api/indexes", { name: "injected", prefix: ["users"], fields: [field] }],
        ["/api/search-indexes", { name: "injected", prefix: ["posts"], fields: [field] }],
      ] as const) {
        const reply = await admin(path, { body });
        expectAnswered(reply, `${path} ${JSON.stringify(field)}`);
        if (reply.status !== 201) continue;
        // A path that is a path names a field and nothing else: the index works, then goes.
        if (path === "/api/indexes") {
          const listed = await reader("/api/list", {
            body: { prefix: ["users"], where: { [field]: field } },
          });
          expect([listed.status, listed.json.entries], listed.text).toEqual([200, []]);
        } else {
          expectAnswered(
            await reader(`/api/search?index=injected&q=${encodeURIComponent(`log ${field}`)}`),
            field,
          );
        }
        expect((await admin(`${path}/injected`, { method: "DELETE" })).status).toBe(200);
      }
    }
    for (const text of INJECTIONS) {
      for (const where of [
        { city: { $in: [text, "London"] } },
        { city: "London", age: { $lt: text } },
        { email: { $between: [text, `${text}\uffff`] } },
      ]) {
        expectAnswered(
          await reader("/api/list", { body: { prefix: ["users"], where } }),
          JSON.stringify(where),
        );
        expectAnswered(
          await reader("/api/explain", { body: { prefix: ["users"], where } }),
          JSON.stringify(where),
        );
        expectAnswered(
          await reader("/api/search", {
            body: { index: "posts", query: "log", where: { title: text } },
          }),
          JSON.stringify(where),
        );
      }
      for (const query of [text, `log "${text}"`, `log ${text}*`, `log OR -${text}`]) {
        expectAnswered(
          await reader(`/api/search?index=posts&q=${encodeURIComponent(query)}`),
          query,
        );
        expectAnswered(
          await reader("/api/search", { body: { index: "posts", query, highlight: true } }),
          query,
        );
      }
    }
    expect(await entries()).toEqual(before);
    expect(new Set(keysOf(await reader("/api/search?index=posts&q=write%20ahead")))).toEqual(
      new Set([1, 2]),
    );
    expect(
      keysOf(await reader("/api/list", { body: { prefix: ["users"], where: { city: "London" } } })),
    ).toEqual(["ada", "margaret", "tim"]);
    expect((await admin("/api/indexes")).json.indexes).toHaveLength(3);
    expect((await admin("/api/search-indexes")).json.indexes).toHaveLength(1);
  });

  // A bound past the doubles' range rounds to Infinity: the plan widens it, the filter decides.
  it("answers a bigint operand past the doubles' range on an indexed field, not a 500", async () => {
    const where = { city: "London", age: { $gt: { $bigint: `1${"0".repeat(400)}` } } };
    await muted(async () => {
      const listed = await reader("/api/list", { body: { prefix: ["users"], where } });
      expect([listed.status, listed.json], listed.text).toEqual([
        200,
        { entries: [], cursor: null, hasMore: false },
      ]);
    });
  });

  it("documents every index and search route in the OpenAPI document, with examples", async () => {
    const doc = (await send(server().url, "/api/openapi.json", { token: READER })).json;
    const operations: [string, string, string][] = [
      ["/api/indexes", "get", "getIndexes"],
      ["/api/indexes", "post", "postIndexes"],
      ["/api/indexes/{name}", "delete", "deleteIndexesByName"],
      ["/api/search-indexes", "get", "getSearchIndexes"],
      ["/api/search-indexes", "post", "postSearchIndexes"],
      ["/api/search-indexes/{name}", "delete", "deleteSearchIndexesByName"],
      ["/api/search", "get", "getSearch"],
      ["/api/search", "post", "postSearch"],
      ["/api/explain", "post", "postExplain"],
    ];
    for (const [path, method, id] of operations) {
      const operation = doc.paths[path]?.[method];
      expect(operation, `${method} ${path}`).toBeDefined();
      expect(operation.operationId).toBe(id);
      expect(operation.summary).toEqual(expect.any(String));
    }
    const schemas = doc.components.schemas;
    expect(schemas.CreateIndex.example).toEqual({
      name: "byEmail",
      prefix: ["users"],
      fields: ["email"],
      unique: true,
    });
    expect(schemas.CreateSearchIndex.example).toMatchObject({
      name: "posts",
      fields: ["title", "body"],
    });
    expect(schemas.Search.example).toMatchObject({ index: "posts", query: expect.any(String) });
    expect(schemas.ExplainRequest.example).toMatchObject({ where: { email: "ada@example.com" } });
    const q = doc.paths["/api/search"].get.parameters.find(
      (p: { name?: string }) => p.name === "q",
    );
    expect(q.schema.example).toEqual(expect.any(String));
    for (const name of ["Index", "SearchIndex", "SearchHit", "SearchResult", "Explain"])
      expect(schemas[name], name).toBeDefined();
    // Each example is a request the server takes.
    const example = await admin("/api/explain", { body: schemas.ExplainRequest.example });
    expect(example.json).toEqual({ index: "byEmail", ordered: true, ranges: 1 });
  });

  it("serves the remote client: index, list with where, explain, search, drop", async () => {
    const remote: Kv = await openKv(server().url, { token: ADMIN, namespace: "remote" });
    try {
      for (const [id, user] of USERS) await remote.set(["users", id], user);
      for (const [id, post] of POSTS) await remote.set(["posts", id], post);
      const info = await remote.createIndex("byCity", { prefix: ["users"], fields: ["city"] });
      expect(info).toMatchObject({ name: "byCity", prefix: ["users"], state: "ready" });
      await remote.set(["users", "zoe"], {
        name: "Zoe",
        city: "London",
        email: "zoe@example.com",
        age: 7,
      });
      const ids = (list: { key: KvKey }[]) => list.map((e) => e.key.at(-1));
      expect(
        ids(await collect(remote.list({ prefix: ["users"] }, { where: { city: "London" } }))),
      ).toEqual(["ada", "margaret", "tim", "zoe"]);
      expect(await remote.explain({ prefix: ["users"] }, { where: { city: "London" } })).toEqual({
        index: "byCity",
        ordered: true,
        ranges: 1,
      });
      expect(
        ids(await collect(remote.list({ index: "byCity", prefix: ["London"] }, { limit: 2 }))),
      ).toEqual(["ada", "margaret"]);
      await remote.createSearchIndex("posts", { prefix: ["posts"], fields: ["title", "body"] });
      const found = await remote.search("posts", "write ahead log", { highlight: true });
      expect(new Set(ids([...found.hits]))).toEqual(new Set([1, 2]));
      expect(found.hits[0]!.highlights).toEqual({
        title: null,
        body: expect.stringContaining("<mark>"),
      });
      expect((await remote.listIndexes()).map((i) => i.name)).toEqual(["byCity"]);
      await remote.dropIndex("byCity");
      expect(await remote.listIndexes()).toEqual([]);
      // Nothing leaked into the namespace the HTTP tests use.
      expect(
        (await admin("/api/indexes")).json.indexes.map((i: { name: string }) => i.name),
      ).toEqual(["byCity", "byCityAge", "byEmail"]);
    } finally {
      await remote.close();
    }
  });
});

describe("two servers on one SQLite file", () => {
  const file = join(dir.path, "shared.db");

  it("keep each other's indexes: a server that cached no index maintains and enforces one the other created", async () => {
    const first = await startServer({ db: file, port: 0 });
    const second = await startServer({ db: file, port: 0 });
    try {
      const put = (base: string, path: string, value: unknown) =>
        send(base, `/api/keys/${path}`, { method: "PUT", body: { value } });
      // The second server writes first, so it holds the catalog from before the index.
      expect(
        (await put(second.url, "users/ada", { email: "ada@example.com", city: "London" })).status,
      ).toBe(200);
      const created = await send(first.url, "/api/indexes", {
        body: { name: "byEmail", prefix: ["users"], fields: ["email"], unique: true },
      });
      expect(created.status, created.text).toBe(201);
      expectError(
        await put(second.url, "users/eve", { email: "ada@example.com" }),
        409,
        "UNIQUE_VIOLATION",
      );
      expect((await send(first.url, "/api/keys/users/eve")).json.value).toBeNull();
      expect(
        (await put(second.url, "users/bob", { email: "bob@example.com", city: "Paris" })).status,
      ).toBe(200);
      const listed = await send(first.url, "/api/list", {
        body: { prefix: ["users"], where: { email: "bob@example.com" } },
      });
      expect(keysOf(listed)).toEqual(["bob"]);
      expect(
        (
          await send(first.url, "/api/explain", {
            body: { prefix: ["users"], where: { email: "bob@example.com" } },
          })
        ).json.index,
      ).toBe("byEmail");
      expectError(
        await put(first.url, "users/bobby", { email: "bob@example.com" }),
        409,
        "UNIQUE_VIOLATION",
      );
    } finally {
      await second.close();
      await first.close();
    }
  });
});
