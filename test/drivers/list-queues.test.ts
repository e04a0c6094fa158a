/** `listQueues` of every driver with queues: memory, SQLite, PostgreSQL and the remote driver. */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { decodeKey } from "../../src/codec/key.js";
import { coreOf } from "../../src/core/surface.js";
import { type Kv, openKv } from "../../src/index.js";
import { serve, tempDir } from "../http/helpers.js";

const POSTGRES = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `cellar_list_queues_${randomBytes(4).toString("hex")}`;
const dir = tempDir("cellar-list-queues-");

afterAll(async () => {
  dir.cleanup();
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

/** The queue names `kv`'s namespace holds, through the core. */
async function queueNames(kv: Kv, limit = 100): Promise<string[]> {
  const { core, keyspace } = coreOf(kv);
  const names = await core.listQueues(
    { start: keyspace.prefix, end: keyspace.end },
    keyspace,
    limit,
  );
  return names.map((name) => String(decodeKey(name.subarray(keyspace.prefix.length))[0]));
}

const drivers: [string, () => Promise<{ kv: Kv; close(): Promise<void> }>][] = [
  ["memory", async () => wrap(await openKv(":memory:"))],
  ["sqlite", async () => wrap(await openKv(join(dir.path, "queues.db")))],
  ["postgres", async () => wrap(await openKv(`${POSTGRES}?schema=${schema}`))],
  [
    "remote",
    async () => {
      const server = await serve();
      const kv = await openKv(server.url);
      return {
        kv,
        close: async () => {
          await kv.close();
          await server.close();
        },
      };
    },
  ],
];

function wrap(kv: Kv) {
  return { kv, close: () => kv.close() };
}

describe.each(drivers)("listQueues on %s", (_name, open) => {
  it("lists the queues holding ready, delayed, leased or dead messages, in order, within the namespace", async () => {
    const { kv, close } = await open();
    try {
      const ns = kv.namespace("lq");
      expect(await queueNames(ns)).toEqual([]);
      await ns.queue("ready").enqueue(1);
      await ns.queue("delayed").enqueue(1, { delay: 60_000 });
      await ns.queue("leased").enqueue(1);
      await ns.queue("leased").dequeue({ visibilityTimeout: 60_000 });
      await ns.queue("dead").enqueue(1, { backoffSchedule: [] });
      const msg = await ns.queue("dead").dequeue({ visibilityTimeout: 60_000 });
      await ns.queue("dead").nack(msg!.token);
      await ns.queue("acked").enqueue(1);
      const acked = await ns.queue("acked").dequeue({ visibilityTimeout: 60_000 });
      await ns.queue("acked").ack(acked!.token);
      await kv.namespace("other").queue("elsewhere").enqueue(1);
      expect(await queueNames(ns)).toEqual(["dead", "delayed", "leased", "ready"]);
      expect(await queueNames(ns, 2)).toEqual(["dead", "delayed"]);
      expect(await queueNames(kv.namespace("other"))).toEqual(["elsewhere"]);
    } finally {
      await close();
    }
  });
});
