/**
 * Three Cellar servers, each its own process, on one PostgreSQL schema, driven through the
 * remote client: commits from all of them form one order, and every server's change feed
 * reports every commit, including the other servers'. Then one server is killed mid-load.
 */
import { once } from "node:events";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type ChangeBatch, type Kv, KvU64, openKv } from "../../src/index.js";
import { freshSchema, type Server, startServer, stopServers } from "./postgres-servers.js";

const { schema, database } = freshSchema("cellar_mp");

/** Collects a prefix watch's batches until `stop`. */
function watch(kv: Kv, prefix: string, after: string) {
  const batches: ChangeBatch<unknown>[] = [];
  const reader = kv.watchPrefix([prefix], { after }).getReader();
  const done = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done || !value) return;
      batches.push(value);
    }
  })();
  return {
    batches,
    /** Waits until the watch reached `versionstamp`, then ends it. */
    async until(versionstamp: string): Promise<void> {
      const deadline = Date.now() + 10_000;
      while ((batches.at(-1)?.versionstamp ?? "") < versionstamp && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await reader.cancel();
      await done;
    },
  };
}

function expectInOrderCovering(
  batches: readonly ChangeBatch<unknown>[],
  versionstamps: readonly string[],
): void {
  expect(batches.some((b) => b.reset)).toBe(false);
  const seen = batches.map((b) => b.versionstamp);
  for (let i = 1; i < seen.length; i++) expect(seen[i]! > seen[i - 1]!).toBe(true);
  const missing = versionstamps.filter((v) => !seen.includes(v));
  expect(missing).toEqual([]);
}

let servers: Server[] = [];
let clients: Kv[] = [];

beforeAll(async () => {
  servers = await Promise.all([
    startServer(database),
    startServer(database),
    startServer(database),
  ]);
  clients = await Promise.all(servers.map((server) => openKv(server.url)));
}, 30_000);

afterAll(async () => {
  await Promise.allSettled(clients.map((kv) => kv.close()));
  await stopServers(servers, schema);
});

it("orders concurrent increments and check-and-set loops from three servers, and every server's feed reports every commit in order", async () => {
  const head = await clients[0]!.currentVersionstamp();
  const watchers = clients.map((kv) => watch(kv, "c", head));
  const acked: string[] = [];

  const sums = Array.from({ length: 300 }, async (_, i) => {
    const res = await clients[i % 3]!.atomic()
      .sum(["c", "sum"], new KvU64(1n))
      .set(["c", "k", i], i)
      .commit();
    if (!res.ok) throw new Error("a commit without checks failed");
    acked.push(res.versionstamp);
  });
  let swaps = 0;
  const casWorker = async (kv: Kv, rounds: number) => {
    for (let done = 0; done < rounds; ) {
      const current = await kv.get<number>(["c", "cas"]);
      const res = await kv
        .atomic()
        .check(current)
        .set(["c", "cas"], (current.value ?? 0) + 1)
        .commit();
      if (res.ok) {
        done++;
        swaps++;
        acked.push(res.versionstamp);
      }
    }
  };
  const cas = clients.flatMap((kv) => Array.from({ length: 5 }, () => casWorker(kv, 6)));
  await Promise.all([...sums, ...cas]);

  const reader = clients[1]!;
  expect((await reader.get<KvU64>(["c", "sum"])).value?.value).toBe(300n);
  expect(await reader.count({ prefix: ["c", "k"] })).toBe(300);
  expect((await reader.get<number>(["c", "cas"])).value).toBe(swaps);
  expect(swaps).toBe(90);
  expect(new Set(acked).size).toBe(acked.length);

  const last = [...acked].sort().at(-1)!;
  await Promise.all(watchers.map((w) => w.until(last)));
  for (const w of watchers) expectInOrderCovering(w.batches, acked);
}, 30_000);

it("loses no acknowledged write when a server is killed mid-load, and the other servers carry on", async () => {
  const head = await clients[0]!.currentVersionstamp();
  const watchers = clients.slice(0, 2).map((kv) => watch(kv, "d", head));
  const acked: { id: string; versionstamp: string; at: number }[] = [];
  let killedAt = Number.POSITIVE_INFINITY;
  let stop = false;

  const loop = async (kv: Kv, worker: string) => {
    for (let n = 0; !stop; n++) {
      const id = `${worker}-${n}`;
      try {
        const res = await kv
          .atomic()
          .sum(["d", "sum"], new KvU64(1n))
          .set(["d", "k", id], n)
          .commit();
        if (res.ok) acked.push({ id, versionstamp: res.versionstamp, at: Date.now() });
      } catch {
        return;
      }
    }
  };
  const loops = clients.flatMap((kv, s) =>
    Array.from({ length: 10 }, (_, w) => loop(kv, `${s}.${w}`)),
  );

  await new Promise((resolve) => setTimeout(resolve, 700));
  servers[2]!.child.kill("SIGKILL");
  killedAt = Date.now();
  await once(servers[2]!.child, "exit");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  stop = true;
  await Promise.all(loops);

  const reader = clients[0]!;
  const committed = await reader.count({ prefix: ["d", "k"] });
  expect((await reader.get<KvU64>(["d", "sum"])).value?.value).toBe(BigInt(committed));
  const stored = new Set<string>();
  for await (const entry of reader.list({ prefix: ["d", "k"] })) stored.add(entry.key[2] as string);
  expect(acked.filter(({ id }) => !stored.has(id))).toEqual([]);
  expect(new Set(acked.map((a) => a.versionstamp)).size).toBe(acked.length);
  expect(
    acked.filter((a) => a.at > killedAt + 200 && !a.id.startsWith("2.")).length,
  ).toBeGreaterThan(50);

  const last = [...acked]
    .map((a) => a.versionstamp)
    .sort()
    .at(-1)!;
  await Promise.all(watchers.map((w) => w.until(last)));
  for (const w of watchers)
    expectInOrderCovering(
      w.batches,
      acked.map((a) => a.versionstamp),
    );
}, 30_000);
