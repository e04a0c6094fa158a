import { afterAll, beforeAll, expect, it } from "vitest";
import { openKv } from "../../src/index.js";
import { type RunningServer, startServer } from "../../src/server/index.js";

const WRITER = "writer-token-0123456789";
const MULTI = "multi-token-0123456789";
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({
    db: ":memory:",
    port: 0,
    tokens: [
      { token: WRITER, namespaces: ["a"], access: "write" },
      { token: MULTI, namespaces: ["a", "b"], access: "write" },
    ],
  });
});
afterAll(() => server.close());

const post = (path: string, token: string, body: unknown) =>
  fetch(server.url + path, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });

it("lets only an admin empty a whole namespace through delete-range", async () => {
  const kv = await openKv(server.url, { token: WRITER });
  await kv.set(["x"], 1);
  const refused = await post("/api/delete-range", WRITER, { prefix: [] });
  expect(refused.status).toBe(403);
  expect((await kv.get(["x"])).value).toBe(1);
  const scoped = await post("/api/delete-range", WRITER, { prefix: ["x"] });
  expect(scoped.status).toBe(200);
  await kv.close();
});

it("opens a chosen namespace of a token that has several", async () => {
  const b = await openKv(server.url, { token: MULTI, namespace: "b" });
  await b.set(["k"], "in b");
  const a = await openKv(server.url, { token: MULTI, namespace: "a" });
  expect((await a.get(["k"])).value).toBeNull();
  expect((await b.get(["k"])).value).toBe("in b");
  await expect(openKv(server.url, { token: MULTI, namespace: "c" })).rejects.toMatchObject({
    code: "FORBIDDEN",
  });
  await a.close();
  await b.close();
});

it("tells a token with several namespaces and no choice which ones it may name", async () => {
  const reply = await fetch(`${server.url}/api/keys/k`, {
    headers: { authorization: `Bearer ${MULTI}` },
  });
  expect(reply.status).toBe(403);
  const { error } = (await reply.json()) as { error: { code: string; message: string } };
  expect(error.code).toBe("FORBIDDEN");
  expect(error.message).toContain('name one of "a", "b" with the x-cellar-namespace header');
});

it("keeps a remote client's expiry on the server's clock when the client's clock is off", async () => {
  const hourBehind = () => Date.now() - 3_600_000;
  const kv = await openKv(server.url, { token: WRITER, clock: hourBehind });
  await kv.set(["session"], "live", { expireIn: 60_000 });
  const { metadata } = await kv.get(["session"], { metadata: true });
  expect((await kv.get(["session"])).value).toBe("live");
  expect(metadata!.expiresAt! - Date.now()).toBeGreaterThan(50_000);
  expect(metadata!.expiresAt! - Date.now()).toBeLessThanOrEqual(60_000);
  await kv.close();
});
