/**
 * The client store (`createClientKv`) against a Cellar server on a SQLite file (durability full,
 * the default), the server in a child process:
 *
 * - A local write: from `set` to the value in the view (`peek`, a `subscribe` listener), to the
 *   write saved in the outbox (`await set`), to the server's answer (`confirmed`).
 * - Writes reaching 99 other clients, at a steady rate and in a burst (sync-fan-out.ts).
 * - Catch-up: a client store that was disconnected while the server committed 10,000 changes
 *   under its prefix, from `connect()` to `status.lastSynced` at the server's versionstamp; and a
 *   fresh client's full snapshot of 10,000 entries.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { type ClientKv, createClientKv, REST, type WebSocketLike } from "../src/index.js";
import { Latencies, load, type Row, type Section } from "./harness.js";
import { ask, type Commit, startSyncServer } from "./sync-child.js";
import { fanOutSections } from "./sync-fan-out.js";
import { ENTRIES, VALUES } from "./workload.js";

/** Sequential local writes measured per storage, after as many again of warm-up. */
const SAMPLES = 500;
/** The p99 the project aims for, from `set` to the value in the view. */
const VISIBLE_P99_MS = 1;
/** Sets issued together in the burst figure. */
const BURST = 1000;
/** Changes a disconnected client misses, and entries a fresh client's snapshot holds. */
const CHANGES = 10_000;
const CATCH_UP_ROUNDS = 3;
const SNAPSHOTS = 3;

type Log = (step: string) => void;
type Storage = "memory" | "SQLite file";

const STORAGES: readonly Storage[] = ["memory", "SQLite file"];

export async function syncSections(log: Log): Promise<Section[]> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-sync-"));
  try {
    return [
      await localSection(dir, log),
      ...(await fanOutSections(join(dir, "fan-out.db"), log)),
      await catchUpSection(dir, log),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let stores = 0;

/** A client store of `storage` (a fresh file for each SQLite one). */
function clientStore(
  url: string,
  storage: Storage,
  dir: string,
  prefix: string,
  options: { WebSocket?: WebSocketLike } = {},
): Promise<ClientKv> {
  return createClientKv({
    url,
    prefixes: [[prefix]],
    storage: storage === "memory" ? ":memory:" : join(dir, `client-${stores++}.db`),
    ...options,
  });
}

async function localSection(dir: string, log: Log): Promise<Section> {
  const server = await startSyncServer(join(dir, "local.db"));
  const start = load();
  const rows: Row[] = [];
  try {
    for (const storage of STORAGES) {
      log(`sync: local writes, ${storage} storage`);
      const kv = await clientStore(server.ready.url, storage, dir, "local");
      await kv.whenSynced();
      try {
        rows.push(...(await sequentialWrites(kv, storage)));
        rows.push(...(await burst(kv, storage)));
      } finally {
        await kv.close();
      }
    }
  } finally {
    await server.stop();
  }
  return {
    title: "Sync: a client store's local write (ops = 1 ÷ mean latency; bursts: sets per second)",
    notes: [
      `load average ${start} → ${load()}`,
      `${SAMPLES} sets one at a time, each awaited until \`confirmed\` before the next, after as many again of warm-up; keys \`["local", i]\`, ~100-byte JSON values. Visible: from just before \`kv.set\` to the \`subscribe\` listener's call with \`cause: "local"\` (synchronous, inside \`set\`), or to \`peek\` returning the value right after \`set\` returns. Saved: until \`await kv.set\` resolves (the outbox write is stored: SQLite storage with \`synchronous = FULL\`). Confirmed: until \`confirmed\` resolves with the server's versionstamp, one round trip over loopback to the server (its own process, SQLite, durability full).`,
      `Burst: ${BURST} sets issued at once, once; latency from the first call until each set is saved (\`await set\`), or \`confirmed\`.`,
    ],
    baseline: null,
    rows,
  };
}

/** Latencies, and their sum for the row's ops (1 ÷ mean latency). */
class Timings {
  readonly latencies = new Latencies();
  total = 0;

  add(ms: number): void {
    this.latencies.add(ms);
    this.total += ms;
  }

  reset(): void {
    this.latencies.reset();
    this.total = 0;
  }
}

const STEPS = {
  listener: "`set` → `subscribe` listener (`local`)",
  peek: "`set` → `peek` shows the value",
  saved: "`await set` (saved in the outbox)",
  confirmed: "`set` → `confirmed` (server round trip)",
} as const;

async function sequentialWrites(kv: ClientKv, storage: Storage): Promise<Row[]> {
  const steps = Object.keys(STEPS) as (keyof typeof STEPS)[];
  const timings = Object.fromEntries(steps.map((step) => [step, new Timings()])) as Record<
    keyof typeof STEPS,
    Timings
  >;
  let heard = 0;
  const stop = kv.subscribe(["local", REST], (event) => {
    if (event.cause === "local") heard = performance.now();
  });
  try {
    for (let i = 0; i < 2 * SAMPLES; i++) {
      if (i === SAMPLES) for (const step of steps) timings[step].reset();
      const key = ["local", i % SAMPLES];
      const value = { ...VALUES[i % ENTRIES]!, i };
      heard = 0;
      const started = performance.now();
      const writing = kv.set(key, value);
      const shown = kv.peek(key).value === value;
      const peeked = performance.now();
      if (!shown || heard === 0) throw new Error(`write ${i} was not visible at once`);
      const write = await writing;
      const saved = performance.now();
      const outcome = await write.confirmed;
      const confirmed = performance.now();
      if (!outcome.ok) throw new Error(`write ${i}: ${outcome.error.message}`);
      timings.listener.add(heard - started);
      timings.peek.add(peeked - started);
      timings.saved.add(saved - started);
      timings.confirmed.add(confirmed - started);
    }
  } finally {
    stop();
  }
  return steps.map((step) => ({
    name: `${STEPS[step]}, ${storage} storage`,
    ops: (SAMPLES * 1000) / timings[step].total,
    latency: timings[step].latencies.summary()!,
    ...((step === "listener" || step === "peek") && { maxP99: VISIBLE_P99_MS }),
  }));
}

/** {@link BURST} sets issued together: until every one is saved, and until every one is confirmed. */
async function burst(kv: ClientKv, storage: Storage): Promise<Row[]> {
  const savedAt = new Latencies();
  const confirmedAt = new Latencies();
  const started = performance.now();
  const writes = await Promise.all(
    Array.from({ length: BURST }, async (_, i) => {
      const write = await kv.set(["local", "burst", i], VALUES[i]!);
      savedAt.add(performance.now() - started);
      return write;
    }),
  );
  const saved = performance.now() - started;
  await Promise.all(
    writes.map(async (write) => {
      const outcome = await write.confirmed;
      if (!outcome.ok) throw new Error(`burst write: ${outcome.error.message}`);
      confirmedAt.add(performance.now() - started);
    }),
  );
  const confirmed = performance.now() - started;
  return [
    {
      name: `${BURST} sets at once → all saved, ${storage} storage`,
      ops: (BURST * 1000) / saved,
      latency: savedAt.summary()!,
    },
    {
      name: `${BURST} sets at once → all \`confirmed\`, ${storage} storage`,
      ops: (BURST * 1000) / confirmed,
      latency: confirmedAt.summary()!,
    },
  ];
}

/** What a client store's socket received. */
interface Traffic {
  messages: number;
  bytes: number;
  /** The server sent a snapshot (rather than the changes since the client's resume point). */
  snapshot: boolean;
}

/** `ws`'s WebSocket, counting what each socket receives into `meter.traffic`. */
function countingWebSocket(meter: { traffic: Traffic }): WebSocketLike {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      this.on("message", (data: Buffer) => {
        const { traffic } = meter;
        traffic.messages++;
        traffic.bytes += data.length;
        if (data.length < 200 && /^\{"type":"welcome".*"snapshot":true/.test(String(data)))
          traffic.snapshot = true;
      });
    }
  } as unknown as WebSocketLike;
}

const noTraffic = (): Traffic => ({ messages: 0, bytes: 0, snapshot: false });

/** Resolves once `kv`'s status satisfies `done`. */
function until(kv: ClientKv, done: (status: ClientKv["status"]) => boolean): Promise<void> {
  if (done(kv.status)) return Promise.resolve();
  return new Promise((resolve) => {
    const stop = kv.onStatus((status) => {
      if (!done(status)) return;
      stop();
      resolve();
    });
  });
}

/** Checks that the view holds every `["catch", i]` at `version`. */
function assertHolds(kv: ClientKv, version: number): void {
  for (let i = 0; i < CHANGES; i++) {
    const entry = kv.peek(["catch", i]);
    if ((entry.value as { v?: number } | null)?.v !== version)
      throw new Error(`["catch", ${i}] is not at version ${version} after the sync`);
  }
}

async function catchUpSection(dir: string, log: Log): Promise<Section> {
  const server = await startSyncServer(join(dir, "catch-up.db"));
  const { url } = server.ready;
  let version = 0;
  const commit = async () => {
    const message: Commit = { type: "commit", prefix: "catch", count: CHANGES, version: ++version };
    return { ...(await ask<{ head: string }>(server, message)), version };
  };
  const start = load();
  const rows: Row[] = [];
  const notes: string[] = [];
  try {
    log(`sync: the server commits ${CHANGES} entries`);
    await commit();
    for (const storage of STORAGES) {
      log(`sync: a fresh client's snapshot of ${CHANGES} entries, ${storage} storage`);
      const { row, traffic } = await snapshots(url, storage, dir, version);
      rows.push(row);
      notes.push(trafficNote(`snapshot, ${storage} storage`, traffic));
    }
    for (const storage of STORAGES) {
      log(`sync: catch-up of ${CHANGES} missed changes, ${storage} storage`);
      const { row, traffic } = await catchUp(url, storage, dir, commit);
      rows.push(row);
      notes.push(trafficNote(`catch-up, ${storage} storage`, traffic));
    }
  } finally {
    await server.stop();
  }
  return {
    title: `Sync: a client store catching up (ops = entries or changes per second; p50 and p99: median and slowest run, ms)`,
    notes: [
      `load average ${start} → ${load()}`,
      `The server (its own process, SQLite, durability full) holds ${CHANGES.toLocaleString("en-US")} entries \`["catch", i]\` (~100-byte JSON). Snapshot: from \`createClientKv\` to \`whenSynced()\` for a new client store replicating \`["catch"]\` (${SNAPSHOTS} runs after one of warm-up). Catch-up: a synced client store \`disconnect()\`s, the server sets every entry again (${CHANGES.toLocaleString("en-US")} commits, 1,000 at a time), the store \`connect()\`s; timed until \`status.lastSynced\` reaches the server's \`currentVersionstamp()\` after those commits (${CATCH_UP_ROUNDS} runs after one of warm-up; then \`whenSynced()\`, and every entry checked).`,
      ...notes,
    ],
    baseline: null,
    rows,
  };
}

function trafficNote(what: string, traffic: Traffic): string {
  const mb = (traffic.bytes / 1e6).toFixed(1);
  const how = traffic.snapshot ? "a snapshot" : "the changes since its resume point";
  return `${what}: the server sent ${how}, ${traffic.messages.toLocaleString("en-US")} messages, ${mb} MB per run.`;
}

async function snapshots(url: string, storage: Storage, dir: string, version: number) {
  const latencies = new Latencies();
  let best = Number.POSITIVE_INFINITY;
  const meter = { traffic: noTraffic() };
  for (let run = 0; run <= SNAPSHOTS; run++) {
    meter.traffic = noTraffic();
    const started = performance.now();
    const kv = await clientStore(url, storage, dir, "catch", {
      WebSocket: countingWebSocket(meter),
    });
    await kv.whenSynced();
    const ms = performance.now() - started;
    assertHolds(kv, version);
    await kv.close();
    if (run === 0) continue;
    latencies.add(ms);
    best = Math.min(best, ms);
  }
  const row: Row = {
    name: `fresh client's snapshot of ${CHANGES.toLocaleString("en-US")} entries, ${storage} storage`,
    ops: (CHANGES * 1000) / best,
    latency: latencies.summary()!,
  };
  return { row, traffic: meter.traffic };
}

async function catchUp(
  url: string,
  storage: Storage,
  dir: string,
  commit: () => Promise<{ head: string; version: number }>,
) {
  const meter = { traffic: noTraffic() };
  const kv = await clientStore(url, storage, dir, "catch", {
    WebSocket: countingWebSocket(meter),
  });
  const latencies = new Latencies();
  let best = Number.POSITIVE_INFINITY;
  try {
    await kv.whenSynced();
    for (let run = 0; run <= CATCH_UP_ROUNDS; run++) {
      kv.disconnect();
      const { head, version } = await commit();
      meter.traffic = noTraffic();
      const started = performance.now();
      const reached = until(kv, (s) => s.lastSynced !== null && s.lastSynced >= head);
      kv.connect();
      await reached;
      const ms = performance.now() - started;
      await kv.whenSynced();
      assertHolds(kv, version);
      if (run === 0) continue;
      latencies.add(ms);
      best = Math.min(best, ms);
    }
  } finally {
    await kv.close();
  }
  const row: Row = {
    name: `catch-up of ${CHANGES.toLocaleString("en-US")} missed changes, ${storage} storage`,
    ops: (CHANGES * 1000) / best,
    latency: latencies.summary()!,
  };
  return { row, traffic: meter.traffic };
}
