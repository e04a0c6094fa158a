/** A JSON body with a field its route does not take is a 400 naming the field, and writes nothing. */
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
