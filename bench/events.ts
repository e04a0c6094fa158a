/**
 * Events in this process: how soon `kv.subscribe` hears of a commit, how fast one commit reaches
 * a thousand listeners, and what subscribers cost the write path. The figures across processes
 * and over HTTP are in events-remote.ts and events-load.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kv, openKv, REST } from "../src/index.js";
import { eventLoadSection } from "./events-load.js";
import {
  CROSS_GAP_MS,
  crossProcessLatency,
  networkFanOut,
  SUBSCRIBERS,
  sseLatency,
} from "./events-remote.js";
import { compare, Latencies, load, type Row, type Section } from "./harness.js";
import { awaited, BURST, bursts, populate, writer } from "./workload.js";

/** Latency samples per in-process row, after as many again of warm-up. */
const SAMPLES = 2000;
/** Sets per block; blocks with and without a subscriber take turns. */
const BLOCK = 100;
/** Commits per in-process fan-out row. */
const FAN_OUT_COMMITS = 500;
/** Budget of each write-cost figure: twice the default, as a subscriber's cost is a few percent. */
const BUDGET_MS = 3000;
/** The p99 the project aims for, from a commit's call to its event, in process. */
const IN_PROCESS_P99_MS = 1;
const USERS = ["users", REST] as const;

type Log = (step: string) => void;
type Store = "memory" | "full" | "normal";

const storeName = (store: Store) => (store === "memory" ? "memory" : `SQLite, durability ${store}`);

export async function eventsSections(log: Log): Promise<Section[]> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-events-"));
  try {
    return [
      await latencySection(dir, log),
      await inProcessFanOutSection(dir, log),
      await networkFanOut(dir, log),
      ...(await writeCostSections(dir, log)),
      await eventLoadSection(dir, log),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let files = 0;

/** A populated database of `store`, its file in `dir` (fresh for each call). */
async function open(dir: string, store: Store): Promise<Kv> {
  const kv =
    store === "memory"
      ? await openKv(":memory:")
      : await openKv(join(dir, `events-${files++}.db`), { durability: store });
  await populate((key, value) => kv.set(key, value));
  return kv;
}

async function latencySection(dir: string, log: Log): Promise<Section> {
  const start = load();
  const rows: Row[] = [];
  for (const store of ["memory", "normal", "full"] as const) {
    log(`events: commit-to-event latency, in process, ${storeName(store)}`);
    rows.push(...(await inProcessLatency(dir, store)));
  }
  log("events: commit-to-event latency, another process");
  rows.push(await crossProcessLatency(dir));
  log("events: commit-to-event latency, Server-Sent Events");
  rows.push(...(await sseLatency(dir)));
  return {
    title:
      "Events: commit-to-event latency (ops = events received per second, one commit at a time)",
    notes: [
      `load average ${start} → ${load()}`,
      "From just before `await kv.set` to the listener's call (in process), to the child's receipt on the shared clock `performance.timeOrigin + performance.now()` (another process), or to the client's read of the SSE message (Server-Sent Events: an in-process `startServer` and a socket client). `kv.set alone`: the same sets with no subscriber, until they resolve, in blocks taking turns with the subscribed ones: the commit's own latency, which the event's includes.",
      `In process and SSE: each set awaited, then the next. Another process: sets ${CROSS_GAP_MS} ms apart; the SQLite driver looks for other processes' commits every 50 ms. The p99 target is for memory and \`normal\`; under \`full\` every commit waits for its fsync.`,
    ],
    baseline: null,
    rows,
  };
}

/**
 * From just before each set to its listener's call, one set at a time, in blocks that take turns
 * with blocks of the same sets unsubscribed (timed until they resolve).
 */
async function inProcessLatency(dir: string, store: Store): Promise<Row[]> {
  const kv = await open(dir, store);
  const subscribed = new Latencies();
  const alone = new Latencies();
  let sent = 0;
  let received = 0;
  const set = writer((key, value) => kv.set(key, value));
  let i = 0;
  const block = async (subscribe: boolean) => {
    const stop = subscribe
      ? kv.subscribe(USERS, () => {
          subscribed.add(performance.now() - sent);
          received++;
        })
      : null;
    for (const end = i + BLOCK; i < end; i++) {
      sent = performance.now();
      await set(i);
      if (!stop) alone.add(performance.now() - sent);
    }
    stop?.();
  };
  try {
    for (let warm = 0; warm < SAMPLES / BLOCK; warm++) await block(warm % 2 === 0);
    subscribed.reset();
    alone.reset();
    received = 0;
    let busy = 0;
    for (let b = 0; b < SAMPLES / BLOCK; b++) {
      const started = performance.now();
      await block(true);
      busy += performance.now() - started;
      await block(false);
    }
    if (received !== SAMPLES) throw new Error(`${received} events for ${SAMPLES} sets`);
    return [
      {
        name: `kv.subscribe, ${storeName(store)}`,
        ops: (SAMPLES * 1000) / busy,
        latency: subscribed.summary()!,
        ...(store !== "full" && { maxP99: IN_PROCESS_P99_MS }),
      },
      { name: `kv.set alone, ${storeName(store)}`, ops: "n/a", latency: alone.summary()! },
    ];
  } finally {
    await kv.close();
  }
}

async function inProcessFanOutSection(dir: string, log: Log): Promise<Section> {
  const start = load();
  const rows: Row[] = [];
  for (const store of ["memory", "normal"] as const) {
    log(`events: fan-out to ${SUBSCRIBERS} subscribers, in process, ${storeName(store)}`);
    rows.push(await inProcessFanOut(dir, store));
  }
  return {
    title: `Events: one commit to ${SUBSCRIBERS.toLocaleString("en-US")} subscribers, in process (ops = deliveries)`,
    notes: [
      `load average ${start} → ${load()}`,
      `${SUBSCRIBERS} \`kv.subscribe\` listeners on one pattern; ${FAN_OUT_COMMITS} sets one at a time; latency per commit, from just before the set until the last listener has run.`,
    ],
    baseline: null,
    rows,
  };
}

async function inProcessFanOut(dir: string, store: Store): Promise<Row> {
  const kv = await open(dir, store);
  const latencies = new Latencies();
  let sent = 0;
  let waiting = 0;
  const stops = Array.from({ length: SUBSCRIBERS }, () =>
    kv.subscribe(USERS, () => {
      if (--waiting === 0) latencies.add(performance.now() - sent);
    }),
  );
  const set = writer((key, value) => kv.set(key, value));
  try {
    let started = 0;
    for (let i = 0; i < 2 * FAN_OUT_COMMITS; i++) {
      if (i === FAN_OUT_COMMITS) {
        latencies.reset();
        started = performance.now();
      }
      waiting = SUBSCRIBERS;
      sent = performance.now();
      await set(i);
      if (waiting !== 0) throw new Error(`${waiting} listeners missed a commit`);
    }
    const ms = performance.now() - started;
    return {
      name: `kv.subscribe, ${storeName(store)}`,
      ops: (FAN_OUT_COMMITS * SUBSCRIBERS * 1000) / ms,
      latency: latencies.summary()!,
    };
  } finally {
    for (const stop of stops) stop();
    await kv.close();
  }
}

/** Sets on SQLite with none, one and {@link SUBSCRIBERS} matching listeners, in turns. */
async function writeCostSections(dir: string, log: Log): Promise<Section[]> {
  const counts = [0, 1, SUBSCRIBERS];
  const dbs = await Promise.all(counts.map(() => open(dir, "normal")));
  let delivered = 0;
  const stops = dbs.flatMap((kv, i) =>
    Array.from({ length: counts[i]! }, () =>
      kv.subscribe(USERS, () => {
        delivered++;
      }),
    ),
  );
  const name = (count: number) =>
    `${count.toLocaleString("en-US")} subscriber${count === 1 ? "" : "s"}`;
  const sets = dbs.map((kv) => writer((key, value) => kv.set(key, value)));
  try {
    const start = load();
    log("events: sequential sets with subscribers");
    const sequential = await compare(
      counts.map((count, i) => ({
        name: name(count),
        batch: awaited(sets[i]!),
        budgetMs: BUDGET_MS,
      })),
    );
    log("events: concurrent sets with subscribers");
    const concurrent = await compare(
      counts.map((count, i) => ({
        name: name(count),
        batch: bursts(sets[i]!),
        opsPerCall: BURST,
        budgetMs: BUDGET_MS,
      })),
    );
    const notes = [
      `load average ${start} → ${load()}; ${delivered.toLocaleString("en-US")} events delivered; best of five 0.6 s slices`,
      'SQLite, durability normal; each subscriber a `kv.subscribe` listener on `["users", REST]`, which every set matches, that counts its calls.',
    ];
    return [
      {
        title: "Events: sequential SQLite set, by subscribers",
        notes,
        baseline: name(0),
        rows: sequential,
      },
      {
        title: `Events: ${BURST} concurrent SQLite sets, by subscribers (ops = sets)`,
        notes,
        baseline: name(0),
        rows: concurrent,
      },
    ];
  } finally {
    for (const stop of stops) stop();
    await Promise.all(dbs.map((kv) => kv.close()));
  }
}
