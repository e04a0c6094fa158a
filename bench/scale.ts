/**
 * Cellar as its files grow: SQLite at 10,000, 1,000,000 and 10,000,000 entries and PostgreSQL
 * at 1,000,000, each built with atomic commits of {@link BATCH} sets of `["users", i]` → the
 * workload's ~100-byte values, then measured on random keys. Opt-in (`npx tsx bench/index.ts
 * scale`): with the 10M file it takes tens of minutes and ~2.5 GB of disk, which it checks first.
 *
 * `CELLAR_SCALE_SIZES` (comma-separated entry counts) and `CELLAR_SCALE_POSTGRES` (entries, 0 to
 * skip) choose the stores.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { type Kv, openKv } from "../src/index.js";
import { commitSets } from "./deno-binary.js";
import { fileBytes, megabytes } from "./footprint.js";
import { type Batch, compare, load, type Row, type Section } from "./harness.js";
import { POSTGRES_URL } from "./postgres.js";
import { type Key, LIST_LIMIT, PREFIX, type User, user } from "./workload.js";

const sizes = (variable: string | undefined, fallback: string) =>
  (variable ?? fallback)
    .split(",")
    .map(Number)
    .filter((n) => n > 0);
const SQLITE_SIZES = sizes(process.env.CELLAR_SCALE_SIZES, "10000,1000000,10000000");
const POSTGRES_SIZES = sizes(process.env.CELLAR_SCALE_POSTGRES, "1000000");
const BATCH = 500;
/** Disk a SQLite entry may take while its file is built, with room to spare. */
const BYTES_PER_ENTRY = 400;

/** A fixed-seed generator of integers below `n` (mulberry32), the same for every store. */
function randomBelow(n: number, seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n);
  };
}

interface Measured {
  readonly label: string;
  readonly entries: number;
  readonly loadRate: number;
  readonly bytes: number;
  readonly bytesNote: string;
  readonly rows: readonly Row[];
  readonly load: string;
}

async function build(kv: Kv, entries: number, log: (step: string) => void): Promise<number> {
  const start = performance.now();
  for (let from = 0; from < entries; from += BATCH) {
    const batch: [Key, User][] = [];
    for (let i = from; i < Math.min(from + BATCH, entries); i++)
      batch.push([["users", i], user(i, 0)]);
    await commitSets(kv, batch);
    if ((from + BATCH) % 1_000_000 === 0) log(`scale: ${from + BATCH} entries loaded`);
  }
  return (entries * 1000) / (performance.now() - start);
}

/** Sequential get, set and list on random keys of a store holding `entries` keys. */
function workloads(kv: Kv, entries: number): { name: string; batch: Batch }[] {
  const getKey = randomBelow(entries, 1);
  const setKey = randomBelow(entries, 2);
  const listStart = randomBelow(entries - LIST_LIMIT, 3);
  let version = 0;
  return [
    {
      name: "get",
      batch: async (n) => {
        for (let k = 0; k < n; k++) await kv.get(["users", getKey()]);
      },
    },
    {
      name: "set",
      batch: async (n) => {
        for (let k = 0; k < n; k++) {
          const i = setKey();
          await kv.set(["users", i], user(i, ++version));
        }
      },
    },
    {
      name: "list",
      batch: async (n) => {
        for (let k = 0; k < n; k++) {
          let listed = 0;
          const start: Key = ["users", listStart()];
          for await (const _ of kv.list({ prefix: PREFIX, start }, { limit: LIST_LIMIT })) listed++;
          if (listed !== LIST_LIMIT) throw new Error(`a list read ${listed} entries`);
        }
      },
    },
  ];
}

async function measureSqlite(
  dir: string,
  entries: number,
  log: (step: string) => void,
): Promise<Measured> {
  const path = join(dir, `scale-${entries}.db`);
  const label = `SQLite, ${entries.toLocaleString("en-US")}`;
  try {
    log(`scale: building ${label}`);
    const before = load();
    let kv = await openKv(path);
    const loadRate = await build(kv, entries, log);
    await kv.close();
    const { db, wal } = fileBytes(path);
    kv = await openKv(path);
    log(`scale: measuring ${label}`);
    const rows = await compare(workloads(kv, entries));
    await kv.close();
    return {
      label,
      entries,
      loadRate,
      bytes: db + wal,
      bytesNote: `${label}: ${megabytes(db + wal)}`,
      rows,
      load: `${before} → ${load()}`,
    };
  } finally {
    rmSync(path, { force: true });
    rmSync(`${path}-wal`, { force: true });
    rmSync(`${path}-shm`, { force: true });
  }
}

async function measurePostgres(entries: number, log: (step: string) => void): Promise<Measured> {
  const schema = `cellar_bench_scale_${randomBytes(4).toString("hex")}`;
  const label = `PostgreSQL, ${entries.toLocaleString("en-US")}`;
  const kv = await openKv(`${POSTGRES_URL}?schema=${schema}`, { sweepInterval: 0 });
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    log(`scale: building ${label}`);
    const before = load();
    const loadRate = await build(kv, entries, log);
    log(`scale: measuring ${label}`);
    const rows = await compare(workloads(kv, entries));
    // Tables with their indexes and TOAST, after the writes above.
    const { rows: size } = await client.query(
      `SELECT sum(pg_total_relation_size(c.oid))::bigint AS bytes FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`,
      [schema],
    );
    const bytes = Number(size[0].bytes);
    return {
      label,
      entries,
      loadRate,
      bytes,
      bytesNote: `${label}: ${megabytes(bytes)} (tables, indexes and TOAST, after the measured sets)`,
      rows,
      load: `${before} → ${load()}`,
    };
  } finally {
    await kv.close();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  }
}

export async function scaleSections(log: (step: string) => void): Promise<Section[]> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-scale-"));
  const measured: Measured[] = [];
  const skipped: string[] = [];
  try {
    for (const entries of SQLITE_SIZES) {
      const { bavail, bsize } = statfsSync(dir);
      if (entries * BYTES_PER_ENTRY > bavail * bsize) {
        skipped.push(`SQLite at ${entries} entries skipped: ${megabytes(bavail * bsize)} free`);
        continue;
      }
      measured.push(await measureSqlite(dir, entries, log));
    }
    for (const entries of POSTGRES_SIZES) measured.push(await measurePostgres(entries, log));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const baseline = measured[0]?.label ?? null;
  const loads = measured.map((m) => `${m.label}: load ${m.load}`).join("; ");
  const metric = (title: string, name: string): Section => ({
    title,
    baseline,
    notes: [loads, ...skipped],
    rows: measured.map((m) => ({
      name: m.label,
      ops: m.rows.find((row) => row.name === name)!.ops,
    })),
  });
  return [
    metric("Scale: sequential get, random keys", "get"),
    metric("Scale: sequential set, random existing keys, durability full", "set"),
    metric(`Scale: ${LIST_LIMIT}-entry list from a random key`, "list"),
    {
      title: `Scale: bulk load, atomic commits of ${BATCH} sets, each key once`,
      unit: "rows/s",
      baseline,
      rows: measured.map((m) => ({ name: m.label, ops: m.loadRate })),
    },
    {
      title: "Scale: bytes per entry",
      unit: "bytes/entry",
      baseline,
      notes: measured.map((m) => m.bytesNote),
      rows: measured.map((m) => ({ name: m.label, ops: m.bytes / m.entries })),
    },
  ];
}
