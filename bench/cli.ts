/**
 * `cellar export` and `cellar import` of 1,000,000 entries on SQLite, each timed as the whole
 * child process a user runs (startup included), against raw better-sqlite3 doing the same work
 * on one table: every row read and written out as a JSON line, and the lines parsed and inserted
 * in transactions of 500.
 *
 * The source file is built once (through `kv.atomic()`, 500 entries a commit) and kept in the
 * system's temporary folder for later runs: `CELLAR_BENCH_CLI_FILE` names another place.
 */
import { execFileSync } from "node:child_process";
import {
  createReadStream,
  existsSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import Database from "better-sqlite3";
import { KvU64, openKv } from "../src/index.js";
import { load, type Section } from "./harness.js";

type Log = (step: string) => void;

const ENTRIES = 1_000_000;
const FILE = process.env.CELLAR_BENCH_CLI_FILE ?? join(tmpdir(), "cellar-bench-cli-1m.db");
const CLI = new URL("../src/cli/index.ts", import.meta.url).pathname;

const user = (i: number) => ({
  id: i,
  name: `user ${i}`,
  email: `user${i}@example.com`,
  tags: ["a", "b"],
  score: i / 7,
});

/** Mostly ~100-byte JSON objects; one in five a Map (with a Date and a bigint) or a KvU64. */
function value(i: number): unknown {
  if (i % 10 === 3)
    return new Map<string, unknown>([
      ["at", new Date(i)],
      ["n", BigInt(i)],
    ]);
  if (i % 10 === 7) return new KvU64(BigInt(i));
  return user(i);
}

async function build(log: Log): Promise<void> {
  if (existsSync(FILE)) return;
  log(`cli: building ${FILE} (${ENTRIES.toLocaleString("en-US")} entries)`);
  const kv = await openKv(FILE, { durability: "normal", sweepInterval: 0 });
  for (let i = 0; i < ENTRIES; i += 500) {
    const op = kv.atomic();
    for (let j = i; j < i + 500; j++) op.set(["users", j], value(j));
    await op.commit();
  }
  await kv.close();
}

const seconds = (run: () => unknown) => {
  const started = performance.now();
  run();
  return (performance.now() - started) / 1000;
};

const cellar = (...args: string[]) =>
  execFileSync(process.execPath, ["--import", "tsx", CLI, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });

/** Raw better-sqlite3: every row of a key/value table out as a JSON line, then back into a copy. */
async function raw(dir: string): Promise<{ exported: number; imported: number }> {
  const source = new Database(join(dir, "raw.db"));
  source.pragma("journal_mode = WAL");
  source.exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID");
  const insert = source.prepare("INSERT INTO kv VALUES (?, ?)");
  source.transaction(() => {
    for (let i = 0; i < ENTRIES; i++)
      insert.run(JSON.stringify(["users", i]), JSON.stringify(user(i)));
  })();
  const file = join(dir, "raw.ndjson");
  const exported = seconds(() => {
    const lines: string[] = [];
    for (const row of source.prepare("SELECT k, v FROM kv ORDER BY k").iterate() as Iterable<{
      k: string;
      v: string;
    }>) {
      lines.push(JSON.stringify({ key: JSON.parse(row.k), value: JSON.parse(row.v) }));
    }
    writeFileSync(file, `${lines.join("\n")}\n`);
  });
  source.close();
  const copy = new Database(join(dir, "raw-copy.db"));
  copy.pragma("journal_mode = WAL");
  copy.exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID");
  const put = copy.prepare("INSERT OR REPLACE INTO kv VALUES (?, ?)");
  const commit = copy.transaction((batch: [string, string][]) => {
    for (const [k, v] of batch) put.run(k, v);
  });
  const started = performance.now();
  let batch: [string, string][] = [];
  for await (const line of createInterface({ input: createReadStream(file) })) {
    const { key, value: v } = JSON.parse(line) as { key: unknown; value: unknown };
    batch.push([JSON.stringify(key), JSON.stringify(v)]);
    if (batch.length === 500) {
      commit(batch);
      batch = [];
    }
  }
  commit(batch);
  const imported = (performance.now() - started) / 1000;
  copy.close();
  return { exported, imported };
}

export async function cliSections(log: Log): Promise<Section[]> {
  await build(log);
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-cli-"));
  const file = join(dir, "export.ndjson");
  const notes: string[] = [];
  try {
    log("cli: cellar export");
    const loadBefore = load();
    const exported = seconds(() => cellar("export", "--db", FILE, "--output", file));
    const mib = statSync(file).size / 2 ** 20;
    log("cli: cellar import");
    const imported = seconds(() => cellar("import", file, "--db", join(dir, "copy.db")));
    log("cli: raw better-sqlite3");
    const peer = await raw(dir);
    notes.push(
      `${ENTRIES.toLocaleString("en-US")} entries, ${mib.toFixed(0)} MiB of NDJSON; cellar export ${exported.toFixed(1)} s, import ${imported.toFixed(1)} s (durability full, 1,000 entries a commit), each the whole process; load ${loadBefore}–${load()}`,
      "target: at least 100,000 entries/s each way",
    );
    const rate = (s: number) => ENTRIES / s;
    return [
      {
        title: "cellar export of 1,000,000 SQLite entries, entries/s",
        rows: [
          { name: "cellar export --output file", ops: rate(exported) },
          { name: "raw better-sqlite3: rows to JSON lines", ops: rate(peer.exported) },
        ],
        notes,
      },
      {
        title: "cellar import of 1,000,000 entries into SQLite, entries/s",
        rows: [
          { name: "cellar import file", ops: rate(imported) },
          {
            name: "raw better-sqlite3: JSON lines to rows, 500 a transaction",
            ops: rate(peer.imported),
          },
        ],
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
