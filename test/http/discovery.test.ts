/** Discovery over a real port: namespaces, stats, queues, keys-only listing. */
import { beforeAll, describe, expect, it } from "vitest";
import { reservedView } from "../../src/core/surface.js";
import { ADMIN, expectError, send, serverFor } from "./helpers.js";

const A_READER = "a-reader-token-000000000";
const AB_WRITER = "ab-writer-token-00000000";

describe("discovery", () => {
  const server = serverFor({
    tokens: [
      { token: ADMIN, namespaces: ["*"], access: "admin" },
      { token: A_READER, namespaces: ["a"], access: "read" },
      { token: AB_WRITER, namespaces: ["a", "b"], access: "write" },
    ],
  });
  const call = (path: string, token: string, namespace?: string) =>
    send(server().url, path, { token, ...(namespace !== undefined && { namespace }) });

  beforeAll(async () => {
    const kv = server().kv;
    await kv.set(["root"], "in the default namespace");
    for (const i of [1, 2, 3]) await kv.namespace("a").set(["item", i], "x".repeat(10));
    await kv.namespace("b").set(["only"], { n: 1 });
    await kv.namespace("c").set(["k"], 1);
    await kv.namespace("gone").set(["k"], 1, { expireIn: 1 });
    await reservedView(kv, "$internal").set(["k"], 1);
    await new Promise((resolve) => setTimeout(resolve, 10));
  });

  it("lists every namespace with entries to an admin, reserved ones marked, expired-only ones left out", async () => {
    const reply = await call("/api/namespaces", ADMIN);
    expect(reply.status, reply.text).toBe(200);
    expect(reply.json).toEqual({
      namespaces: [
        { name: "", entries: 1 },
        { name: "$internal", entries: 1, reserved: true },
        { name: "a", entries: 3 },
        { name: "b", entries: 1 },
        { name: "c", entries: 1 },
      ],
      next: null,
    });
  });

  it("lists only the token's own namespaces to other tokens", async () => {
    expect((await call("/api/namespaces", A_READER)).json.namespaces).toEqual([
      { name: "a", entries: 3 },
    ]);
    expect((await call("/api/namespaces", AB_WRITER, "a")).json.namespaces).toEqual([
      { name: "a", entries: 3 },
      { name: "b", entries: 1 },
    ]);
  });

  it("lets a token of several namespaces list them and their stats without naming one", async () => {
    const listed = await call("/api/namespaces", AB_WRITER);
    expect(listed.status, listed.text).toBe(200);
    expect(listed.json.namespaces.map((n: { name: string }) => n.name)).toEqual(["a", "b"]);
    expect((await call("/api/stats", AB_WRITER)).status).toBe(200);
    // A route of one namespace still needs it named.
    expect((await call("/api/queues", AB_WRITER)).status).toBe(403);
  });

  it("pages namespaces with limit and after", async () => {
    const first = await call("/api/namespaces?limit=2", ADMIN);
    expect(first.json.namespaces.map((n: { name: string }) => n.name)).toEqual(["", "$internal"]);
    expect(first.json.next).toBe("$internal");
    const second = await call(`/api/namespaces?limit=2&after=${first.json.next}`, ADMIN);
    expect(second.json.namespaces.map((n: { name: string }) => n.name)).toEqual(["a", "b"]);
    const last = await call(`/api/namespaces?limit=2&after=${second.json.next}`, ADMIN);
    expect(last.json).toEqual({ namespaces: [{ name: "c", entries: 1 }], next: null });
  });

  it("answers entries and approximate bytes, in total and per visible namespace", async () => {
    const admin = await call("/api/stats", ADMIN);
    expect(admin.status, admin.text).toBe(200);
    const a = admin.json.namespaces.find((n: { name: string }) => n.name === "a");
    // Three keys ["a", "item", i] and three 12-byte JSON strings.
    expect(a.entries).toBe(3);
    expect(a.bytes).toBeGreaterThanOrEqual(3 * 12 + 3 * 8);
    expect(admin.json.entries).toBe(7);
    expect(admin.json.bytes).toBe(
      admin.json.namespaces.reduce((sum: number, n: { bytes: number }) => sum + n.bytes, 0),
    );
    const reader = await call("/api/stats", A_READER);
    expect(reader.json).toEqual({ entries: 3, bytes: a.bytes, namespaces: [a] });
  });

  it("lists keys and versionstamps without values (keysOnly)", async () => {
    const get = await call("/api/list?prefix=item&keysOnly=1", A_READER);
    expect(get.status, get.text).toBe(200);
    expect(get.json.entries).toEqual(
      [1, 2, 3].map((i) => ({ key: ["item", i], versionstamp: expect.any(String) })),
    );
    const post = await send(server().url, "/api/list", {
      token: A_READER,
      body: { prefix: ["item"], keysOnly: true, limit: 2 },
    });
    expect(post.json.entries).toEqual(
      [1, 2].map((i) => ({ key: ["item", i], versionstamp: expect.any(String) })),
    );
    expect(post.json.hasMore).toBe(true);
    expectError(await call("/api/list?keysOnly=yes", A_READER), 400, "INVALID_REQUEST");
  });

  it("refuses discovery without a token", async () => {
    expectError(await send(server().url, "/api/namespaces"), 401, "UNAUTHORIZED");
    expectError(await send(server().url, "/api/stats"), 401, "UNAUTHORIZED");
  });
});

describe("GET /api/queues", () => {
  const server = serverFor({
    tokens: [
      { token: ADMIN, namespaces: ["*"], access: "admin" },
      { token: A_READER, namespaces: ["a"], access: "read" },
    ],
  });

  it("lists the queues of the request's namespace that hold messages, with their stats", async () => {
    const a = server().kv.namespace("a");
    await a.queue("emails").enqueue({ to: "ada" });
    await a.queue("emails").enqueue({ to: "bob" }, { delay: 60_000 });
    await a.enqueue("to the default queue");
    await server().kv.namespace("b").queue("jobs").enqueue(1);
    const reply = await send(server().url, "/api/queues", { token: A_READER });
    expect(reply.status, reply.text).toBe(200);
    expect(reply.json.queues).toEqual([
      { name: "default", pending: 1, delayed: 0, inFlight: 0, dead: 0, nextAt: null },
      { name: "emails", pending: 1, delayed: 1, inFlight: 0, dead: 0, nextAt: expect.any(Number) },
    ]);
    const b = await send(server().url, "/api/queues", { token: ADMIN, namespace: "b" });
    expect(b.json.queues.map((q: { name: string }) => q.name)).toEqual(["jobs"]);
    const empty = await send(server().url, "/api/queues", { token: ADMIN, namespace: "c" });
    expect(empty.json).toEqual({ queues: [] });
  });
});
