/**
 * Locks across two Cellar servers, each its own process, on one PostgreSQL schema, through remote
 * clients: holders on different servers exclude each other, a waiter on one server is woken by a
 * release on the other, and a lapsed holder's fenced writes are refused.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Kv, openKv } from "../../src/index.js";
import { freshSchema, type Server, startServer, stopServers } from "./postgres-servers.js";

const { schema, database } = freshSchema("cellar_locks");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let servers: Server[] = [];
let clients: Kv[] = [];

beforeAll(async () => {
  // One after the other: the first creates the schema.
  const first = await startServer(database);
  const second = await startServer(database);
  servers = [first, second];
  clients = await Promise.all([openKv(first.url), openKv(second.url)]);
}, 30_000);

afterAll(async () => {
  await Promise.allSettled(clients.map((kv) => kv.close()));
  await stopServers(servers, schema);
});

it("excludes holders on two servers from one read-modify-write, each write fenced", async () => {
  const [one, two] = clients as [Kv, Kv];
  await one.set(["counter"], 0);
  const rounds = 10;
  const tokens: string[] = [];
  const worker = async (kv: Kv) => {
    for (let i = 0; i < rounds; i++) {
      await kv.withLock(
        "counter",
        async (lock) => {
          tokens.push(lock.token);
          const { value } = await kv.get<number>(["counter"]);
          await sleep(10);
          const res = await kv
            .atomic()
            .checkLock(lock)
            .set(["counter"], value! + 1)
            .commit();
          expect(res.ok).toBe(true);
        },
        { wait: 20_000 },
      );
      await sleep(30);
    }
  };
  await Promise.all([worker(one), worker(two)]);
  expect((await two.get(["counter"])).value).toBe(2 * rounds);
  expect(new Set(tokens).size).toBe(2 * rounds);
  // Acquisitions took turns in commit order: each token greater than the one before it.
  for (let i = 1; i < tokens.length; i++) expect(tokens[i]! > tokens[i - 1]!).toBe(true);
}, 60_000);

it("wakes a waiter on one server when the lease taken through the other runs out", async () => {
  const [one, two] = clients as [Kv, Kv];
  const lapsed = await one.lock("leader", { ttl: 300, renew: false });
  await expect(two.lock("leader")).rejects.toMatchObject({ code: "LOCK_HELD" });
  const next = await two.lock("leader", { wait: 5000 });
  expect(next.token > lapsed.token).toBe(true);
  expect((await one.atomic().checkLock(lapsed).set(["leader"], "one").commit()).ok).toBe(false);
  const stale = { name: "leader", token: lapsed.token };
  expect((await two.atomic().checkLock(stale).set(["leader"], "one").commit()).ok).toBe(false);
  // A lock handle fences writes of its own database; a token travels to another as { name, token }.
  const current = { name: "leader", token: next.token };
  expect((await one.atomic().checkLock(current).set(["leader"], "two").commit()).ok).toBe(true);
  await next.release();
  const again = await one.lock("leader");
  expect(again.token > next.token).toBe(true);
  await again.release();
}, 30_000);
