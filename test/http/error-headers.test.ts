/** Headers an error status carries, and `$error` values that keep nothing of the server. */
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunningServer } from "../../src/server/serve.js";
import { send, serve, sse } from "./helpers.js";

const TOKEN = "a-token-of-sixteen-chars";
let server: RunningServer;
beforeAll(async () => {
  server = await serve({
    maxStreams: 1,
    tokens: [{ token: TOKEN, namespaces: ["*"], access: "admin" }],
  });
});
afterAll(() => server.close());

it("says how to authenticate on every 401, the fast path's included", async () => {
  for (const path of ["/api/keys/a", "/api/list?prefix=a"]) {
    const reply = await send(server.url, path);
    expect(reply.status).toBe(401);
    expect(reply.headers["www-authenticate"]).toBe('Bearer realm="cellar"');
  }
});

it("says when to retry a request refused for want of an open-stream slot", async () => {
  const first = await sse(server.url, "/api/watch?key=a", { token: TOKEN });
  try {
    const refused = await send(server.url, "/api/watch?key=b", { token: TOKEN });
    expect(refused.status).toBe(429);
    expect(refused.headers["retry-after"]).toBe("1");
  } finally {
    first.close();
  }
});

it("stores an $error's name and message, not the server's stack", async () => {
  const put = await send(server.url, "/api/keys/failure", {
    method: "PUT",
    token: TOKEN,
    body: { value: { $error: { name: "TypeError", message: "boom" } } },
  });
  expect(put.status).toBe(200);
  const stored = (await server.kv.get<Error>(["failure"])).value!;
  expect(stored).toBeInstanceOf(Error);
  expect([stored.name, stored.message, stored.stack]).toEqual([
    "TypeError",
    "boom",
    "TypeError: boom",
  ]);
});
