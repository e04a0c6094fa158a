/**
 * Processes of the sync benchmark (bench/sync.ts):
 *
 *   sync-child.ts server <file>          a Cellar server on the SQLite file (default durability, full)
 *   sync-child.ts receivers <url> <n>    n client stores, n `/api/events` WebSockets and n Redis
 *                                        subscribers, each recording when it hears of each write
 *
 * A server sends `{ url }` once it listens; asked `{ type: "commit", prefix, count, version }`,
 * it sets `[prefix, i]` for every i below count (1,000 sets at a time, each its own commit) and
 * answers `{ head }`, its `currentVersionstamp()` then. Receivers send `{ redis }` (whether Redis
 * answered) once every receiver is connected and synced; asked `{ type: "report", kind, from,
 * to }`, they answer each receiver's receipt times of writes `from` … `to - 1` on the clock all
 * processes share, once every receiver has them all or 10 s have passed (0: never heard).
 */
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import WebSocket from "ws";
import { type ClientKv, createClientKv, REST } from "../src/index.js";
import { startServer } from "../src/server/serve.js";
import { type Child, forkChild } from "./child.js";
import { connectRedis, REDIS } from "./redis.js";
import { ENTRIES, VALUES } from "./workload.js";

/** What a receiver hears: a client store's replica, an events socket, a Redis channel. */
export type ReceiverKind = "sync" | "events" | "redis";

/** The prefix client stores replicate, the events sockets' pattern and the Redis channel. */
export const FAN_OUT = { sync: "sync", events: "ev", channel: "fan" } as const;
/** Write numbers a receiver can record. */
export const MAX_WRITES = 1024;
const REPORT_DEADLINE_MS = 10_000;

export const now = () => performance.timeOrigin + performance.now();

/** The value of write `i`: a ~100-byte user, with the write's number. */
export const fanOutValue = (i: number) => ({ ...VALUES[i % ENTRIES]!, i });

export interface Report {
  readonly type: "report";
  readonly kind: ReceiverKind;
  readonly from: number;
  readonly to: number;
}

export interface Commit {
  readonly type: "commit";
  readonly prefix: string;
  readonly count: number;
  readonly version: number;
}

/** Sends `message` to a child and resolves with its next message. */
export function ask<T>(child: Child<unknown>, message: Report | Commit): Promise<T> {
  return new Promise((resolve) => {
    child.process.once("message", (answer: T) => resolve(answer));
    child.process.send(message);
  });
}

export function startSyncServer(file: string): Promise<Child<{ url: string }>> {
  return forkChild(fileURLToPath(import.meta.url), ["server", file]);
}

export function startReceivers(url: string, count: number): Promise<Child<{ redis: boolean }>> {
  return forkChild(fileURLToPath(import.meta.url), ["receivers", url, String(count)]);
}

async function server(file: string): Promise<void> {
  const running = await startServer({ db: file, port: 0 });
  const { kv } = running;
  process.on("message", async (message: Commit | "stop") => {
    if (message === "stop") {
      await running.close();
      process.exit(0);
    }
    for (let start = 0; start < message.count; start += 1000) {
      const sets: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(message.count, start + 1000); i++)
        sets.push(kv.set([message.prefix, i], { ...VALUES[i % ENTRIES]!, v: message.version }));
      await Promise.all(sets);
    }
    process.send!({ head: await kv.currentVersionstamp() });
  });
  process.once("disconnect", () => process.exit(0));
  process.send!({ url: running.url });
}

/** Receipt times by receiver, then write number (0: not heard yet). */
type Receipts = Float64Array[];

function receipts(count: number): Receipts {
  return Array.from({ length: count }, () => new Float64Array(MAX_WRITES));
}

function record(at: Float64Array, i: unknown): void {
  if (typeof i === "number" && i < MAX_WRITES && at[i] === 0) at[i] = now();
}

async function syncReceivers(url: string, at: Receipts): Promise<ClientKv[]> {
  return Promise.all(
    at.map(async (mine) => {
      const kv = await createClientKv({ url, prefixes: [[FAN_OUT.sync]] });
      kv.subscribe([FAN_OUT.sync, REST], (event) => {
        if (event.cause === "remote" && event.entry.exists)
          record(mine, (event.entry.value as { i?: unknown }).i);
      });
      await kv.whenSynced();
      return kv;
    }),
  );
}

async function eventSockets(url: string, at: Receipts): Promise<WebSocket[]> {
  const address = `${url.replace(/^http/, "ws")}/api/events?pattern=${FAN_OUT.events}/%23`;
  return Promise.all(
    at.map((mine) => {
      const ws = new WebSocket(address, { perMessageDeflate: false });
      ws.on("message", (data) => {
        const items = JSON.parse(String(data)) as {
          type: string;
          entry?: { value: { i?: unknown } };
        }[];
        for (const item of items) if (item.type === "set") record(mine, item.entry?.value.i);
      });
      return new Promise<WebSocket>((resolve, reject) => {
        ws.once("open", () => resolve(ws));
        ws.once("error", reject);
      });
    }),
  );
}

async function redisSubscribers(at: Receipts): Promise<Redis[]> {
  return Promise.all(
    at.map(async (mine) => {
      const redis = new Redis({ ...REDIS, lazyConnect: true });
      redis.on("message", (_channel: string, message: string) =>
        record(mine, (JSON.parse(message) as { i?: unknown }).i),
      );
      await redis.connect();
      await redis.subscribe(FAN_OUT.channel);
      return redis;
    }),
  );
}

async function receivers(url: string, count: number): Promise<void> {
  const at: Record<ReceiverKind, Receipts> = {
    sync: receipts(count),
    events: receipts(count),
    redis: receipts(count),
  };
  const stores = await syncReceivers(url, at.sync);
  const sockets = await eventSockets(url, at.events);
  const probe = await connectRedis();
  probe?.disconnect();
  const subscribers = probe ? await redisSubscribers(at.redis) : [];
  process.on("message", async (message: Report | "stop") => {
    if (message === "stop") {
      for (const ws of sockets) ws.terminate();
      for (const redis of subscribers) redis.disconnect();
      await Promise.all(stores.map((kv) => kv.close()));
      process.exit(0);
    }
    const { kind, from, to } = message;
    const complete = () => at[kind].every((mine) => mine.subarray(from, to).every((t) => t > 0));
    const deadline = performance.now() + REPORT_DEADLINE_MS;
    while (!complete() && performance.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    process.send!(at[kind].map((mine) => [...mine.subarray(from, to)]));
  });
  process.once("disconnect", () => process.exit(0));
  process.send!({ redis: probe !== null });
}

const [flag, role, ...args] = process.argv.slice(2);
if (flag === "--child" && role === "server") await server(args[0]!);
if (flag === "--child" && role === "receivers") await receivers(args[0]!, Number(args[1]));
