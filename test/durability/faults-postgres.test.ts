/**
 * PostgreSQL connections killed under load, as a server restart or a failover kills them:
 * Cellar reconnects on its own, watchers and queue consumers carry on, an in-flight commit is
 * applied exactly once or refused with a clear `KvError`, and no acknowledged write is lost.
 *
 * Only this file's connections are killed: the driver's URL sets an `application_name` of this
 * run alone, and the kill selects on it.
 */
import { randomBytes } from "node:crypto";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Kv, KvError, KvU64, openKv } from "../../src/index.js";

const POSTGRES = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const run = randomBytes(4).toString("hex");
const APP = `cellar-faults-${run}`;
const schemas: string[] = [];
/** The URL of this run's `n`th database: a schema of its own, connections named for the kill. */
const URL_OF = (n: number) => {
  const schema = `cellar_faults_${run}_${n}`;
  schemas.push(schema);
  return `${POSTGRES}${POSTGRES.includes("?") ? "&" : "?"}schema=${schema}&application_name=${APP}`;
};

let admin: pg.Client;

beforeAll(async () => {
  admin = new pg.Client({ connectionString: POSTGRES });
  await admin.connect();
});

afterAll(async () => {
  for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

/** Resolves once no backend of this run's drivers is running a statement or in a transaction. */
async function settled(): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { rows } = await admin.query(
      "SELECT count(*)::int AS busy FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'",
      [APP],
    );
    if (rows[0].busy === 0) return;
    if (Date.now() > deadline) throw new Error("this run's PostgreSQL backends never went idle");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Terminates every backend of this run's drivers; resolves to how many it killed. */
async function killCellarBackends(): Promise<number> {
  const { rows } = await admin.query(
    `SELECT count(*)::int AS n FROM (
       SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1
     ) killed`,
    [APP],
  );
  return (rows[0] as { n: number }).n;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `check` holds, for at most `ms`. */
async function eventually(check: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await sleep(20);
  }
}

/** A refusal the driver may give while its connections die: a `KvError` saying so, nothing raw. */
function expectClearRefusal(error: unknown): void {
  expect(error).toBeInstanceOf(KvError);
  expect(["STORAGE_ERROR", "UNAVAILABLE"]).toContain((error as KvError).code);
  expect((error as Error).message).toMatch(/PostgreSQL/);
}

it("survives its connections being killed every 150 ms under load", async () => {
  await underKills(URL_OF(0), 8, 150);
});

it("survives a restart-like storm: every connection killed as soon as it opens, for half a second", async () => {
  await underKills(URL_OF(1), 25, 20);
});

/**
 * Runs writers, plain sets, a queue producer and consumer and a watcher on a database at `url`
 * while every connection of this run is killed `rounds` times, `interval` ms apart; then checks
 * that every acknowledged write is there exactly once and the watcher and consumer caught up.
 */
async function underKills(url: string, rounds: number, interval: number): Promise<void> {
  const kv: Kv = await openKv(url, { sweepInterval: 0 });
  const refusals: unknown[] = [];
  let stop = false;

  // Writers: each commit adds one to a counter and leaves one marker key, so the counter must
  // equal the markers found: a commit applied twice or half would break it.
  const acked = new Set<string>();
  const writer = async (w: number) => {
    for (let i = 0; !stop; i++) {
      try {
        const res = await kv
          .atomic()
          .sum(["counter"], new KvU64(1n))
          .set(["marker", w, i], true)
          .commit();
        if (res.ok) acked.add(`${w}/${i}`);
      } catch (error) {
        refusals.push(error);
      }
    }
  };
  const sets = new Set<number>();
  const setter = async () => {
    for (let i = 0; !stop; i++) {
      try {
        await kv.set(["plain", i], i);
        sets.add(i);
      } catch (error) {
        refusals.push(error);
      }
    }
  };

  // A queue consumer, and a producer whose acknowledged messages must all be delivered.
  const enqueued = new Set<number>();
  const received = new Set<number>();
  const consumer = new AbortController();
  const consuming = kv.listenQueue(
    (n: number) => {
      received.add(n);
    },
    { signal: consumer.signal, visibilityTimeout: 1000 },
  );
  const producer = async () => {
    for (let i = 0; !stop; i++) {
      try {
        await kv.enqueue(i);
        enqueued.add(i);
      } catch (error) {
        refusals.push(error);
      }
      await sleep(5);
    }
  };

  // A watcher of the counter, which must end on the final value whatever it missed meanwhile.
  let watched = -1n;
  const watcher = kv.watch<[KvU64]>([["counter"]]).getReader();
  const watching = (async () => {
    for (;;) {
      const { value, done } = await watcher.read();
      if (done) return;
      watched = value[0].value?.value ?? 0n;
    }
  })();

  const load = Promise.all([writer(0), writer(1), writer(2), setter(), producer()]);
  let killed = 0;
  for (let round = 0; round < rounds; round++) {
    await sleep(interval);
    killed += await killCellarBackends();
  }
  await sleep(200);
  stop = true;
  await load;
  expect(killed).toBeGreaterThan(0);
  for (const error of refusals) expectClearRefusal(error);

  // The same open database works again without being reopened.
  expect((await kv.set(["after"], 1)).ok).toBe(true);

  const markers = new Set<string>();
  for await (const entry of kv.list<boolean>({ prefix: ["marker"] })) {
    markers.add(`${entry.key[1]}/${entry.key[2]}`);
  }
  const counter = (await kv.get<KvU64>(["counter"])).value?.value ?? 0n;
  expect(counter).toBe(BigInt(markers.size));
  for (const id of acked) expect(markers.has(id)).toBe(true);
  const plain = await kv.getMany([...sets].map((i) => ["plain", i]));
  expect(plain.every((entry) => entry.value !== null)).toBe(true);

  await eventually(() => watched === counter);
  await eventually(() => [...enqueued].every((n) => received.has(n)));

  consumer.abort();
  await watcher.cancel();
  await watching;
  await consuming;
  await kv.close();

  // Nothing acknowledged was lost: a fresh connection finds all of it.
  const fresh = await openKv(url, { sweepInterval: 0 });
  expect((await fresh.get<KvU64>(["counter"])).value?.value).toBe(counter);
  expect(await fresh.count({ prefix: ["marker"] })).toBe(markers.size);
  await fresh.close();
}

/**
 * A TCP proxy to PostgreSQL that, when armed, forwards the next COMMIT and then cuts the
 * connection before its answer comes back: the server commits, the client cannot know it.
 */
async function commitCutter(): Promise<{ url: string; arm(): void; close(): Promise<void> }> {
  const target = new globalThis.URL(POSTGRES);
  let armed = false;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    client.on("data", (chunk: Buffer) => {
      upstream.write(chunk);
      if (armed && chunk.includes("COMMIT")) {
        armed = false;
        // Give the server the COMMIT, then drop the client's side before any answer.
        upstream.once("data", () => client.destroy());
      }
    });
    upstream.on("data", (chunk) => {
      if (!client.destroyed) client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const url = new globalThis.URL(URL_OF(2));
  url.host = `127.0.0.1:${port}`;
  return {
    url: url.toString(),
    arm: () => {
      armed = true;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

it("never applies twice a commit whose connection was cut after the server committed", async () => {
  const proxy = await commitCutter();
  const kv = await openKv(proxy.url, { sweepInterval: 0 });
  try {
    await kv.set(["warm"], true);
    let refused: unknown;
    let acked = 0;
    for (let i = 0; i < 3; i++) {
      proxy.arm();
      // A fresh key each time, so the commit goes the way with BEGIN … COMMIT.
      await kv
        .atomic()
        .sum(["cut", "counter"], new KvU64(1n))
        .set(["cut", "marker", i], true)
        .commit()
        .then(
          () => acked++,
          (error: unknown) => {
            refused = error;
          },
        );
    }
    expect(refused).toBeInstanceOf(KvError);
    expect(refused).toMatchObject({ code: "UNAVAILABLE" });
    expect((refused as Error).message).toMatch(/may or may not have been applied/);
    // A commit whose connection was cut may still be finishing on the server (it has the
    // COMMIT): wait until no backend of this run is busy, then read in one snapshot.
    await settled();
    const [counter, ...marked] = await kv.getMany([
      ["cut", "counter"],
      ...[0, 1, 2].map((i) => ["cut", "marker", i]),
    ]);
    const markers = marked.filter((entry) => entry.versionstamp !== null).length;
    // Some refused commit was applied by the server all the same (the case this test is about),
    // and each was applied once: never run again after its connection was cut.
    expect(markers).toBeGreaterThan(acked);
    expect((counter!.value as KvU64 | null)?.value).toBe(BigInt(markers));
    expect((await kv.set(["after"], 1)).ok).toBe(true);
  } finally {
    await kv.close();
    await proxy.close();
  }
});
