/**
 * Locks through a Cellar server: remote clients take, wait for and fence with the locks of their
 * token's namespace over the driver protocol (the reserved `$locks:<namespace>` keys), and a
 * token reaches no other namespace's locks.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { openKv } from "../../src/index.js";
import type { RunningServer } from "../../src/server/index.js";
import { serve, sleep, stored } from "./helpers.js";

const A = "a-writer-token-0123456789";
const B = "b-writer-token-0123456789";
const A_READER = "a-reader-token-0123456789";
let server: RunningServer;

beforeAll(async () => {
  server = await serve({
    tokens: [
      { token: A, namespaces: ["a"], access: "write" },
      { token: B, namespaces: ["b"], access: "write" },
      { token: A_READER, namespaces: ["a"], access: "read" },
    ],
  });
});
afterAll(() => server.close());

const write = (token: string, writes: unknown[]) =>
  fetch(`${server.url}/api/driver/write`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ writes }),
  });

it("lets remote clients of one namespace exclude each other, wait for and fence with its locks", async () => {
  const first = await openKv(server.url, { token: A });
  const second = await openKv(server.url, { token: A });
  const lock = await first.lock("job", { ttl: 300 });
  await expect(second.lock("job")).rejects.toMatchObject({ code: "LOCK_HELD" });
  await sleep(500); // renewed through the server past its ttl
  await expect(second.lock("job")).rejects.toMatchObject({ code: "LOCK_HELD" });
  expect((await first.atomic().checkLock(lock).set(["out"], 1).commit()).ok).toBe(true);

  setTimeout(() => void lock.release(), 100);
  const next = await second.lock("job", { wait: 5000 });
  expect(next.token > lock.token).toBe(true);
  expect((await first.atomic().checkLock(lock).set(["out"], 2).commit()).ok).toBe(false);
  const fence = { name: "job", token: next.token };
  expect((await first.atomic().checkLock(fence).set(["out"], 3).commit()).ok).toBe(true);
  expect((await second.get(["out"])).value).toBe(3);

  // The other namespace's lock of the same name is another lock.
  const inB = await openKv(server.url, { token: B });
  const other = await inB.lock("job");
  expect((await inB.atomic().checkLock(fence).set(["out"], 4).commit()).ok).toBe(false);
  await Promise.all([next.release(), other.release()]);
  await Promise.all([first.close(), second.close(), inB.close()]);
});

it("confines a token to its own namespace's locks, and a read token to none", async () => {
  const value = { e: "json", d: '{"holder":"intruder"}' };
  const [refused, allowed] = await Promise.all([
    write(A, [{ checks: [{ k: stored("$locks:b", "job"), vs: null }], mutations: [] }]),
    write(A, [{ mutations: [{ t: "set", k: stored("$locks:a", "mine"), v: value, x: null }] }]),
  ]);
  expect(((await refused.json()) as { results: unknown[] }).results).toEqual([
    { error: expect.objectContaining({ code: "FORBIDDEN" }) },
  ]);
  expect(((await allowed.json()) as { results: { vs?: string }[] }).results[0]?.vs).toMatch(
    /^[0-9a-f]{20}$/,
  );
  const sneak = await write(B, [{ mutations: [{ t: "delete", k: stored("$locks:a", "mine") }] }]);
  expect(((await sneak.json()) as { results: unknown[] }).results).toEqual([
    { error: expect.objectContaining({ code: "FORBIDDEN" }) },
  ]);
  // Cellar's database-wide reserved namespaces stay out of reach.
  const schemas = await write(A, [
    { mutations: [{ t: "set", k: stored("$schemas", "x"), v: value, x: null }] },
  ]);
  expect(((await schemas.json()) as { results: unknown[] }).results).toEqual([
    { error: expect.objectContaining({ code: "FORBIDDEN" }) },
  ]);

  const reader = await openKv(server.url, { token: A_READER });
  await expect(reader.lock("job")).rejects.toMatchObject({ code: "FORBIDDEN" });
  await reader.close();
});
