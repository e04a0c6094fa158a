/**
 * Locks across two Cellar servers, each its own process, on one PostgreSQL schema, through remote
 * clients: holders on different servers exclude each other, a waiter on one server is woken by a
 * release on the other, and a lapsed holder's fenced writes are refused.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Kv, openKv } from "../../src/index.js";

const POSTGRES = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `cellar_locks_${randomBytes(4).toString("hex")}`;
const cli = fileURLToPath(new URL("../../src/cli/index.ts", import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let servers: ChildProcess[] = [];
let clients: Kv[] = [];

/** Starts `cellar serve` on the shared schema and resolves to its URL once it listens. */
async function startServer(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", cli, "serve", "--db", `${POSTGRES}?schema=${schema}`, "--port", "0"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  for await (const line of createInterface({ input: child.stdout! })) {
    const url = /listening on (\S+)/.exec(line)?.[1];
    if (url) return { child, url };
  }
  throw new Error("the server exited before listening");
}

beforeAll(async () => {
  // One after the other: the first creates the schema.
  const first = await startServer();
  const second = await startServer();
  servers = [first.child, second.child];
  clients = await Promise.all([openKv(first.url), openKv(second.url)]);
}, 30_000);

afterAll(async () => {
  await Promise.allSettled(clients.map((kv) => kv.close()));
  for (const child of servers) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  }
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
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
