/** PATCH /api/keys/{key} changes an expiry alone; /api/atomic sums plain numbers as well as KvU64. */
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunningServer } from "../../src/server/serve.js";
import { send, serve } from "./helpers.js";

let server: RunningServer;
beforeAll(async () => {
  server = await serve();
});
afterAll(() => server.close());

it("changes a key's expiry without its value, and answers 404 for an absent key", async () => {
  await send(server.url, "/api/keys/session", { method: "PUT", body: { value: { user: "ada" } } });
  const patched = await send(server.url, "/api/keys/session", {
    method: "PATCH",
    body: { expireIn: 60_000 },
  });
  expect(patched.status).toBe(200);
  const entry = await server.kv.get(["session"], { metadata: true });
  expect(entry.value).toEqual({ user: "ada" });
  expect(entry.metadata?.expiresAt).toBeGreaterThan(Date.now());
  expect(entry.versionstamp).toBe(patched.json.versionstamp);

  const persisted = await send(server.url, "/api/keys/session", {
    method: "PATCH",
    body: { expireIn: null },
  });
  expect(persisted.status).toBe(200);
  expect((await server.kv.get(["session"], { metadata: true })).metadata?.expiresAt).toBeNull();

  const absent = await send(server.url, "/api/keys/nothing", {
    method: "PATCH",
    body: { expireIn: 1000 },
  });
  expect(absent.status).toBe(404);
  expect(absent.json.error.code).toBe("NOT_FOUND");
});

it("sums plain numbers with a JSON number operand, and KvU64 with a $u64 one", async () => {
  const sum = (key: string, value: unknown) =>
    send(server.url, "/api/atomic", {
      method: "POST",
      body: { mutations: [{ type: "sum", key: [key], value }] },
    });
  expect((await sum("hits", 2)).status).toBe(200);
  expect((await sum("hits", 1.5)).status).toBe(200);
  expect((await server.kv.get(["hits"])).value).toBe(3.5);
  expect((await sum("count", { $u64: "2" })).status).toBe(200);
  const mixed = await sum("count", 1);
  expect(mixed.status).toBe(400);
  expect(mixed.json.error.code).toBe("INVALID_MUTATION");
});
