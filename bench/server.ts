import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { openKv } from "../src/index.js";
import {
  type Contender,
  compare,
  interleave,
  Latencies,
  load,
  type Section,
  timed,
} from "./harness.js";
import { connectRedis, deleteKeys, REDIS_SKIPPED } from "./redis.js";
import { type ChildServer, SERVED_PATH, startChild } from "./server-child.js";
import { awaited, BURST, bursts, KEYS, populate, type User, writer } from "./workload.js";
import { type LoadResult, WRK_SKIPPED, wrk, wrkAvailable } from "./wrk.js";

export const CONNECTIONS = 50;
const WRK_SECONDS = 2;
const WRK_ROUNDS = 3;
/** The Cellar server's durability: "normal" is the nearer match to a Redis without persistence. */
export const SERVER_DURABILITY = "normal";
const REDIS_PREFIX = `cellar-bench:${process.pid}:`;

/** Starts a Cellar server child on a populated SQLite file in `dir`; `flags` go to its node. */
export function startCellarServer(dir: string, flags: readonly string[] = []) {
  return startChild(["cellar", dir, SERVER_DURABILITY], flags);
}

/**
 * A Cellar server and the remote client against bare node:http and ioredis, each server in its
 * own process.
 */
export async function serverSections(log: (step: string) => void): Promise<Section[]> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-server-"));
  let cellar: ChildServer | null = null;
  try {
    log("server: starting a Cellar server on SQLite");
    cellar = await startCellarServer(dir);
    const http = await httpSection(cellar, dir, log);
    return [http, ...(await remoteSections(cellar.url, log))];
  } finally {
    await cellar?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function httpSection(cellar: ChildServer, dir: string, log: (step: string) => void) {
  const title = `Server: HTTP \`GET ${SERVED_PATH}\`, ${CONNECTIONS} connections (ops = requests)`;
  const names = ["Cellar server (SQLite)", "node:http, fixed JSON of the same size"] as const;
  if (!wrkAvailable()) {
    return {
      title,
      notes: [WRK_SKIPPED],
      rows: [
        { name: names[0], ops: "n/a" },
        { name: names[1], ops: "n/a", target: 0.7 },
      ],
    } satisfies Section;
  }
  // The bare server answers exactly the bytes Cellar does, so both move the same traffic.
  const body = await (await fetch(cellar.url + SERVED_PATH)).text();
  const bare = await startChild(["bare", body]);
  try {
    const run = wrk(dir);
    const urls = [cellar.url, bare.url].map((url) => url + SERVED_PATH);
    const start = load();
    log(`server: HTTP GET, ${CONNECTIONS} connections (wrk), load ${start}`);
    await interleave(
      urls.map((url) => () => run(url, CONNECTIONS, 1)),
      1,
    );
    const [cellarRuns, bareRuns] = await interleave(
      urls.map((url) => () => run(url, CONNECTIONS, WRK_SECONDS)),
      WRK_ROUNDS,
    );
    return {
      title,
      notes: [
        `load average ${start} → ${load()}; wrk -t1, 1 s warm-up, best of ${WRK_ROUNDS} × ${WRK_SECONDS} s`,
      ],
      rows: [
        { name: names[0], ...best(cellarRuns!) },
        { name: names[1], ...best(bareRuns!), target: 0.7 },
      ],
    } satisfies Section;
  } finally {
    await bare.stop();
  }
}

const best = (runs: readonly LoadResult[]): LoadResult =>
  runs.reduce((a, b) => (b.ops > a.ops ? b : a));

type RedisOps = Awaited<ReturnType<typeof redisOps>>;

/** One remote-client scenario: Cellar's contender, and ioredis's when Redis answers. */
interface RemoteScenario {
  readonly title: string;
  readonly cellar: Omit<Contender, "name">;
  readonly peerName: string;
  readonly peer: (redis: RedisOps) => Omit<Contender, "name">;
  readonly target?: number;
}

/** Calls timed one by one, for the sequential scenarios. */
function sequential(op: (i: number) => Promise<unknown>): Omit<Contender, "name"> {
  const latencies = new Latencies();
  return { batch: awaited(timed(op, latencies)), latencies };
}

const concurrent = (op: (i: number) => Promise<unknown>): Omit<Contender, "name"> => ({
  batch: bursts(op),
  opsPerCall: BURST,
});

async function remoteSections(url: string, log: (step: string) => void): Promise<Section[]> {
  const kv = await openKv(url);
  const redis = await connectRedis();
  try {
    const ops = redis && (await redisOps(redis));
    const set = writer((key, value) => kv.set(key, value));
    const scenarios: RemoteScenario[] = [
      {
        title: "Remote client: sequential get",
        cellar: sequential((i) => kv.get(KEYS[i]!)),
        peerName: "ioredis GET",
        peer: (r) => sequential(r.get),
      },
      {
        title: "Remote client: sequential set",
        cellar: sequential(set),
        peerName: "ioredis SET",
        peer: (r) => sequential(r.set),
      },
      {
        title: `Remote client: ${BURST} concurrent gets (ops = gets)`,
        cellar: concurrent((i) => kv.get(KEYS[i]!)),
        peerName: `ioredis, ${BURST} GETs in flight`,
        peer: (r) => concurrent(r.get),
        target: 0.5,
      },
    ];
    const sections: Section[] = [];
    for (const scenario of scenarios) sections.push(await remoteSection(scenario, ops, log));
    return sections;
  } finally {
    await kv.close();
    if (redis) {
      await deleteKeys(redis, `${REDIS_PREFIX}*`);
      redis.disconnect();
    }
  }
}

async function remoteSection(
  scenario: RemoteScenario,
  redis: RedisOps | null,
  log: (step: string) => void,
): Promise<Section> {
  const start = load();
  log(`server: ${scenario.title}, load ${start}`);
  const target = scenario.target !== undefined ? { target: scenario.target } : {};
  const cellar: Contender = { name: "Cellar remote client", ...scenario.cellar };
  const rows = redis
    ? await compare([cellar, { name: scenario.peerName, ...scenario.peer(redis), ...target }])
    : [...(await compare([cellar])), { name: scenario.peerName, ops: "n/a" as const, ...target }];
  const notes = [`load average ${start} → ${load()}`, ...(redis ? [] : [REDIS_SKIPPED])];
  return { title: scenario.title, notes, rows };
}

/** GET and SET of the same users under a prefix of this run, JSON as Cellar stores them. */
async function redisOps(redis: Redis) {
  const key = (k: readonly unknown[]) => `${REDIS_PREFIX}${k.join(":")}`;
  const put = (k: readonly unknown[], value: User) => redis.set(key(k), JSON.stringify(value));
  await populate(put);
  return {
    get: async (i: number) => {
      const text = await redis.get(key(KEYS[i]!));
      return text === null ? null : (JSON.parse(text) as User);
    },
    set: writer(put),
  };
}
