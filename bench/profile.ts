/**
 * One Cellar scenario on its own, for a CPU profile:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/profile.ts <scenario> [store]
 *
 * get|set|burst|list [full|normal|memory]   embedded, in this process
 * queue [full|normal] [listen|loop]         enqueue → handle → ack rounds, in this process
 * http                                      wrk against a Cellar server child
 * events-set [subscribers]                  sequential SQLite (normal) sets, N kv.subscribe listeners
 * events-http [subscribers]                 wrk's GET/PUT mix against a server child, N SSE clients
 * remote-get|remote-set|remote-burst        the remote client against a Cellar server child
 * index-where|search                         SQLite (normal), 100,000 documents: a where filter on
 *                                            an indexed city, or a two-word full-text search
 *
 * The server child inherits the `--cpu-prof` flags, so the server scenarios write two profiles:
 * this process's and the server's (the larger pid). Summarize one with
 * `npx tsx bench/profile-top.ts <file.cpuprofile>`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kv, openKv, REST } from "../src/index.js";
import { cityOf, PREFIX as DOCS_PREFIX, listByCity, load, QUERIES } from "./documents.js";
import { fill, MIX } from "./events-load.js";
import { measure } from "./harness.js";
import { cellarListen, cellarLoop, JOBS, queueRound } from "./queue.js";
import { CONNECTIONS, startCellarServer } from "./server.js";
import { SERVED_PATH } from "./server-child.js";
import { sseStreams } from "./stream-clients.js";
import { awaited, BURST, bursts, KEYS, LIST_LIMIT, PREFIX, populate, writer } from "./workload.js";
import { wrk } from "./wrk.js";

const [scenario = "get", store = "full", variant = "listen"] = process.argv.slice(2);
const budget = { budgetMs: 5000 };

/** The Kv scenarios, each one measured for the budget; resolves to ops/s. */
function kvScenarios(kv: Kv): Record<string, () => Promise<number>> {
  const set = writer((key, value) => kv.set(key, value));
  return {
    get: () =>
      measure(
        awaited((i) => kv.get(KEYS[i]!)),
        budget,
      ),
    set: () => measure(awaited(set), budget),
    burst: () => measure(bursts(set), { ...budget, opsPerCall: BURST }),
    list: () =>
      measure(
        awaited(async () => {
          for await (const _ of kv.list({ prefix: PREFIX }, { limit: LIST_LIMIT }));
        }),
        budget,
      ),
  };
}

async function embedded(name: string): Promise<number> {
  if (store !== "full" && store !== "normal" && store !== "memory") {
    throw new Error(`unknown store ${store}`);
  }
  const kv =
    store === "memory"
      ? await openKv(":memory:")
      : await openKv(join(dir, "cellar.db"), { durability: store });
  try {
    await populate((key, value) => kv.set(key, value));
    return await kvScenarios(kv)[name]!();
  } finally {
    await kv.close();
  }
}

async function queue(): Promise<number> {
  if (store !== "full" && store !== "normal") throw new Error(`unknown durability ${store}`);
  const open = variant === "loop" ? cellarLoop : cellarListen;
  const subject = await open(join(dir, "queue.db"), store);
  try {
    let best = 0;
    for (let round = 0; round < 3; round++) {
      best = Math.max(best, (await queueRound(subject)).flood.ops);
    }
    return best;
  } finally {
    await subject.close();
  }
}

async function http(): Promise<number> {
  const server = await startCellarServer(dir);
  try {
    return (await wrk(dir)(server.url + SERVED_PATH, CONNECTIONS, 10)).ops;
  } finally {
    await server.stop();
  }
}

async function remote(name: string): Promise<number> {
  const server = await startCellarServer(dir);
  const kv = await openKv(server.url);
  try {
    return await kvScenarios(kv)[name]!();
  } finally {
    await kv.close();
    await server.stop();
  }
}

async function eventsSet(): Promise<number> {
  const kv = await openKv(join(dir, "events.db"), { durability: "normal" });
  try {
    await populate((key, value) => kv.set(key, value));
    for (let i = 0; i < Number(store); i++) kv.subscribe(["users", REST], () => {});
    return await measure(awaited(writer((key, value) => kv.set(key, value))), budget);
  } finally {
    await kv.close();
  }
}

async function eventsHttp(): Promise<number> {
  const server = await startCellarServer(dir);
  try {
    await fill(server);
    const count = Number(store);
    const streams =
      count > 0 ? await sseStreams(`${server.url}/api/events?pattern=k/%23`, count, "set") : null;
    const ops = (await wrk(dir, MIX)(server.url, CONNECTIONS, 10)).ops;
    streams?.close();
    return ops;
  } finally {
    await server.stop();
  }
}

/**
 * The indexes group's reads, on its 100,000 documents. Loading and indexing them takes ~10 s,
 * so the reads run three times as long as the other scenarios to own most of the profile.
 */
async function indexed(name: "index-where" | "search"): Promise<number> {
  const long = { budgetMs: 3 * budget.budgetMs };
  const kv = await openKv(join(dir, "indexed.db"), { durability: "normal" });
  try {
    await load(kv);
    if (name === "index-where") {
      await kv.createIndex("byCity", { prefix: DOCS_PREFIX, fields: ["city"] });
      return await measure(
        awaited((i) => listByCity(kv, cityOf(i))),
        long,
      );
    }
    await kv.createSearchIndex("bios", { prefix: DOCS_PREFIX, fields: ["bio"] });
    return await measure(
      awaited((i) => kv.search("bios", QUERIES[i % QUERIES.length]!)),
      long,
    );
  } finally {
    await kv.close();
  }
}

const SCENARIOS: Record<string, () => Promise<number>> = {
  get: () => embedded("get"),
  set: () => embedded("set"),
  burst: () => embedded("burst"),
  list: () => embedded("list"),
  queue,
  http,
  "events-set": eventsSet,
  "events-http": eventsHttp,
  "remote-get": () => remote("get"),
  "remote-set": () => remote("set"),
  "remote-burst": () => remote("burst"),
  "index-where": () => indexed("index-where"),
  search: () => indexed("search"),
};

const run = SCENARIOS[scenario];
if (!run) {
  throw new Error(`unknown scenario ${scenario}; one of ${Object.keys(SCENARIOS).join(", ")}`);
}
const dir = mkdtempSync(join(tmpdir(), "cellar-profile-"));
try {
  const ops = Math.round(await run()).toLocaleString("en-US");
  const unit = scenario === "queue" ? `jobs/s (best of 3 floods of ${JOBS})` : "ops/s";
  console.log(`${process.argv.slice(2).join(" ") || scenario}: ${ops} ${unit}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
