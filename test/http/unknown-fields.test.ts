/** A JSON body field or a query parameter its route does not take is a 400 naming it, and writes nothing. */
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunningServer } from "../../src/server/serve.js";
import { send, serve, snapshot } from "./helpers.js";

let server: RunningServer;
beforeAll(async () => {
  server = await serve();
});
afterAll(() => server.close());

it.each([
  ["PUT", "/api/keys/x", { value: 1, expirein: 5 }, "expirein"],
  [
    "POST",
    "/api/atomic",
    { mutations: [{ type: "set", key: ["x"], value: 1, expirein: 5 }] },
    "expirein",
  ],
  ["POST", "/api/atomic", { checks: [{ key: ["x"], versionstamp: null, vs: 1 }] }, "vs"],
  ["POST", "/api/queues/jobs/messages", { value: 1, dealy: 5 }, "dealy"],
  ["POST", "/api/list", { prefix: ["x"], limt: 5 }, "limt"],
])("%s %s refuses an unknown field", async (method, path, body, field) => {
  const before = await snapshot(server.kv);
  const reply = await send(server.url, path, { method, body });
  expect(reply.status).toBe(400);
  expect(reply.json.error).toMatchObject({
    code: "INVALID_REQUEST",
    message: expect.stringContaining(field),
  });
  expect(await snapshot(server.kv)).toEqual(before);
});

it.each([
  ["GET", "/api/count?prefx=items", "prefx"],
  ["GET", "/api/list?prefix=items&limt=1", "limt"],
  ["GET", "/api/keys/users/ada?metdata=true", "metdata"],
  ["DELETE", "/api/keys/users/ada?modifedBy=x", "modifedBy"],
  ["GET", "/api/watch/prefix/poll?prefix=items&timout=0", "timout"],
])("%s %s refuses an unknown query parameter", async (method, path, name) => {
  await server.kv.set(["users", "ada"], 1);
  const before = await snapshot(server.kv);
  const reply = await send(server.url, path, { method });
  expect(reply.status).toBe(400);
  expect(reply.json.error).toMatchObject({
    code: "INVALID_REQUEST",
    message: expect.stringContaining(name),
  });
  expect(await snapshot(server.kv)).toEqual(before);
});

it("takes the token as a query parameter on any route", async () => {
  const reply = await send(server.url, "/api/count?prefix=users&token=unused-without-tokens");
  expect(reply.status).toBe(200);
});
