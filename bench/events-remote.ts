/**
 * Events out of this process: the latency to a subscriber in another process and to a
 * Server-Sent Events client, and the fan-out of commits to a thousand SSE connections against a
 * thousand Redis `PSUBSCRIBE` connections.
 */
import { join } from "node:path";
import { Redis } from "ioredis";
import { Pool } from "undici";
import { openKv } from "../src/index.js";
import { startServer } from "../src/server/index.js";
import { now, receipts, startSubscriber } from "./events-child.js";
import { interleave, Latencies, load, type Row, type Section } from "./harness.js";
import { connectRedis, REDIS, REDIS_SKIPPED } from "./redis.js";
import { startCellarServer } from "./server.js";
import { redisStreams, type Streams, sseStreams } from "./stream-clients.js";
import { ENTRIES, VALUES } from "./workload.js";

const CROSS_SAMPLES = 1000;
export const CROSS_GAP_MS = 2;
/** SSE sets, each after the stream has been quiet for longer than its 20 ms flush window. */
const SSE_PACED = 300;
const SSE_GAP_MS = 21;
/** SSE sets one right after another's event. */
const SSE_BACK_TO_BACK = 100;
/** Subscribers of the fan-out and write-cost scenarios. */
export const SUBSCRIBERS = 1000;
/** Commits per fan-out round. */
const COMMITS = 200;
const ROUNDS = 3;
const DEADLINE_MS = 60_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const value = (i: number) => VALUES[i % ENTRIES]!;

/** A subscriber process on the SQLite file this process writes, sets {@link CROSS_GAP_MS} apart. */
export async function crossProcessLatency(dir: string): Promise<Row> {
  const file = join(dir, "cross-process.db");
  const kv = await openKv(file, { durability: "normal" });
  const child = await startSubscriber(file);
  try {
    const sentAt = new Float64Array(2 * CROSS_SAMPLES);
    let started = 0;
    for (let i = 0; i < sentAt.length; i++) {
      if (i === CROSS_SAMPLES) started = performance.now();
      sentAt[i] = now();
      await kv.set(["lat", i], value(i));
      await sleep(CROSS_GAP_MS);
    }
    const ms = performance.now() - started;
    await sleep(500);
    const { at } = await receipts(child);
    const latencies = new Latencies();
    let missed = 0;
    for (let i = CROSS_SAMPLES; i < sentAt.length; i++) {
      if (at[i] === undefined) missed++;
      else latencies.add(at[i]! - sentAt[i]!);
    }
    if (missed > 0)
      throw new Error(`the other process missed ${missed} of ${CROSS_SAMPLES} events`);
    return {
      name: "kv.subscribe in another process, SQLite, durability normal",
      ops: (CROSS_SAMPLES * 1000) / ms,
      latency: latencies.summary()!,
    };
  } finally {
    await child.stop();
    await kv.close();
  }
}

/** `GET /api/events` on an in-process server, sets paced past the flush window, then back to back. */
export async function sseLatency(dir: string): Promise<Row[]> {
  const kv = await openKv(join(dir, "sse-latency.db"), { durability: "normal" });
  const server = await startServer({ db: kv, port: 0, host: "127.0.0.1" });
  const streams = await sseStreams(`${server.url}/api/events?pattern=lat/%23`, 1, "set");
  let i = 0;
  const run = async (samples: number, gap: number) => {
    const latencies = new Latencies();
    const started = performance.now();
    for (const end = i + samples; i < end; i++) {
      const sent = performance.now();
      await kv.set(["lat", i], value(i));
      latencies.add((await streams.caughtUp(i + 1, DEADLINE_MS)) - sent);
      if (gap > 0) await sleep(gap);
    }
    return { ops: (samples * 1000) / (performance.now() - started), latency: latencies.summary()! };
  };
  try {
    await run(SSE_BACK_TO_BACK, 0);
    return [
      {
        name: `SSE \`/api/events\`, SQLite normal, sets ${SSE_GAP_MS} ms apart`,
        ...(await run(SSE_PACED, SSE_GAP_MS)),
      },
      {
        name: "SSE `/api/events`, SQLite normal, sets back to back",
        ...(await run(SSE_BACK_TO_BACK, 0)),
      },
    ];
  } finally {
    streams.close();
    await server.close();
  }
}

/** One round: `COMMITS` writes issued together; resolves to deliveries per second. */
interface FanOut {
  readonly name: string;
  round(): Promise<number>;
  close(): Promise<void>;
}

/**
 * SSE connections to a Cellar server child (its own process, as Redis is) against Redis
 * `PSUBSCRIBE` connections; every subscriber lives in this process. Bare sockets that count
 * bytes (see stream-clients.ts) keep this process's share small, so the figures are the servers';
 * ioredis, which parses and emits each message, shows what a client library adds.
 */
export async function networkFanOut(dir: string, log: (step: string) => void): Promise<Section> {
  const title = `Events: one commit to ${SUBSCRIBERS.toLocaleString("en-US")} subscribers over the network (ops = deliveries)`;
  const redisName = `Redis PSUBSCRIBE, ${SUBSCRIBERS} sockets`;
  const ioredisName = `Redis PSUBSCRIBE, ${SUBSCRIBERS} ioredis connections`;
  log(`events: fan-out to ${SUBSCRIBERS} SSE connections`);
  const cellar = await cellarFanOut(dir);
  const contenders: FanOut[] = [cellar];
  const notes: string[] = [];
  try {
    await cellar.round();
    const payload = cellar.sample();
    const probe = await connectRedis();
    if (probe) {
      probe.disconnect();
      log(`events: fan-out to ${SUBSCRIBERS} Redis subscribers`);
      // Patterns of their own, so that neither set of subscribers hears the other's rounds.
      contenders.push(await redisFanOut(redisName, "s:", payload, socketSubscribers));
      contenders.push(await redisFanOut(ioredisName, "i:", payload, ioredisSubscribers));
    } else notes.push(REDIS_SKIPPED);
    for (const c of contenders.slice(1)) await c.round();
    const start = load();
    log(`events: fan-out rounds, load ${start}`);
    const results = await interleave(
      contenders.map((c) => () => c.round()),
      ROUNDS,
    );
    const rows: Row[] = contenders.map((c, i) => ({
      name: c.name,
      ops: Math.max(...results[i]!),
      ...(c === cellar && { target: 1 }),
    }));
    if (!probe)
      rows.push(...[redisName, ioredisName].map((name) => ({ name, ops: "n/a" as const })));
    notes.unshift(
      `load average ${start} → ${load()}; best of ${ROUNDS} rounds taken in turns`,
      `A round: ${COMMITS} writes issued at once (Cellar: \`PUT /api/keys/users/…\`, one on each of ${COMMITS} keep-alive connections, each set one commit; Redis: \`PUBLISH users:…\`, pipelined on one connection, of a ${Buffer.byteLength(payload)}-byte message, the size of Cellar's event data), timed until every subscriber has received every message.`,
      "The Cellar server (SQLite, durability normal, `GET /api/events?pattern=users/%23`) and Redis (no persistence) each run in their own process; all subscribers run in this one. Sockets count bytes, and one of them the messages: a socket that received as many bytes as it got every message; ioredis subscribers count their `pmessage` events.",
    );
    return { title, notes, baseline: redisName, rows };
  } finally {
    for (const c of contenders) await c.close();
  }
}

async function cellarFanOut(dir: string): Promise<FanOut & { sample(): string }> {
  const server = await startCellarServer(dir);
  const streams = await sseStreams(
    `${server.url}/api/events?pattern=users/%23`,
    SUBSCRIBERS,
    "set",
  );
  // A connection per write, so that a round's writes reach the server together, as Redis's
  // pipelined publishes do (Node's server answers pipelined requests one after another).
  const pool = new Pool(server.url, { connections: COMMITS });
  let next = 0;
  const put = async (i: number) => {
    const { statusCode, body } = await pool.request({
      method: "PUT",
      path: `/api/keys/users/${i % ENTRIES}`,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ value: { ...value(i), score: i } }),
    });
    await body.text();
    if (statusCode !== 200) throw new Error(`PUT: ${statusCode}`);
  };
  return {
    name: `Cellar SSE \`/api/events\`, ${SUBSCRIBERS} sockets`,
    async round() {
      const goal = streams.messages + COMMITS;
      const started = performance.now();
      const writes: Promise<void>[] = [];
      for (let end = next + COMMITS; next < end; next++) writes.push(put(next));
      await Promise.all(writes);
      const done = await streams.caughtUp(goal, DEADLINE_MS);
      return (COMMITS * SUBSCRIBERS * 1000) / (done - started);
    },
    sample() {
      if (streams.sample === undefined) throw new Error("no event data sampled");
      return streams.sample;
    },
    async close() {
      streams.close();
      await pool.close();
      await server.stop();
    },
  };
}

/** Subscribers to `pattern`; `caughtUp` as in {@link Streams}. */
type Subscribers = (pattern: string) => Promise<Pick<Streams, "messages" | "caughtUp" | "close">>;

const socketSubscribers: Subscribers = (pattern) => redisStreams(REDIS.port, SUBSCRIBERS, pattern);

/** ioredis connections, each counting its `pmessage` events. */
const ioredisSubscribers: Subscribers = async (pattern) => {
  const counts = new Int32Array(SUBSCRIBERS);
  let total = 0;
  let waiter: { goal: number; resolve: (at: number) => void } | null = null;
  const subscribers: Redis[] = [];
  for (let start = 0; start < SUBSCRIBERS; start += 100) {
    const batch = Array.from({ length: 100 }, async (_, j) => {
      const subscriber = new Redis({ ...REDIS, lazyConnect: true });
      subscribers.push(subscriber);
      subscriber.on("pmessage", () => {
        counts[start + j]!++;
        if (++total === waiter?.goal) waiter.resolve(performance.now());
      });
      await subscriber.connect();
      await subscriber.psubscribe(pattern);
    });
    await Promise.all(batch);
  }
  return {
    // As connection 0 of a socket set counts: every subscriber's count is checked in caughtUp.
    get messages() {
      return total / SUBSCRIBERS;
    },
    caughtUp(goal, ms) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`ioredis: ${total} messages`)), ms);
        const done = (at: number) => {
          clearTimeout(timer);
          const short = counts.findIndex((count) => count !== goal);
          if (short !== -1)
            reject(new Error(`ioredis subscriber ${short}: ${counts[short]} of ${goal}`));
          else resolve(at);
        };
        if (total >= goal * SUBSCRIBERS) done(performance.now());
        else waiter = { goal: goal * SUBSCRIBERS, resolve: done };
      });
    },
    close() {
      for (const subscriber of subscribers) subscriber.disconnect();
    },
  };
};

/** Publishes to channels `<prefix>users:<n>`, which the subscribers' `<prefix>users:*` matches. */
async function redisFanOut(
  name: string,
  prefix: string,
  payload: string,
  subscribe: Subscribers,
): Promise<FanOut> {
  const publisher = (await connectRedis())!;
  const subscribers = await subscribe(`${prefix}users:*`);
  let next = 0;
  return {
    name,
    async round() {
      const goal = subscribers.messages + COMMITS;
      const started = performance.now();
      const publishes: Promise<number>[] = [];
      for (let end = next + COMMITS; next < end; next++)
        publishes.push(publisher.publish(`${prefix}users:${next % ENTRIES}`, payload));
      await Promise.all(publishes);
      const done = await subscribers.caughtUp(goal, DEADLINE_MS);
      return (COMMITS * SUBSCRIBERS * 1000) / (done - started);
    },
    async close() {
      subscribers.close();
      publisher.disconnect();
    },
  };
}
