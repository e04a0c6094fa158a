import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { postgresDriver } from "../../src/drivers/postgres/index.js";
import { KvU64, openKv } from "../../src/index.js";
import { describeKvConformance } from "../../src/testing/index.js";

/** The server the tests use; CI starts it (see .ci/run). */
const POSTGRES = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

const run = randomBytes(4).toString("hex");
const schemas: string[] = [];
let current = "";

/** A schema of its own for each database the suite opens. */
function freshSchema(): string {
  current = `cellar_test_${run}_${schemas.length}`;
  schemas.push(current);
  return current;
}

afterAll(async () => {
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

describeKvConformance({
  name: "postgres",
  open: (options) => openKv(`${POSTGRES}?schema=${freshSchema()}`, options),
  reopen: (options) => openKv(`${POSTGRES}?schema=${current}`, options),
});

it("refuses a schema name that is not a plain identifier", async () => {
  await expect(
    openKv(`${POSTGRES}?schema=${encodeURIComponent('x"; DROP TABLE y; --')}`),
  ).rejects.toMatchObject({
    code: "INVALID_ARGUMENT",
  });
});

it("keeps versionstamps increasing and sums exact across two drivers on one schema", async () => {
  const schema = freshSchema();
  const a = await openKv(`${POSTGRES}?schema=${schema}`);
  const b = await openKv(`${POSTGRES}?schema=${schema}`);
  const writes = Array.from({ length: 200 }, (_, i) =>
    (i % 2 ? a : b).atomic().sum(["n"], new KvU64(1n)).set(["w", i], i).commit(),
  );
  const results = await Promise.all(writes);
  const stamps = results.map((r) => (r.ok ? r.versionstamp : ""));
  expect(new Set(stamps).size).toBe(200);
  expect((await a.get<KvU64>(["n"])).value?.value).toBe(200n);
  await a.close();
  await b.close();
});

it("never commits on a state another driver has changed since this one last saw it", async () => {
  const schema = freshSchema();
  const a = await openKv(`${POSTGRES}?schema=${schema}`);
  const b = await openKv(`${POSTGRES}?schema=${schema}`);
  for (let round = 0; round < 20; round++) {
    const seen = await a.set(["k"], `a${round}`);
    await b.set(["k"], `b${round}`);
    const res = await a
      .atomic()
      .check({ key: ["k"], versionstamp: seen.versionstamp })
      .set(["k"], "stale")
      .commit();
    expect(res.ok).toBe(false);
    await b.set(["n"], "not a u64");
    await expect(a.atomic().sum(["n"], 1n).commit()).rejects.toMatchObject({
      code: "INVALID_MUTATION",
    });
    await b.set(["n"], new KvU64(0n));
  }
  expect((await a.get(["k"])).value).toBe("b19");
  await a.close();
  await b.close();
});

it("reports another driver's commits to watchers through the change log", async () => {
  const schema = freshSchema();
  const a = await openKv(`${POSTGRES}?schema=${schema}`);
  const b = await openKv(`${POSTGRES}?schema=${schema}`);
  const reader = a.watchPrefix(["orders"]).getReader();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const first = await b.set(["orders", 1], "one");
  await b.set(["elsewhere"], 0);
  const second = await b.set(["orders", 2], "two");
  const batches = [(await reader.read()).value!, (await reader.read()).value!];
  expect(batches.map((batch) => batch.versionstamp)).toEqual([
    first.versionstamp,
    second.versionstamp,
  ]);
  await reader.cancel();
  await a.close();
  await b.close();
});

it("sweeps expired entries once when several drivers sweep at the same time", async () => {
  const schema = freshSchema();
  let now = 1_700_000_000_000;
  const clock = () => now;
  const drivers = await Promise.all(
    [0, 1, 2].map(() => openKv(`${POSTGRES}?schema=${schema}`, { clock, sweepInterval: 0 })),
  );
  const [first] = drivers;
  for (let i = 0; i < 300; i++) await first!.set(["t", i], i, { expireIn: 10 });
  now += 10;
  const swept = await Promise.all(drivers.map((kv) => kv.sweepExpired()));
  expect(swept.reduce((a, b) => a + b, 0)).toBe(300);
  for (const kv of drivers) await kv.close();
});

it("fails only the write the database refuses, and commits the rest of its group", async () => {
  const driver = await postgresDriver(POSTGRES, { schema: freshSchema() });
  const value = { encoding: "json", data: "1" } as const;
  const write = (key: Uint8Array) =>
    driver.atomicWrite({
      checks: [],
      mutations: [{ type: "set", key, value, expiresAt: null }],
      now: 1,
    });
  // Past the largest index entry PostgreSQL takes (random, so it does not compress).
  const [refused, stored] = await Promise.allSettled([
    write(randomBytes(9000)),
    write(Uint8Array.of(2, 0x6b, 0)),
  ]);
  expect(refused).toMatchObject({ status: "rejected", reason: { code: "STORAGE_ERROR" } });
  expect(stored.status).toBe("fulfilled");
  await driver.close();
});

it("reports commits made while the listening connection was down, once it is back", async () => {
  const schema = freshSchema();
  const a = await openKv(`${POSTGRES}?schema=${schema}`);
  const b = await openKv(`${POSTGRES}?schema=${schema}`);
  const reader = a.watchPrefix(["p"]).getReader();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const admin = new pg.Client({ connectionString: POSTGRES });
  await admin.connect();
  const killed = await admin.query(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
    [`LISTEN "cellar:${schema}"`],
  );
  expect(killed.rowCount).toBe(2);
  await admin.end();
  const { versionstamp } = await b.set(["p", 1], "during the outage");
  expect((await reader.read()).value?.versionstamp).toBe(versionstamp);
  await reader.cancel();
  await a.close();
  await b.close();
});

it("wakes a queue consumer when another driver enqueues", async () => {
  const schema = freshSchema();
  const consumer = await openKv(`${POSTGRES}?schema=${schema}`);
  const producer = await openKv(`${POSTGRES}?schema=${schema}`);
  const controller = new AbortController();
  const received = new Promise<number>((resolve) => {
    void consumer.listenQueue(() => resolve(Date.now()), { signal: controller.signal });
  });
  // Let the consumer find the queue empty and go idle (it rechecks on its own only every second).
  await new Promise((resolve) => setTimeout(resolve, 200));
  const sent = Date.now();
  await producer.enqueue("hello");
  expect((await received) - sent).toBeLessThan(500);
  controller.abort();
  await consumer.close();
  await producer.close();
});

it("takes the driver's options directly", async () => {
  const driver = await postgresDriver(POSTGRES, {
    schema: freshSchema(),
    poolSize: 2,
    historyDepth: 3,
  });
  const kv = await openKv(undefined, { driver });
  for (let i = 0; i < 5; i++) await kv.set(["h"], i);
  expect((await kv.history(["h"])).map((r) => r.version)).toEqual([5, 4, 3]);
  await kv.close();
});

it("works on a pool of one connection: reads keep none of it back", async () => {
  const driver = await postgresDriver(POSTGRES, { schema: freshSchema(), poolSize: 1 });
  const kv = await openKv(undefined, { driver });
  await kv.set(["a"], 1);
  const { entries } = await kv.paginate({ prefix: [] }, { limit: 10 });
  expect(entries.map((e) => e.value)).toEqual([1]);
  await kv.set(["b"], 2);
  expect((await kv.getMany([["a"], ["b"]])).map((e) => e.value)).toEqual([1, 2]);
  await kv.close();
});
