/**
 * What the observe layers cost a write: sequential SQLite sets bare and under
 * `withMetrics(withLogging(kv))`, logging at `info` (no line per operation) and at `debug` (a
 * line per operation), to /dev/null.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { type Kv, openKv } from "../src/index.js";
import { withLogging, withMetrics } from "../src/observe/index.js";
import { compare, load, type Section } from "./harness.js";
import { awaited, populate, writer } from "./workload.js";

const BARE = "bare Kv";

export async function observeSections(log: (step: string) => void): Promise<Section[]> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-observe-"));
  const destination = pino.destination({ dest: "/dev/null", sync: false });
  const dbs: Kv[] = [];
  const open = async (layer: (kv: Kv) => Kv) => {
    const kv = layer(await openKv(join(dir, `observe-${dbs.length}.db`), { durability: "normal" }));
    dbs.push(kv);
    await populate((key, value) => kv.set(key, value));
    return writer((key, value) => kv.set(key, value));
  };
  const layered = (level: "info" | "debug") => (kv: Kv) =>
    withMetrics(withLogging(kv, { level, destination }));
  try {
    const contenders = [
      { name: BARE, set: await open((kv) => kv) },
      { name: "withMetrics(withLogging(kv)), info", set: await open(layered("info")) },
      { name: "withMetrics(withLogging(kv)), debug", set: await open(layered("debug")) },
    ];
    const start = load();
    log(`observe: sequential sets with metrics and logging, load ${start}`);
    const rows = await compare(
      contenders.map(({ name, set }) => ({ name, batch: awaited(set), budgetMs: 3000 })),
    );
    return [
      {
        title: "Observe: sequential SQLite set under metrics and logging",
        notes: [
          `load average ${start} → ${load()}; best of five 0.6 s slices`,
          "SQLite, durability normal; pino writes to /dev/null (asynchronously). At `info` an operation logs nothing; at `debug` it logs one line.",
        ],
        baseline: BARE,
        rows,
      },
    ];
  } finally {
    await Promise.all(dbs.map((kv) => kv.close()));
    destination.end();
    rmSync(dir, { recursive: true, force: true });
  }
}
