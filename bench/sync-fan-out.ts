/**
 * One write reaching every other client through one server: a client store's `set` to 99 other
 * client stores over `/api/sync`, against the same values sent by the remote client
 * (`openKv(url)`, `POST /api/driver/write`) to 99 `/api/events` WebSockets, and against Redis
 * pub/sub (ioredis).
 * The server runs in a child process; the receivers in {@link PROCESSES} others; the writer here.
 * Two sections: latency at a steady rate, and deliveries per second of a burst of writes.
 */
import { createClientKv, openKv } from "../src/index.js";
import type { Child } from "./child.js";
import { interleave, Latencies, load, type Row, type Section } from "./harness.js";
import { connectRedis, REDIS_SKIPPED } from "./redis.js";
import {
  ask,
  FAN_OUT,
  fanOutValue,
  MAX_WRITES,
  now,
  type ReceiverKind,
  startReceivers,
  startSyncServer,
} from "./sync-child.js";

/** Clients in all: one writer and the receivers. */
export const CLIENTS = 100;
/** Processes the receivers are spread over. */
export const PROCESSES = 3;
const RECEIVERS = CLIENTS - 1;
/** Writes per steady round, one every {@link GAP_MS}; rounds take turns across contenders. */
const WRITES = 100;
export const GAP_MS = 40;
/** Writes per burst round, issued at once. */
export const BURST_WRITES = 100;
const ROUNDS = 2;
const WARM_UP = 20;

type Log = (step: string) => void;

interface Contender {
  readonly kind: ReceiverKind;
  readonly name: string;
  /** Starts write `i`; resolves once the writer is done with it (the server answered). */
  write(i: number): Promise<unknown>;
  close(): Promise<void>;
}

interface Round {
  /** Per write: from just before the writer's call until it resolved. */
  readonly answered: number[];
  /** Per write: from just before the writer's call to each receiver's receipt. */
  readonly deliveries: number[];
  /** Per write: to the last receiver's receipt. */
  readonly last: number[];
  /** From the first write to the last receipt. */
  readonly ms: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The server, the receivers' processes and the writers, for both sections. */
interface Setup {
  readonly contenders: readonly Contender[];
  readonly redis: boolean;
  readonly shares: readonly number[];
  /** `writes` writes of `c`, `gap` ms apart (0: at once), timed to every receiver. */
  round(c: Contender, writes: number, gap: number): Promise<Round>;
}

export async function fanOutSections(file: string, log: Log): Promise<Section[]> {
  log(`sync: fan-out, starting the server and ${RECEIVERS} receivers of each kind`);
  const server = await startSyncServer(file);
  const { url } = server.ready;
  const shares = Array.from(
    { length: PROCESSES },
    (_, p) =>
      Math.floor(((p + 1) * RECEIVERS) / PROCESSES) - Math.floor((p * RECEIVERS) / PROCESSES),
  );
  const children: Child<{ redis: boolean }>[] = [];
  const contenders: Contender[] = [];
  try {
    for (const share of shares) children.push(await startReceivers(url, share));
    const redis = children.every((child) => child.ready.redis);
    contenders.push(await syncWriter(url), await eventsWriter(url));
    if (redis) contenders.push(await redisWriter());
    const next = new Map(contenders.map((c) => [c, 0]));
    const round = async (c: Contender, writes: number, gap: number): Promise<Round> => {
      const from = next.get(c)!;
      const to = from + writes;
      if (to > MAX_WRITES) throw new Error("more writes than the receivers record");
      next.set(c, to);
      const sentAt = new Float64Array(writes);
      const answered: number[] = [];
      const done: Promise<unknown>[] = [];
      const started = performance.now();
      for (let k = 0; k < writes; k++) {
        if (gap > 0) await sleep(started + k * gap - performance.now());
        sentAt[k] = now();
        done.push(c.write(from + k).then(() => answered.push(now() - sentAt[k]!)));
      }
      await Promise.all(done);
      const heard = (
        await Promise.all(
          children.map((child) =>
            ask<number[][]>(child, { type: "report", kind: c.kind, from, to }),
          ),
        )
      ).flat();
      const deliveries: number[] = [];
      const last: number[] = [];
      let end = 0;
      for (let k = 0; k < writes; k++) {
        let slowest = 0;
        for (const [r, at] of heard.entries()) {
          if (at[k] === 0) throw new Error(`${c.name}: receiver ${r} missed write ${from + k}`);
          deliveries.push(at[k]! - sentAt[k]!);
          slowest = Math.max(slowest, at[k]! - sentAt[k]!);
          end = Math.max(end, at[k]!);
        }
        last.push(slowest);
      }
      return { answered, deliveries, last, ms: end - sentAt[0]! };
    };
    for (const c of contenders) {
      log(`sync: fan-out warm-up, ${c.name}`);
      await round(c, WARM_UP, GAP_MS);
    }
    const setup: Setup = { contenders, redis, shares, round };
    return [await steadySection(setup, log), await burstSection(setup, log)];
  } finally {
    for (const c of contenders) await c.close();
    for (const child of children) await child.stop();
    await server.stop();
  }
}

const REDIS_NAME = "Redis pub/sub (ioredis)";

function setupNote(shares: readonly number[]): string {
  return `The writer runs in the bench process, the server (\`startServer\` on a SQLite file, durability full) in a child process, and the ${RECEIVERS} receivers of each kind in ${PROCESSES} other child processes (${shares.join(" + ")}). Client store: \`createClientKv\` (memory storage) replicating \`["${FAN_OUT.sync}"]\`; the writer's \`set\`, each receiver's \`subscribe\` listener with \`cause: "remote"\`. Events: the remote client's \`kv.set\` (\`openKv(url)\`: \`POST /api/driver/write\`) to the same server, each receiver a \`ws\` socket on \`/api/events?pattern=${FAN_OUT.events}/%23\` that parses each message. Redis: \`PUBLISH\` from one ioredis connection, each receiver an ioredis connection \`SUBSCRIBE\`d to the channel that parses each message (no persistence, nothing stored). Every write carries the same ~120-byte JSON value; latencies run from just before the writer's call to each receiver's listener, on the clock the processes share.`;
}

async function steadySection(setup: Setup, log: Log): Promise<Section> {
  const { contenders, redis, shares, round } = setup;
  const start = load();
  log(`sync: fan-out, ${ROUNDS} rounds of ${WRITES} writes ${GAP_MS} ms apart per contender`);
  const results = await interleave(
    contenders.map((c) => () => round(c, WRITES, GAP_MS)),
    ROUNDS,
  );
  const rows: Row[] = contenders.flatMap((c, i) => steadyRows(c.name, results[i]!));
  if (!redis) rows.push({ name: REDIS_NAME, ops: "n/a" });
  return {
    title: `Sync: one write to ${RECEIVERS} other clients through one server, ${1000 / GAP_MS} writes/s (ops = deliveries per second)`,
    notes: [
      `load average ${start} → ${load()}; ${ROUNDS} rounds of ${WRITES} writes, ${GAP_MS} ms apart, per contender, taken in turns, after ${WARM_UP} of warm-up; every delivery of every write counted. "each client": every delivery; "every client": per write, to the last of the ${RECEIVERS}; "writer answered": until the writer's own call resolves (client store: \`confirmed\`; remote client: \`kv.set\`; Redis: \`PUBLISH\`'s reply).`,
      setupNote(shares),
      ...(redis ? [] : [REDIS_SKIPPED]),
    ],
    baseline: null,
    rows,
  };
}

async function burstSection(setup: Setup, log: Log): Promise<Section> {
  const { contenders, redis, shares, round } = setup;
  const start = load();
  log(`sync: fan-out, ${ROUNDS} rounds of ${BURST_WRITES} writes at once per contender`);
  const results = await interleave(
    contenders.map((c) => () => round(c, BURST_WRITES, 0)),
    ROUNDS,
  );
  const rows: Row[] = contenders.map((c, i) => {
    const best = results[i]!.reduce((a, b) => (b.ms < a.ms ? b : a));
    const latencies = new Latencies();
    for (const d of best.deliveries) latencies.add(d);
    return {
      name: c.name,
      ops: (best.deliveries.length * 1000) / best.ms,
      latency: latencies.summary()!,
    };
  });
  if (!redis) rows.push({ name: REDIS_NAME, ops: "n/a" });
  return {
    title: `Sync: ${BURST_WRITES} writes at once from one client to ${RECEIVERS} others (ops = deliveries per second)`,
    notes: [
      `load average ${start} → ${load()}; best of ${ROUNDS} rounds taken in turns; ops: deliveries from the first write to the last receipt; latency: per delivery, from its write's call.`,
      `The writer issues the ${BURST_WRITES} writes together: the client store's \`set\`s (its outbox sends them in order on its one socket, and the server applies them one after another), the remote client's \`kv.set\`s (concurrent requests), or pipelined \`PUBLISH\`es.`,
      setupNote(shares),
      ...(redis ? [] : [REDIS_SKIPPED]),
    ],
    baseline: redis ? REDIS_NAME : null,
    rows,
  };
}

function steadyRows(name: string, rounds: readonly Round[]): Row[] {
  const answered = new Latencies();
  const deliveries = new Latencies();
  const last = new Latencies();
  let count = 0;
  let ms = 0;
  for (const round of rounds) {
    for (const d of round.answered) answered.add(d);
    for (const d of round.deliveries) deliveries.add(d);
    for (const d of round.last) last.add(d);
    count += round.deliveries.length;
    ms += round.ms;
  }
  const ops = (count * 1000) / ms;
  return [
    { name: `${name}, each client`, ops, latency: deliveries.summary()! },
    { name: `${name}, every client`, ops, latency: last.summary()! },
    { name: `${name}, writer answered`, ops: "n/a", latency: answered.summary()! },
  ];
}

async function syncWriter(url: string): Promise<Contender> {
  const kv = await createClientKv({ url, prefixes: [[FAN_OUT.sync]] });
  await kv.whenSynced();
  return {
    kind: "sync",
    name: "client store `/api/sync`",
    async write(i) {
      const write = await kv.set([FAN_OUT.sync, i], fanOutValue(i));
      const outcome = await write.confirmed;
      if (!outcome.ok) throw new Error(`write ${i}: ${outcome.error.message}`);
    },
    close: () => kv.close(),
  };
}

async function eventsWriter(url: string): Promise<Contender> {
  const kv = await openKv(url);
  return {
    kind: "events",
    name: "remote client + `/api/events` WebSocket",
    write: (i) => kv.set([FAN_OUT.events, i], fanOutValue(i)),
    close: () => kv.close(),
  };
}

async function redisWriter(): Promise<Contender> {
  const redis = (await connectRedis())!;
  return {
    kind: "redis",
    name: REDIS_NAME,
    write: (i) => redis.publish(FAN_OUT.channel, JSON.stringify(fanOutValue(i))),
    async close() {
      redis.disconnect();
    },
  };
}
