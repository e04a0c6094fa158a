/**
 * The seed's route table (seed 001) over a real port, each alias with the request and the
 * response its API reference shows, and the real keys its paths could have shadowed.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { expectError, send, serverFor, VERSIONSTAMP } from "./helpers.js";

describe("seed-compat routes", () => {
  const server = serverFor();
  const call = (path: string, options: Parameters<typeof send>[2] = {}) =>
    send(server().url, path, options);
  const entry = (key: unknown[], value: unknown) => ({
    key,
    value,
    versionstamp: expect.stringMatching(VERSIONSTAMP),
  });

  beforeAll(async () => {
    const kv = server().kv;
    await kv.set(["users", "001"], { name: "Alice" });
    await kv.set(["users", "002"], { name: "Bob" });
    await kv.set(["users", "002", "avatar"], "bob.png");
    await kv.set(["posts", "456"], { title: "Hello" });
  });

  it("GET /api/keys?prefix=users&limit=50 answers an array of entries", async () => {
    const reply = await call("/api/keys?prefix=users&limit=50");
    expect(reply.status, reply.text).toBe(200);
    expect(reply.json).toEqual([
      entry(["users", "001"], { name: "Alice" }),
      entry(["users", "002"], { name: "Bob" }),
      entry(["users", "002", "avatar"], "bob.png"),
    ]);
    const reversed = await call("/api/keys?prefix=users&reverse=true&limit=1");
    expect(reversed.json).toEqual([entry(["users", "002", "avatar"], "bob.png")]);
    const range = await call("/api/keys?start=users/001&end=users/002");
    expect(range.json).toEqual([entry(["users", "001"], { name: "Alice" })]);
  });

  it("POST /api/keys/list takes JSON keys and refuses where filters", async () => {
    const reply = await call("/api/keys/list", { body: { prefix: ["users"], limit: 1 } });
    expect(reply.json).toEqual([entry(["users", "001"], { name: "Alice" })]);
    const where = await call("/api/keys/list", {
      body: { prefix: ["users"], where: { status: { $eq: "active" } } },
    });
    expectError(where, 501, "UNSUPPORTED");
  });

  it("GET /api/keys/count?prefix=users answers { count }", async () => {
    expect((await call("/api/keys/count?prefix=users")).json).toEqual({ count: 3 });
    expect((await call("/api/keys/count")).json).toEqual({ count: 4 });
  });

  it("GET /api/keys/paginate pages with a cursor", async () => {
    const first = await call("/api/keys/paginate?prefix=users&limit=2");
    expect(first.json).toEqual({
      entries: [
        entry(["users", "001"], { name: "Alice" }),
        entry(["users", "002"], { name: "Bob" }),
      ],
      cursor: expect.any(String),
      hasMore: true,
    });
    const next = await call(
      `/api/keys/paginate?prefix=users&limit=2&cursor=${encodeURIComponent(first.json.cursor)}`,
    );
    expect(next.json).toEqual({
      entries: [entry(["users", "002", "avatar"], "bob.png")],
      cursor: null,
      hasMore: false,
    });
  });

  it("POST /api/keys/batch answers entries in request order, absent ones null", async () => {
    const reply = await call("/api/keys/batch", {
      body: {
        keys: [
          ["users", "001"],
          ["posts", "999"],
        ],
      },
    });
    expect(reply.json).toEqual([
      entry(["users", "001"], { name: "Alice" }),
      { key: ["posts", "999"], value: null, versionstamp: null },
    ]);
  });

  it("POST /api/keys/delete-batch deletes keys with their sub-keys, or exactly", async () => {
    const kv = server().kv.namespace("delete-batch");
    await kv.set(["tasks", "1"], 1);
    await kv.set(["tasks", "1", "log"], 1);
    await kv.set(["tasks", "2"], 2);
    await kv.set(["tasks", "2", "log"], 2);
    const ns = { namespace: "delete-batch" };
    const exact = await call("/api/keys/delete-batch", {
      ...ns,
      body: { keys: [["tasks", "1"]], exact: true },
    });
    expect(exact.json).toEqual({ deletedCount: 1 });
    expect((await kv.get(["tasks", "1", "log"])).value).toBe(1);
    const deep = await call("/api/keys/delete-batch", { ...ns, body: { keys: [["tasks", "2"]] } });
    expect(deep.json).toEqual({ deletedCount: 2 });
    expect(await kv.count({ prefix: ["tasks"] })).toBe(1);
  });

  it("keeps real keys named like the aliases reachable: other methods, and ~s: on GET", async () => {
    for (const name of ["count", "paginate", "list", "batch", "delete-batch"]) {
      const put = await call(`/api/keys/${name}`, { method: "PUT", body: { value: name } });
      expect(put.status, put.text).toBe(200);
      expect((await call(`/api/keys/~s:${name}`)).json).toEqual(entry([name], name));
    }
    // GET on list, batch and delete-batch has no alias: the single-key route answers.
    expect((await call("/api/keys/list")).json).toEqual(entry(["list"], "list"));
    expect((await call("/api/keys/count")).json).toEqual({ count: 9 });
    expect((await call("/api/keys/~s:count", { method: "DELETE" })).status).toBe(200);
    expect((await call("/api/keys/~s:count")).json.value).toBeNull();
  });

  describe("the queue", () => {
    const q = { namespace: "seed-queue" };

    it("enqueues, polls, acks and nacks with the shapes the seed shows", async () => {
      const enqueued = await call("/api/queue/enqueue", {
        ...q,
        body: {
          value: { task: "send-email", to: "user@example.com" },
          options: { delay: 0, backoffSchedule: [] },
        },
      });
      expect(enqueued.json).toEqual({ ok: true, id: expect.any(String) });
      expect((await call("/api/queue/stats", q)).json).toEqual({
        pending: 1,
        processing: 0,
        dlq: 0,
        total: 1,
      });
      const polled = await call("/api/queue/poll", q);
      expect(polled.json).toEqual({
        message: {
          id: expect.any(String),
          value: { task: "send-email", to: "user@example.com" },
          attempts: 1,
        },
      });
      expect((await call("/api/queue/stats", q)).json).toMatchObject({ processing: 1, total: 1 });
      // No backoff left: the nack dead-letters it.
      const nack = await call("/api/queue/nack", { ...q, body: { id: polled.json.message.id } });
      expect(nack.json).toEqual({ ok: true });
      expect((await call("/api/queue/poll", q)).json).toEqual({ message: null });

      await call("/api/queue/enqueue", { ...q, body: { value: "second" } });
      const second = await call("/api/queue/poll", q);
      const ack = await call("/api/queue/ack", { ...q, body: { id: second.json.message.id } });
      expect(ack.json).toEqual({ ok: true });
      expectError(
        await call("/api/queue/ack", { ...q, body: { id: second.json.message.id } }),
        409,
        "INVALID_TOKEN",
      );
    });

    it("lists, reads, requeues, deletes and purges the dead-letter queue", async () => {
      const dlq = await call("/api/queue/dlq?limit=50", q);
      expect(dlq.json).toEqual([
        {
          id: expect.any(String),
          originalId: expect.any(String),
          value: { task: "send-email", to: "user@example.com" },
          attempts: 1,
          errorMessage: "nack",
          originalCreatedAt: expect.any(Number),
          failedAt: expect.any(Number),
        },
      ]);
      const id = dlq.json[0].id as string;
      expect((await call(`/api/queue/dlq/${id}`, q)).json).toEqual(dlq.json[0]);
      expect((await call("/api/queue/dlq?offset=1", q)).json).toEqual([]);
      expect((await call(`/api/queue/dlq/${id}/requeue`, { ...q, method: "POST" })).json).toEqual({
        ok: true,
        newId: id,
      });
      expectError(await call(`/api/queue/dlq/${id}`, q), 404, "NOT_FOUND");
      const again = await call("/api/queue/poll", q);
      await call("/api/queue/nack", { ...q, body: { id: again.json.message.id } });
      expect((await call(`/api/queue/dlq/${id}`, { ...q, method: "DELETE" })).json).toEqual({
        ok: true,
      });
      await call("/api/queue/enqueue", {
        ...q,
        body: { value: 1, options: { backoffSchedule: [] } },
      });
      const third = await call("/api/queue/poll", q);
      await call("/api/queue/nack", { ...q, body: { id: third.json.message.id } });
      expect((await call("/api/queue/dlq", { ...q, method: "DELETE" })).json).toEqual({
        deletedCount: 1,
      });
    });
  });

  it("GET /api/metrics/prometheus answers gauges in Prometheus text", async () => {
    const reply = await call("/api/metrics/prometheus");
    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(reply.text).toContain("# TYPE keyval_storage_entries gauge\nkeyval_storage_entries ");
    expect(reply.text).toMatch(/^keyval_queue_dlq \d+$/m);
  });

  it("lists every alias in the OpenAPI document under the seed-compat tag", async () => {
    const doc = (await call("/api/openapi.json")).json;
    const tagged = Object.entries(doc.paths as Record<string, Record<string, { tags?: string[] }>>)
      .flatMap(([path, ops]) =>
        Object.entries(ops)
          .filter(([, op]) => op.tags?.includes("seed-compat"))
          .map(([method]) => `${method.toUpperCase()} ${path}`),
      )
      .sort();
    expect(tagged).toEqual(
      [
        "GET /api/keys",
        "POST /api/keys/list",
        "GET /api/keys/count",
        "GET /api/keys/paginate",
        "POST /api/keys/batch",
        "POST /api/keys/delete-batch",
        "POST /api/queue/enqueue",
        "GET /api/queue/poll",
        "POST /api/queue/ack",
        "POST /api/queue/nack",
        "GET /api/queue/stats",
        "GET /api/queue/dlq",
        "DELETE /api/queue/dlq",
        "GET /api/queue/dlq/{id}",
        "DELETE /api/queue/dlq/{id}",
        "POST /api/queue/dlq/{id}/requeue",
        "GET /api/metrics/prometheus",
      ].sort(),
    );
  });
});
