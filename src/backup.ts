/**
 * Backup and restore (`cellar backup`, `cellar restore`): consistent copies of a database taken
 * while it is being written, and their restoration — verified — into a new SQLite file or
 * PostgreSQL schema, as they are or as of an earlier versionstamp within the change log's window.
 *
 * A SQLite database (or a server on one) backs up into a SQLite file, which is itself a Cellar
 * database: `openKv(file)` opens it. A PostgreSQL database backs up into a new schema of the
 * same PostgreSQL database. Each driver is loaded when a path first asks for it.
 */
import { createWriteStream, existsSync } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { assertVersionstamp } from "./codec/versionstamp.js";
import type { BackupInfo, BackupOptions, BackupTarget, RestoreOptions } from "./contract/index.js";
import type { Kv } from "./core/kv.js";
import { coreOf, WHOLE_DATABASE } from "./core/surface.js";
import { fail, KvError, type KvErrorCode, redactUrl } from "./errors.js";
import { openKv } from "./open.js";
import { isServerUrl } from "./open-common.js";

export type { BackupInfo, BackupOptions, RestoreOptions } from "./contract/index.js";

/** The server route that streams a backup of the whole database (see `server/routes/backup.ts`). */
const BACKUP_ROUTE = "/api/admin/backup";

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/** Options of {@link backup}. */
export interface BackupCallOptions extends BackupOptions {
  /** The bearer token, when `source` is a server's URL: an admin token of every namespace. */
  readonly token?: string;
}

/**
 * Backs up a whole database (every namespace) into `target`, consistently, while it is being
 * written, and verifies the copy before it appears at `target`.
 *
 * `source` is an open `Kv`, or what `openKv` takes: a SQLite file, a PostgreSQL URL, or a
 * server's `http(s)://` URL (then the server streams a backup of its SQLite database; pass an
 * admin `token`). `target` is a new SQLite file, or for PostgreSQL a `postgres://…?schema=name`
 * URL naming a new schema of the same database. An existing target is refused with
 * `ALREADY_EXISTS` unless `force`.
 *
 * @example
 * import { backup, openKv } from "cellar";
 * const kv = await openKv("data/app.db");
 * const { versionstamp, entries } = await backup(kv, "backups/app.db");
 */
export async function backup(
  source: Kv | string,
  target: string,
  options: BackupCallOptions = {},
): Promise<BackupInfo> {
  if (typeof source === "string" && isServerUrl(source)) {
    return fromServer(source, target, options);
  }
  if (typeof source !== "string") return backupKv(source, target, options);
  // Opening a missing file would create an empty database and back that up.
  if (!POSTGRES_URL.test(source) && source !== ":memory:" && !existsSync(source))
    fail("NOT_FOUND", `cannot back up ${source}: no such database file`);
  const kv = await openKv(source, { sweepInterval: 0 });
  try {
    if (POSTGRES_URL.test(source) && POSTGRES_URL.test(target)) assertSameDatabase(source, target);
    return await backupKv(kv, target, options);
  } finally {
    await kv.close();
  }
}

function backupKv(kv: Kv, target: string, options: BackupOptions): Promise<BackupInfo> {
  const { onProgress, force } = options;
  const destination: BackupTarget = POSTGRES_URL.test(target)
    ? { schema: schemaOf(target) }
    : { file: target };
  return coreOf(kv).core.backup(destination, WHOLE_DATABASE, {
    ...(force !== undefined && { force }),
    ...(onProgress && { onProgress }),
  });
}

/**
 * Restores the backup `source` into the new database `target`, of the same kind: a SQLite file
 * into a new file, a PostgreSQL schema (a `postgres://…?schema=` URL) into a new schema of the
 * same database. With `at`, the restored database holds exactly the state just after that
 * commit, which must lie within the backup's change-log window (`COMPACTED` otherwise, naming
 * the oldest point left). The result is verified (see the README's "Backup and restore").
 *
 * @example
 * import { restore } from "cellar";
 * await restore("backups/app.db", "data/restored.db", { at: "00000000000004d20000" });
 */
export async function restore(
  source: string,
  target: string,
  options: RestoreOptions = {},
): Promise<BackupInfo> {
  if (options.at !== undefined) assertVersionstamp(options.at);
  if (isServerUrl(source) || isServerUrl(target))
    fail(
      "INVALID_ARGUMENT",
      "restore reads a backup file or schema and writes a new one: take a server's backup with backup() first",
    );
  const fromPostgres = POSTGRES_URL.test(source);
  if (fromPostgres !== POSTGRES_URL.test(target))
    fail(
      "INVALID_ARGUMENT",
      "restore keeps the backend: a SQLite backup restores into a file, a PostgreSQL one into a schema (export and import move data between backends)",
    );
  if (fromPostgres) {
    assertSameDatabase(source, target);
    const { restorePostgres } = await import("./drivers/postgres/backup.js");
    return restorePostgres(source, schemaOf(source), schemaOf(target), options);
  }
  const { restoreSqlite } = await import("./drivers/sqlite/backup.js");
  return restoreSqlite(source, target, options);
}

/** The schema a PostgreSQL URL names (`?schema=`, default `public`). */
function schemaOf(url: string): string {
  return new URL(url).searchParams.get("schema") ?? "public";
}

function assertSameDatabase(a: string, b: string): void {
  const base = (url: string) => {
    const parsed = new URL(url);
    parsed.searchParams.delete("schema");
    return parsed.toString();
  };
  if (base(a) !== base(b))
    fail(
      "INVALID_ARGUMENT",
      `a PostgreSQL backup goes into a schema of the same database: ${redactUrl(b)} names another database than ${redactUrl(a)}`,
    );
}

/** Downloads a server's backup (`GET /api/admin/backup`) into the new file `target`. */
async function fromServer(
  url: string,
  target: string,
  options: BackupCallOptions,
): Promise<BackupInfo> {
  const { receiveSqlite } = await import("./drivers/sqlite/backup.js");
  return receiveSqlite(target, options, async (temp) => {
    const endpoint = new URL(BACKUP_ROUTE, url.endsWith("/") ? url : `${url}/`);
    let response: Response;
    try {
      response = await fetch(endpoint, {
        headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
      });
    } catch (cause) {
      throw new KvError(
        "UNAVAILABLE",
        `cannot reach the server at ${redactUrl(url)}: ${reason(cause)}`,
        {
          cause,
        },
      );
    }
    if (!response.ok || !response.body) throw await serverError(response);
    const total = Number(response.headers.get("content-length") ?? 0);
    let done = 0;
    const body = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream);
    body.on("data", (chunk: Buffer) => {
      done += chunk.length;
      options.onProgress?.(done, total);
    });
    await pipeline(body, createWriteStream(temp));
  });
}

async function serverError(response: Response): Promise<KvError> {
  const text = await response.text().catch(() => "");
  try {
    const { error } = JSON.parse(text) as { error: { code: KvErrorCode; message: string } };
    return new KvError(
      error.code,
      `the server refused the backup (${response.status}): ${error.message}`,
    );
  } catch {
    return new KvError(
      "UNAVAILABLE",
      `the server answered ${response.status} ${response.statusText} to ${BACKUP_ROUTE}`,
    );
  }
}

function reason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}
