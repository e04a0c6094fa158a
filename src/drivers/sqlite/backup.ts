/**
 * Backups of a SQLite database through SQLite's online backup API (better-sqlite3's
 * `db.backup`), and restores of such a copy into a new file.
 *
 * A file is copied in one step on a connection of its own in a worker thread (see
 * `backup-worker.ts`): one read transaction, so the copy holds the database as of one commit —
 * never part of one — while writers of any process go on undisturbed. A database in memory,
 * which no other connection can open, is copied on its own connection a megabyte per turn of
 * the event loop, between commit groups: SQLite writes each page a commit changes into the copy
 * as well, so the copy ends as of the last commit before it finished.
 *
 * Every copy is written beside its target under a temporary name, checked, and only then moved
 * into place, so a failure leaves no file at the target and never a half-written one.
 */
import { createHash } from "node:crypto";
import { existsSync, linkSync, renameSync, statSync, unlinkSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import Database from "better-sqlite3";
import { formatVersionstamp, parseVersionstamp } from "../../codec/versionstamp.js";
import type { BackupInfo, BackupOptions, RestoreOptions } from "../../contract/index.js";
import { fail, KvError } from "../../errors.js";
import { copyInWorker } from "./backup-worker.js";
import { storageError } from "./errors.js";
import { prepareLocation } from "./path.js";
import { rewind } from "./rewind.js";
import { SCHEMA_VERSION } from "./schema.js";

/** Pages of a database in memory copied per turn of the event loop: 1 MiB of 4 KiB pages. */
const PAGES_PER_STEP = 256;

/**
 * Copies the database open on `db` to the new file `target`.
 *
 * @example
 * const info = await backupSqlite(db, "backups/app-2026-12-03.db", {});
 */
export async function backupSqlite(
  db: Database.Database,
  target: string,
  options: BackupOptions,
): Promise<BackupInfo> {
  if (resolve(target) === resolve(db.name))
    fail("INVALID_ARGUMENT", `cannot back up ${db.name} onto itself`);
  return writeCopy(target, options, async (temp) => {
    await copyPages(db, temp, options);
    const copy = openCopy(temp, target);
    try {
      check(copy, target, "quick_check");
      // One self-contained file: read-only readers of it then create no -wal or -shm beside it.
      copy.pragma("journal_mode = DELETE");
      return describeCopy(copy, target);
    } finally {
      copy.close();
    }
  });
}

/**
 * Restores the backup file `source` into the new file `target`, as it is or as of the
 * versionstamp `options.at`, and verifies the result: SQLite's integrity check, and either the
 * same entries as the source (a checksum of every entry, with its metadata and versionstamp) or,
 * as of `at`, no entry newer than `at`.
 *
 * @example
 * await restoreSqlite("backups/app.db", "data/app.db", { at: "00000000000004d20000" });
 */
export async function restoreSqlite(
  source: string,
  target: string,
  options: RestoreOptions,
): Promise<BackupInfo> {
  if (!existsSync(source) || !statSync(source).isFile())
    fail("NOT_FOUND", `cannot restore from ${source}: no such backup file`);
  if (resolve(source) === resolve(target))
    fail("INVALID_ARGUMENT", `cannot restore ${source} onto itself`);
  const from = openSource(source);
  try {
    return await writeCopy(target, options, async (temp) => {
      await copyPages(from, temp, options);
      const copy = openCopy(temp, target);
      try {
        if (options.at !== undefined) rewind(copy, options.at);
        check(copy, target, "integrity_check");
        if (options.at === undefined) {
          if (entriesChecksum(copy) !== entriesChecksum(from))
            fail("STORAGE_ERROR", `the restored ${target} does not hold the entries of ${source}`);
        } else {
          const newer = copy
            .prepare("SELECT count(*) FROM cellar_kv WHERE vs > ?")
            .pluck()
            .get(parseVersionstamp(options.at)) as number;
          if (newer > 0)
            fail(
              "STORAGE_ERROR",
              `the restored ${target} holds ${newer} entries newer than ${options.at}`,
            );
        }
        const info = describeCopy(copy, target);
        return options.at === undefined ? info : { ...info, versionstamp: options.at };
      } finally {
        copy.close();
      }
    });
  } finally {
    from.close();
  }
}

/**
 * Writes a backup that arrives as bytes (a server's `GET /api/admin/backup`) into the new file
 * `target`: `fill` writes the temporary file, which is checked as a backup is before it moves
 * into place.
 *
 * @example
 * await receiveSqlite("app.db", {}, (temp) => pipeline(body, createWriteStream(temp)));
 */
export function receiveSqlite(
  target: string,
  options: BackupOptions,
  fill: (temp: string) => Promise<void>,
): Promise<BackupInfo> {
  return writeCopy(target, options, async (temp) => {
    await fill(temp);
    let copy: Database.Database | undefined;
    try {
      copy = new Database(temp, { fileMustExist: true });
      check(copy, target, "quick_check");
      return describeCopy(copy, target);
    } catch (cause) {
      if (cause instanceof KvError) throw cause;
      throw storageError(cause, target, "check the received backup");
    } finally {
      copy?.close();
    }
  });
}

/** Opens a backup read-only, after checking it is a Cellar database this version can read. */
function openSource(source: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(source, { readonly: true, fileMustExist: true });
    assertCellarFile(db, source);
    return db;
  } catch (cause) {
    db?.close();
    if (cause instanceof KvError) throw cause;
    throw storageError(cause, source, "read");
  }
}

function assertCellarFile(db: Database.Database, path: string): void {
  const found = db
    .prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'cellar_meta'")
    .get();
  if (!found)
    fail("INVALID_ARGUMENT", `${path} is not a Cellar database: it has no cellar_meta table`);
  const schema = db.prepare("SELECT value FROM cellar_meta WHERE name = 'schema'").pluck().get();
  if (typeof schema === "number" && schema > SCHEMA_VERSION)
    fail(
      "INVALID_ARGUMENT",
      `${path} has schema ${schema}, newer than this Cellar's ${SCHEMA_VERSION}`,
    );
}

/** SQLite's online backup of `from` into the new file `temp`. */
async function copyPages(
  from: Database.Database,
  temp: string,
  options: BackupOptions,
): Promise<void> {
  try {
    if (!from.memory) {
      await copyInWorker(from.name, temp, options.onProgress);
      return;
    }
    await from.backup(temp, {
      progress: ({ totalPages, remainingPages }) => {
        options.onProgress?.(totalPages - remainingPages, totalPages);
        return PAGES_PER_STEP;
      },
    });
  } catch (cause) {
    throw storageError(cause, temp, "write the backup");
  }
}

function openCopy(temp: string, target: string): Database.Database {
  try {
    return new Database(temp, { fileMustExist: true });
  } catch (cause) {
    throw storageError(cause, target, "open the copy");
  }
}

function check(copy: Database.Database, target: string, pragma: "quick_check" | "integrity_check") {
  const result = copy.pragma(pragma, { simple: true });
  if (result !== "ok")
    fail("STORAGE_ERROR", `the copy at ${target} fails SQLite's ${pragma}: ${String(result)}`);
}

function describeCopy(copy: Database.Database, target: string): BackupInfo {
  assertCellarFile(copy, target);
  const version = copy
    .prepare("SELECT value FROM cellar_meta WHERE name = 'version'")
    .pluck()
    .get();
  const entries = copy.prepare("SELECT count(*) FROM cellar_kv").pluck().get() as number;
  const pages = copy.pragma("page_count", { simple: true }) as number;
  const pageSize = copy.pragma("page_size", { simple: true }) as number;
  return {
    target,
    versionstamp: formatVersionstamp(version as number),
    entries,
    bytes: pages * pageSize,
  };
}

/** SHA-256 of every entry (key, value, versionstamp, expiry and metadata), in key order. */
function entriesChecksum(db: Database.Database): string {
  const hash = createHash("sha256");
  const rows = db.prepare("SELECT * FROM cellar_kv ORDER BY key").raw().iterate() as Iterable<
    unknown[]
  >;
  for (const row of rows) {
    for (const column of row) {
      if (column instanceof Uint8Array) hash.update(column);
      else hash.update(JSON.stringify(column) ?? "null");
      hash.update("\u0000");
    }
  }
  return hash.digest("hex");
}

/**
 * Runs `write` on a temporary file beside `target`, then moves the file into place: never over
 * an existing file unless `force`, and never leaving the temporary file behind.
 */
async function writeCopy(
  target: string,
  options: BackupOptions,
  write: (temp: string) => Promise<BackupInfo>,
): Promise<BackupInfo> {
  assertAbsent(target, options.force);
  prepareLocation(target);
  const temp = join(dirname(target), `.${basename(target)}.partial-${process.pid}-${Date.now()}`);
  const discard = () => {
    for (const suffix of ["", "-wal", "-shm", "-journal"]) removeQuietly(temp + suffix);
  };
  // A process that exits mid-copy (process.exit, or a signal the application turns into one).
  process.once("exit", discard);
  try {
    const info = await write(temp);
    publish(temp, target, options.force === true);
    return { ...info, bytes: statSync(target).size };
  } finally {
    process.removeListener("exit", discard);
    discard();
  }
}

function assertAbsent(target: string, force: boolean | undefined): void {
  if (!existsSync(target)) return;
  if (!statSync(target).isFile()) fail("INVALID_ARGUMENT", `${target} exists and is not a file`);
  if (!force)
    fail("ALREADY_EXISTS", `${target} already exists; pass force (--force) to replace it`);
}

function publish(temp: string, target: string, force: boolean): void {
  try {
    if (force) {
      // A -wal file left by the replaced database would be replayed into the new one.
      for (const suffix of ["-wal", "-shm"]) removeQuietly(target + suffix);
      renameSync(temp, target);
      return;
    }
    // A link fails if the target appeared meanwhile, where a rename would replace it.
    linkSync(temp, target);
  } catch (cause) {
    if ((cause as { code?: unknown }).code === "EEXIST")
      fail(
        "ALREADY_EXISTS",
        `${target} appeared while the copy was being written; nothing replaced it`,
      );
    throw new KvError(
      "STORAGE_ERROR",
      `cannot move the copy into place at ${target}: ${(cause as Error).message}`,
      { cause },
    );
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Absent already: nothing to remove.
  }
}
