/**
 * Mirrors to PostgreSQL: how long a commit takes to become a row others can read under a steady
 * write load, and how fast a mirror catches up on a backlog; against a raw node-postgres loop
 * that upserts each change as it comes, one statement per row, as an application would by hand.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { type MirrorWrite, mirror, openKv } from "../src/index.js";
import { Latencies, load, type Row, type Section } from "./harness.js";
import { ENTRIES, KEYS, type Key, type User, VALUES, writer } from "./workload.js";

const URL = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
/** Writes per second offered, each for {@link LOAD_SECONDS} after {@link WARM_SECONDS}. */
export const RATES = [1000, 5000];
const LOAD_SECONDS = 4;
const WARM_SECONDS = 1;
/** Changes waiting when a mirror (or the peer) starts catching up. */
export const BACKLOG = 10_000;
const ROUNDS = 3;

type Log = (step: string) => void;

export async function mirrorSections(log: Log): Promise<Section[]> {
  const schema = `cellar_bench_mirror_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: URL });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA "${schema}"`);
    return [await lagSection(schema, log), await catchUpSection(schema, log)];
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
}

/**
 * Calls `write(i)` `rate` times a second for `seconds`, without waiting for one write before the
 * next (an open load, as requests arriving from outside), and resolves when every write has.
 */
async function paced(
  rate: number,
  seconds: number,
  write: (i: number) => Promise<void>,
): Promise<void> {
  const total = rate * seconds;
  const started = performance.now();
  const writes: Promise<void>[] = [];
  let issued = 0;
  while (issued < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000));
    for (; issued < due; issued++) writes.push(write(issued % ENTRIES));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(writes);
}

/** The rows `table` holds. */
async function count(db: pg.Client, table: string): Promise<number> {
  return (await db.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;
}

async function lagSection(schema: string, log: Log): Promise<Section> {
  const start = load();
  const rows: Row[] = [];
  for (const rate of RATES) {
    log(`mirror: lag at ${rate} writes/s`);
    rows.push(await mirrorLag(schema, rate));
    log(`mirror: raw pg upsert loop at ${rate} writes/s`);
    rows.push(await rawLag(schema, rate));
  }
  return {
    title:
      "Mirror: from commit to row visible in PostgreSQL, steady write load (ops = writes/s done)",
    notes: [
      `load average ${start} → ${load()}`,
      `A memory database; \`kv.set\` of ~100-byte values over ${ENTRIES.toLocaleString("en-US")} keys at a steady rate (${WARM_SECONDS} s warm-up, then ${LOAD_SECONDS} s measured), not waiting for one set before the next. Mirror: from the set's resolve to the end of the PostgreSQL transaction holding its row (\`onWrite\`), default layout and batch size. Raw pg upsert loop: each change queued as its set resolves and upserted by one connection, one prepared statement per row, until it returns; it falls behind when the rate exceeds what one connection's round trips allow.`,
    ],
    baseline: null,
    rows,
  };
}

/** Lag of a mirror of `["users"]` while `rate` sets a second run for the measured window. */
async function mirrorLag(schema: string, rate: number): Promise<Row> {
  const kv = await openKv();
  const latencies = new Latencies();
  const committed: { versionstamp: string; at: number }[] = [];
  let head = 0;
  let measuring = false;
  const onWrite = (write: MirrorWrite) => {
    const now = performance.now();
    while (head < committed.length && committed[head]!.versionstamp <= write.checkpoint) {
      if (measuring) latencies.add(now - committed[head]!.at);
      head++;
    }
  };
  const table = `lag_${rate}`;
  const m = mirror(kv, { prefix: ["users"], to: `${URL}?schema=${schema}`, table, onWrite });
  try {
    await m.flush();
    const set = writer(async (key: Key, value: User) => {
      const { versionstamp } = await kv.set(key, value);
      committed.push({ versionstamp, at: performance.now() });
    });
    await paced(rate, WARM_SECONDS, set);
    await m.flush();
    measuring = true;
    const started = performance.now();
    await paced(rate, LOAD_SECONDS, set);
    const seconds = (performance.now() - started) / 1000;
    await m.flush();
    return {
      name: `mirror, ${rate.toLocaleString("en-US")} writes/s`,
      ops: (rate * LOAD_SECONDS) / seconds,
      latency: latencies.summary()!,
    };
  } finally {
    await m.close();
    await kv.close();
  }
}

/** A node-postgres client upserting `(key, value)` rows into `table`, one statement per row. */
async function rawTable(schema: string, table: string) {
  const db = new pg.Client({ connectionString: URL });
  await db.connect();
  const t = `"${schema}"."${table}"`;
  await db.query(`CREATE TABLE ${t} (key text PRIMARY KEY, value jsonb NOT NULL)`);
  const upsert = (key: Key, value: User) =>
    db.query({
      name: "raw_mirror_upsert",
      text: `INSERT INTO ${t} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
      values: [`users/~n:${key[1]}`, JSON.stringify(value)],
    });
  return { db, t, upsert };
}

/** Lag of the raw loop: each change queued as its set resolves, upserted one at a time. */
async function rawLag(schema: string, rate: number): Promise<Row> {
  const kv = await openKv();
  const { db, upsert } = await rawTable(schema, `raw_lag_${rate}`);
  const latencies = new Latencies();
  const queue: { key: Key; value: User; at: number }[] = [];
  let measuring = false;
  let running = true;
  const signal: { wake: (() => void) | null } = { wake: null };
  const wake = () => {
    const waiting = signal.wake;
    signal.wake = null;
    waiting?.();
  };
  const loop = (async () => {
    while (running || queue.length > 0) {
      const change = queue.shift();
      if (!change) {
        await new Promise<void>((resolve) => (signal.wake = resolve));
        continue;
      }
      await upsert(change.key, change.value);
      if (measuring) latencies.add(performance.now() - change.at);
    }
  })();
  const set = writer(async (key: Key, value: User) => {
    await kv.set(key, value);
    queue.push({ key, value, at: performance.now() });
    wake();
  });
  try {
    await paced(rate, WARM_SECONDS, set);
    while (queue.length > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    measuring = true;
    const started = performance.now();
    await paced(rate, LOAD_SECONDS, set);
    const seconds = (performance.now() - started) / 1000;
    running = false;
    wake();
    await loop;
    return {
      name: `raw pg upsert loop, ${rate.toLocaleString("en-US")} writes/s`,
      ops: (rate * LOAD_SECONDS) / seconds,
      latency: latencies.summary()!,
    };
  } finally {
    running = false;
    wake();
    await db.end();
    await kv.close();
  }
}

async function catchUpSection(schema: string, log: Log): Promise<Section> {
  const start = load();
  log(`mirror: catch-up after ${BACKLOG} changes`);
  const resumed = await best(() => mirrorCatchUp(schema, "resume"));
  log(`mirror: first copy of ${BACKLOG} entries`);
  const copied = await best(() => mirrorCatchUp(schema, "copy"));
  log(`mirror: raw pg upsert loop over ${BACKLOG} changes`);
  const raw = await best(() => rawCatchUp(schema));
  return {
    title: `Mirror: catching up ${BACKLOG.toLocaleString("en-US")} changes (ops = rows/s)`,
    notes: [
      `load average ${start} → ${load()}`,
      `A memory database. Resume: ${BACKLOG.toLocaleString("en-US")} sets to distinct keys committed while the mirror was closed, then the time from \`mirror()\` to \`flush()\` resolving (connecting and setting up included), replayed from the change log in batches of 500 rows a statement. First copy: a new table filled from \`kv.list\` in one transaction. Raw pg upsert loop: the same rows upserted one statement at a time on one connection. Best of ${ROUNDS} rounds.`,
    ],
    baseline: "raw pg upsert loop",
    rows: [
      { name: "mirror, resumed from its checkpoint", ops: resumed },
      { name: "mirror, first copy of the prefix", ops: copied },
      { name: "raw pg upsert loop", ops: raw },
    ],
  };
}

async function best(round: () => Promise<number>): Promise<number> {
  let top = 0;
  for (let i = 0; i < ROUNDS; i++) top = Math.max(top, await round());
  return top;
}

let tables = 0;

/** Rows/s of a mirror catching up on {@link BACKLOG} changes: resumed, or copied whole. */
async function mirrorCatchUp(schema: string, how: "resume" | "copy"): Promise<number> {
  const kv = await openKv();
  const table = `catch_up_${tables++}`;
  const options = { prefix: ["users"], to: `${URL}?schema=${schema}`, table } as const;
  const db = new pg.Client({ connectionString: URL });
  await db.connect();
  try {
    if (how === "resume") {
      const first = mirror(kv, options);
      await first.flush();
      await first.close();
    }
    for (let i = 0; i < BACKLOG; i++) await kv.set(KEYS[i % ENTRIES]!, VALUES[i % ENTRIES]!);
    const started = performance.now();
    const m = mirror(kv, options);
    await m.flush({ timeoutMs: 120_000 });
    const seconds = (performance.now() - started) / 1000;
    await m.close();
    const rows = await count(db, `"${schema}"."${table}"`);
    if (rows !== BACKLOG) throw new Error(`the mirror holds ${rows} rows, not ${BACKLOG}`);
    return BACKLOG / seconds;
  } finally {
    await db.end();
    await kv.close();
  }
}

/** Rows/s of the raw loop upserting {@link BACKLOG} rows one statement at a time. */
async function rawCatchUp(schema: string): Promise<number> {
  const { db, t, upsert } = await rawTable(schema, `raw_catch_up_${tables++}`);
  try {
    const started = performance.now();
    for (let i = 0; i < BACKLOG; i++) await upsert(KEYS[i % ENTRIES]!, VALUES[i % ENTRIES]!);
    const seconds = (performance.now() - started) / 1000;
    if ((await count(db, t)) !== BACKLOG) throw new Error("the raw loop lost rows");
    return BACKLOG / seconds;
  } finally {
    await db.end();
  }
}
