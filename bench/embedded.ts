import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { open, type RootDatabase } from "lmdb";
import { openKv } from "../src/index.js";
import type { DenoKvOps } from "./deno-kv.js";
import { compare, type Row, type Section } from "./harness.js";
import {
  awaited,
  BURST,
  bursts,
  ENTRIES,
  KEYS,
  type Key,
  LIST_LIMIT,
  PREFIX,
  populate,
  syncBursts,
  synchronous,
  type User,
  VALUES,
  writer,
} from "./workload.js";

/**
 * Hand-written better-sqlite3 over the table any SQLite key-value store would use: the ceiling
 * for Cellar's SQLite driver. Keys are JSON bytes; values are JSON, parsed on read as Cellar does.
 */
function rawSqlite(path: string, synchronous: "FULL" | "NORMAL") {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${synchronous}`);
  db.exec("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID");
  const select = db.prepare("SELECT v FROM kv WHERE k = ?").pluck();
  const upsert = db.prepare("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)");
  const range = db.prepare("SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?").raw();
  const encode = (key: readonly unknown[]) => Buffer.from(JSON.stringify(key));
  const put = (key: Key, value: User) => upsert.run(encode(key), JSON.stringify(value));
  // `["users",` is a byte prefix of every encoded user key; 0xff sorts after any JSON byte.
  const low = Buffer.from(`${JSON.stringify(PREFIX).slice(0, -1)},`);
  const high = Buffer.concat([low, Buffer.of(0xff)]);
  db.transaction(() => {
    for (let i = 0; i < ENTRIES; i++) put(KEYS[i]!, VALUES[i]!);
  })();
  const set = writer(put);
  const setEach = (indices: readonly number[]) => {
    for (const i of indices) set(i);
  };
  return {
    get: (i: number) => {
      const v = select.get(encode(KEYS[i]!)) as string | undefined;
      return v === undefined ? null : (JSON.parse(v) as User);
    },
    set,
    setEach,
    setAll: db.transaction(setEach),
    list: () =>
      (range.all(low, high, LIST_LIMIT) as [Buffer, string][]).map(([k, v]) => ({
        key: JSON.parse(k.toString()) as Key,
        value: JSON.parse(v) as User,
      })),
    close: () => db.close(),
  };
}

async function openLmdb(path: string, overlappingSync: boolean): Promise<RootDatabase<User, Key>> {
  const db = open<User, Key>({ path, compression: false, overlappingSync });
  await populate((key, value) => db.put(key, value));
  return db;
}

function expectListed(n: number): void {
  if (n !== LIST_LIMIT) throw new Error(`a list read ${n} entries, expected ${LIST_LIMIT}`);
}

/** Cellar's SQLite driver against raw better-sqlite3, lmdb and (measured elsewhere) @deno/kv. */
export async function sqliteSections(
  denoOps: DenoKvOps,
  log: (step: string) => void,
): Promise<Section[]> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-"));
  const closers: (() => unknown)[] = [];
  try {
    const full = await openKv(join(dir, "cellar-full.db"), { durability: "full" });
    const normal = await openKv(join(dir, "cellar-normal.db"), { durability: "normal" });
    closers.push(
      () => full.close(),
      () => normal.close(),
    );
    await populate((key, value) => full.set(key, value));
    await populate((key, value) => normal.set(key, value));
    const rawFull = rawSqlite(join(dir, "raw-full.db"), "FULL");
    const rawNormal = rawSqlite(join(dir, "raw-normal.db"), "NORMAL");
    closers.push(rawFull.close, rawNormal.close);
    // With overlappingSync off a write resolves only once flushed, matching "full"; lmdb's
    // default resolves at commit and flushes later, matching "normal".
    const lmdbSynced = await openLmdb(join(dir, "lmdb-synced"), false);
    const lmdbDefault = await openLmdb(join(dir, "lmdb-default"), true);
    closers.push(
      () => lmdbSynced.close(),
      () => lmdbDefault.close(),
    );
    const setFull = writer((key, value) => full.set(key, value));
    const setNormal = writer((key, value) => normal.set(key, value));
    const putSynced = writer((key, value) => lmdbSynced.put(key, value));
    const putDefault = writer((key, value) => lmdbDefault.put(key, value));
    const deno = (ops: DenoKvOps[keyof DenoKvOps], target?: number): Row => ({
      name: "@deno/kv (SQLite)",
      ops,
      ...(target !== undefined && { target }),
    });

    log("sqlite: point get");
    const get = await compare([
      { name: "Cellar (SQLite)", batch: awaited((i) => full.get(KEYS[i]!)) },
      { name: "better-sqlite3, raw", batch: synchronous(rawFull.get), target: 0.6 },
      { name: "lmdb", batch: synchronous((i) => lmdbSynced.get(KEYS[i]!)) },
    ]);

    log("sqlite: sequential set");
    const sequentialFull = await compare([
      { name: "Cellar, full", batch: awaited(setFull) },
      { name: "better-sqlite3, FULL, txn per write", batch: synchronous(rawFull.set) },
      { name: "lmdb, flushed", batch: awaited(putSynced) },
    ]);
    const sequentialNormal = await compare([
      { name: "Cellar, normal", batch: awaited(setNormal) },
      { name: "better-sqlite3, NORMAL, txn per write", batch: synchronous(rawNormal.set) },
      { name: "lmdb, overlapping sync", batch: awaited(putDefault) },
    ]);

    log(`sqlite: ${BURST} concurrent sets`);
    const burst = { opsPerCall: BURST };
    const burstFull = await compare([
      { name: "Cellar, full", batch: bursts(setFull), ...burst },
      { name: "better-sqlite3, FULL, txn per write", batch: syncBursts(rawFull.setEach), ...burst },
      {
        name: "better-sqlite3, FULL, one txn (ceiling)",
        batch: syncBursts(rawFull.setAll),
        ...burst,
      },
      { name: "lmdb, flushed", batch: bursts(putSynced), ...burst },
    ]);
    const burstNormal = await compare([
      { name: "Cellar, normal", batch: bursts(setNormal), ...burst },
      {
        name: "better-sqlite3, NORMAL, txn per write",
        batch: syncBursts(rawNormal.setEach),
        ...burst,
      },
      {
        name: "better-sqlite3, NORMAL, one txn (ceiling)",
        batch: syncBursts(rawNormal.setAll),
        ...burst,
      },
      { name: "lmdb, overlapping sync", batch: bursts(putDefault), ...burst },
    ]);

    log(`sqlite: ${LIST_LIMIT}-entry prefix list`);
    const cellarList = async () => {
      let n = 0;
      for await (const _ of full.list({ prefix: PREFIX }, { limit: LIST_LIMIT })) n++;
      expectListed(n);
    };
    // Numbers sort before strings in lmdb's key order, so this bound closes the prefix.
    const lmdbEnd = [...PREFIX, "\uffff"];
    const lmdbList = () => {
      let n = 0;
      for (const _ of lmdbSynced.getRange({ start: PREFIX, end: lmdbEnd, limit: LIST_LIMIT })) n++;
      expectListed(n);
    };
    const list = await compare([
      { name: "Cellar (SQLite)", batch: awaited(cellarList) },
      {
        name: "better-sqlite3, raw",
        batch: synchronous(() => expectListed(rawFull.list().length)),
      },
      { name: "lmdb", batch: synchronous(lmdbList) },
    ]);

    return [
      {
        title: `SQLite: sequential point get (${ENTRIES.toLocaleString("en-US")} entries)`,
        rows: [...get, deno(denoOps.get)],
      },
      {
        title: "SQLite: sequential set, durability full",
        rows: [...sequentialFull, deno(denoOps.set)],
      },
      { title: "SQLite: sequential set, durability normal", rows: sequentialNormal },
      {
        title: `SQLite: ${BURST} concurrent sets, durability full (ops = sets)`,
        rows: [...burstFull, deno(denoOps.burst, 20)],
      },
      {
        title: `SQLite: ${BURST} concurrent sets, durability normal (ops = sets)`,
        rows: burstNormal,
      },
      {
        title: `SQLite: ${LIST_LIMIT}-entry prefix list (ops = lists)`,
        rows: [...list, deno(denoOps.list, 3)],
      },
    ];
  } finally {
    for (const close of closers) await close();
    rmSync(dir, { recursive: true, force: true });
  }
}
