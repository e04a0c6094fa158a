/**
 * Cellar on SQLite beside Deno KV itself: the Deno binary (`Deno.openKv`, its SQLite backend) and
 * @deno/kv, each in a child process, and raw better-sqlite3 writing Cellar's rows; all on the
 * same keys and values, taking turns. Then bulk loads into fresh files, and what the files take.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kv, openKv } from "../src/index.js";
import { cellarShaped, fileBytes, megabytes, tableBytes } from "./footprint.js";
import { type Batch, compare, interleave, load, type Row, type Section } from "./harness.js";
import { type Peer, startPeer } from "./kv-peers.js";
import {
  awaited,
  BURST,
  bulkLoad,
  bursts,
  ENTRIES,
  KEYS,
  type Key,
  LIST_LIMIT,
  PREFIX,
  populate,
  singleLoad,
  syncBursts,
  synchronous,
  type User,
  writer,
} from "./workload.js";

/** The bulk load: this many keys, each written twice, in atomic commits of {@link BULK_BATCH}. */
export const BULK_KEYS = 100_000;
export const BULK_BATCH = 500;
const BULK_RUNS = 3;

const CELLAR = "Cellar (SQLite, full)";
const RAW = "better-sqlite3, Cellar's table, raw";

/** Commits `entries` as one atomic operation of sets. */
export async function commitSets(kv: Kv, entries: readonly (readonly [Key, User])[]) {
  const atomic = kv.atomic();
  for (const [key, value] of entries) atomic.set(key, value);
  if (!(await atomic.commit()).ok) throw new Error("an atomic commit of sets failed");
}

function expectListed(n: number): void {
  if (n !== LIST_LIMIT) throw new Error(`a list read ${n} entries, expected ${LIST_LIMIT}`);
}

async function speedSections(
  dir: string,
  peers: readonly Peer[],
  log: (step: string) => void,
): Promise<Section[]> {
  // The default durability, "full": synchronous FULL in WAL mode.
  const kv = await openKv(join(dir, "cellar.db"));
  const raw = cellarShaped(join(dir, "raw.db"));
  try {
    log(`deno: loading ${ENTRIES} entries into every store`);
    await populate((key, value) => kv.set(key, value));
    raw.populate();
    for (const [i, peer] of peers.entries())
      await peer.request({ op: "open", path: join(dir, `peer-${i}.db`) }, 300_000);
    const cellarList = async () => {
      let n = 0;
      for await (const _ of kv.list({ prefix: PREFIX }, { limit: LIST_LIMIT })) n++;
      expectListed(n);
    };
    const section = async (
      title: string,
      op: "get" | "burst" | "list",
      cellar: Batch,
      floor: Batch,
      opsPerCall = 1,
    ): Promise<Section> => {
      log(`deno: ${op}`);
      const before = load();
      const rows = await compare([
        { name: CELLAR, batch: cellar, opsPerCall },
        ...peers.map((peer) => ({ name: peer.name, batch: peer.batch(op), opsPerCall })),
        { name: RAW, batch: floor, opsPerCall },
      ]);
      const peerOps = (row: Row, i: number): Row => {
        const peer = peers[i - 1];
        return peer ? { ...row, ops: peer.ops(row.ops as number) } : row;
      };
      return { title, notes: [`load ${before} → ${load()}`], rows: rows.map(peerOps) };
    };
    return [
      await section(
        `Beside Deno KV: sequential point get (${ENTRIES.toLocaleString("en-US")} entries)`,
        "get",
        awaited((i) => kv.get(KEYS[i]!)),
        synchronous(raw.get),
      ),
      await section(
        `Beside Deno KV: ${LIST_LIMIT}-entry prefix list (ops = lists)`,
        "list",
        awaited(cellarList),
        synchronous(() => expectListed(raw.list().length)),
      ),
      await section(
        `Beside Deno KV: ${BURST} concurrent sets, durable (ops = sets)`,
        "burst",
        bursts(writer((key, value) => kv.set(key, value))),
        syncBursts(raw.setAll),
        BURST,
      ),
    ];
  } finally {
    await kv.close();
    raw.close();
  }
}

interface Loaded {
  readonly ms: number;
  readonly path: string;
}

/** A fresh file's path for each run of a load. */
function paths(dir: string, name: string): () => string {
  let run = 0;
  return () => join(dir, `${name}-${run++}.db`);
}

/** Rows of bytes per entry of a closed SQLite file, one per table or index. */
function breakdown(label: string, path: string, entries: number): Row[] {
  return tableBytes(path).map(({ name, bytes }) => ({
    name: `${label}: ${name}`,
    ops: bytes / entries,
  }));
}

function footprintSections(what: string, cellar: Loaded, deno: Loaded, entries: number): Section[] {
  const sizes = [cellar, deno].map(({ path }) => fileBytes(path));
  const total = ({ db, wal }: { db: number; wal: number }) => db + wal;
  const [c, d] = sizes as [{ db: number; wal: number }, { db: number; wal: number }];
  return [
    {
      title: `Disk footprint after ${what} (db + wal after close, ${entries.toLocaleString("en-US")} entries)`,
      unit: "bytes/entry",
      notes: [
        `Cellar: ${megabytes(total(c))} (db ${megabytes(c.db)}, wal ${megabytes(c.wal)}); Deno binary: ${megabytes(total(d))} (db ${megabytes(d.db)}, wal ${megabytes(d.wal)}). Ratio: Cellar ÷ Deno.`,
      ],
      rows: [
        { name: CELLAR, ops: total(c) / entries },
        { name: "Deno binary, Deno.openKv", ops: total(d) / entries },
      ],
    },
    {
      title: `Disk footprint after ${what}, by table and index (dbstat)`,
      unit: "bytes/entry",
      baseline: null,
      rows: [
        ...breakdown("Cellar", cellar.path, entries),
        ...breakdown("Deno", deno.path, entries),
      ],
    },
  ];
}

/**
 * Bulk loads into fresh files, taking turns, best of {@link BULK_RUNS}; then the footprint of
 * the last run's files, and of files loaded by single-key commits.
 */
async function bulkSections(
  dir: string,
  deno: Peer,
  log: (step: string) => void,
): Promise<Section[]> {
  const rows = BULK_KEYS * 2;
  const cellarPath = paths(dir, "bulk-cellar");
  const denoPath = paths(dir, "bulk-deno");
  const rawPath = paths(dir, "bulk-raw");
  const timed = async (path: string, run: () => Promise<void>): Promise<Loaded> => {
    const start = performance.now();
    await run();
    return { ms: performance.now() - start, path };
  };
  const before = load();
  log(`deno: bulk load, ${rows} sets in commits of ${BULK_BATCH}, ${BULK_RUNS} runs each`);
  const runs = await interleave<Loaded>(
    [
      async () => {
        const path = cellarPath();
        return timed(path, async () => {
          const kv = await openKv(path);
          await bulkLoad((entries) => commitSets(kv, entries), BULK_KEYS, BULK_BATCH);
          await kv.close();
        });
      },
      async () => {
        const path = denoPath();
        const { ms } = await deno.request(
          { op: "bulk", path, keys: BULK_KEYS, batch: BULK_BATCH },
          600_000,
        );
        return { ms: ms!, path };
      },
      async () => {
        const path = rawPath();
        return timed(path, async () => {
          const raw = cellarShaped(path);
          await bulkLoad(async (entries) => raw.commit(entries), BULK_KEYS, BULK_BATCH);
          raw.close();
        });
      },
    ],
    BULK_RUNS,
  );
  const after = load();
  const rate = (loaded: Loaded) => (rows * 1000) / loaded.ms;
  const names = [CELLAR, deno.name, "better-sqlite3, Cellar's table and pragmas, raw (floor)"];
  const bulk: Section = {
    title: `Bulk load: ${rows.toLocaleString("en-US")} sets in atomic commits of ${BULK_BATCH} (${BULK_KEYS.toLocaleString("en-US")} keys written twice), fresh file`,
    unit: "rows/s",
    notes: [
      `Best of ${BULK_RUNS} runs, taken in turns; every run (rows/s): ${runs
        .map(
          (r, i) =>
            `${names[i]} ${r.map((x) => Math.round(rate(x)).toLocaleString("en-US")).join(", ")}`,
        )
        .join("; ")}. Load ${before} → ${after}.`,
    ],
    rows: runs.map((r, i) => ({
      name: names[i]!,
      ops: Math.max(...r.map(rate)),
    })),
  };
  const last = (r: Loaded[] | undefined) => r![r!.length - 1]!;
  const afterBulk = footprintSections("the bulk load", last(runs[0]), last(runs[1]), BULK_KEYS);

  log(`deno: ${rows} single-key commits, ${BURST} at a time`);
  const singles = await interleave<Loaded>(
    [
      async () => {
        const path = join(dir, "singles-cellar.db");
        return timed(path, async () => {
          const kv = await openKv(path);
          await singleLoad((key, value) => kv.set(key, value), BULK_KEYS);
          await kv.close();
        });
      },
      async () => {
        const path = join(dir, "singles-deno.db");
        const { ms } = await deno.request({ op: "singles", path, keys: BULK_KEYS }, 600_000);
        return { ms: ms!, path };
      },
    ],
    1,
  );
  const afterSingles = footprintSections(
    `${rows.toLocaleString("en-US")} single-key commits (${BURST} at a time)`,
    singles[0]![0]!,
    singles[1]![0]!,
    BULK_KEYS,
  );
  afterSingles[0] = {
    ...afterSingles[0]!,
    notes: [
      ...(afterSingles[0]!.notes ?? []),
      `Load time, one run: Cellar ${Math.round(rate(singles[0]![0]!)).toLocaleString("en-US")} sets/s, Deno binary ${Math.round(rate(singles[1]![0]!)).toLocaleString("en-US")} sets/s.`,
    ],
  };
  return [bulk, ...afterBulk, ...afterSingles];
}

/** The `deno` group: every section above. */
export async function denoSections(log: (step: string) => void): Promise<Section[]> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-deno-binary-"));
  const deno = startPeer("deno", log);
  const node = startPeer("@deno/kv", log);
  try {
    const speed = await speedSections(dir, [deno, node], log);
    await node.close();
    return [...speed, ...(await bulkSections(dir, deno, log))];
  } finally {
    await deno.close();
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
