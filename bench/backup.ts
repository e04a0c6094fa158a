/**
 * Backup of a 1 GiB SQLite file: Cellar's online backup (SQLite's backup API in one step on a
 * connection of its own in a worker thread), with and without a writer committing meanwhile
 * (and that writer's pace alone), and its verified
 * restore, against raw better-sqlite3's `backup()` (100 pages a step), `VACUUM INTO` and a plain
 * file copy (which is no backup of a live file, only the disk's pace). Figures are MiB/s of the
 * source file's size.
 *
 * The file is built once (through `kv.set`, 1 MiB values) and kept in the system's temporary
 * folder for later runs: `CELLAR_BENCH_BACKUP_FILE` names another place.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { backup, openKv, restore } from "../src/index.js";
import { load, type Row, type Section } from "./harness.js";

type Log = (step: string) => void;

const SIZE = 2 ** 30;
const VALUE = 2 ** 20;
const FILE = process.env.CELLAR_BENCH_BACKUP_FILE ?? join(tmpdir(), "cellar-bench-backup-1gib.db");

export async function backupSections(log: Log): Promise<Section[]> {
  const built = await build(log);
  const bytes = statSync(FILE).size;
  const mib = bytes / 2 ** 20;
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-backup-"));
  const rows: Row[] = [];
  const notes: string[] = [];
  const timed = async (name: string, run: (target: string) => Promise<unknown> | unknown) => {
    const target = join(dir, `${rows.length}.db`);
    log(`backup: ${name}`);
    const started = performance.now();
    await run(target);
    const seconds = (performance.now() - started) / 1000;
    rows.push({ name, ops: mib / seconds });
    notes.push(`${name}: ${seconds.toFixed(1)} s`);
    rmSync(target, { force: true });
    return seconds;
  };
  try {
    const kv = await openKv(FILE, { durability: "normal", sweepInterval: 0 });
    await timed("Cellar backup(kv, file), verified", (target) => backup(kv, target));
    // The writer's pace without a backup, to compare with its pace during one.
    let alone = 0;
    const start = performance.now();
    while (performance.now() - start < 3000) await kv.set(["bench", "writer", alone++ % 100], {});
    const aloneRate = alone / ((performance.now() - start) / 1000);
    let commits = 0;
    const during = await timed("the same while a writer commits", async (target) => {
      let stop = false;
      const writer = (async () => {
        while (!stop) {
          await kv.set(["bench", "writer", commits % 100], { commits });
          commits++;
        }
      })();
      try {
        await backup(kv, target);
      } finally {
        stop = true;
        await writer;
      }
    });
    notes.push(
      `the writer committed ${(commits / during).toFixed(0)}/s during the backup (${commits} commits), ${aloneRate.toFixed(0)}/s alone just before`,
    );
    const copy = join(dir, "for-restore.db");
    await backup(kv, copy);
    await kv.close();
    await timed("Cellar restore(file, new file), checked and checksummed", (target) =>
      restore(copy, target),
    );
    rmSync(copy, { force: true });
    const raw = new Database(FILE);
    await timed("raw better-sqlite3 db.backup() (100 pages a step)", (target) =>
      raw.backup(target),
    );
    await timed("raw VACUUM INTO", (target) => raw.prepare("VACUUM INTO ?").run(target));
    raw.close();
    await timed("file copy (no consistency: the disk's pace)", (target) =>
      copyFileSync(FILE, target),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return [
    {
      title: `Backup of a ${(bytes / 2 ** 30).toFixed(2)} GiB SQLite file (MiB/s)`,
      rows,
      baseline: null,
      notes: [
        built === null
          ? `file reused from an earlier run: ${FILE}`
          : `built in ${built.toFixed(0)} s (1 MiB values through kv.set, durability normal): ${FILE}`,
        ...notes,
        `load ${load()}`,
      ],
    },
  ];
}

/** Builds the file unless an earlier run left it; the seconds it took, or null. */
async function build(log: Log): Promise<number | null> {
  if (existsSync(FILE) && statSync(FILE).size >= SIZE) return null;
  rmSync(FILE, { force: true });
  log(`backup: building a 1 GiB file at ${FILE}`);
  const started = performance.now();
  const kv = await openKv(FILE, {
    durability: "normal",
    sweepInterval: 0,
    limits: { maxValueSize: 2 * VALUE },
  });
  const value = new Uint8Array(VALUE);
  // Each value is written twice (the entry and the change log), so about half the size in values.
  for (let i = 0; statSync(FILE).size < SIZE; i++) {
    for (let j = 0; j < value.length; j += 4096) value[j] = (i + j) & 0xff;
    await kv.set(["blob", i], value);
  }
  await kv.close();
  return (performance.now() - started) / 1000;
}
