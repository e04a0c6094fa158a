/**
 * `cellar backup` and `cellar restore`: consistent online backups of a SQLite file, a
 * PostgreSQL schema or a server, and verified restores, as they are or as of a versionstamp.
 * A refusal is one line on stderr and a non-zero exit: 1 a failure (the target exists, the
 * versionstamp is outside the window, the server refused), 2 a usage error, 3 nothing to back up
 * or restore from.
 */
import type { Command } from "commander";
import { type BackupInfo, backup, restore } from "../backup.js";
import { KvError, redactUrl } from "../errors.js";

const EXIT = { failure: 1, usage: 2, notFound: 3 } as const;

const USAGE_CODES: ReadonlySet<string> = new Set(["INVALID_ARGUMENT", "INVALID_VERSIONSTAMP"]);

const BACKUP_HELP = `
Targets:
  a SQLite database (or a server on one) backs up into a new SQLite file, which
  openKv and every cellar command open as they are; a PostgreSQL database backs
  up into a new schema of the same database (a postgres://…?schema= URL).

Examples:
  $ cellar backup --db data/app.db backups/app-2026-12-03.db
  $ cellar backup --db "postgres://app@db:5432/prod?schema=app" "postgres://app@db:5432/prod?schema=app_bk"
  $ cellar backup --db http://127.0.0.1:8080 --token "$ADMIN_TOKEN" backups/server.db
  $ CELLAR_URL=data/app.db cellar backup --force backups/latest.db`;

const RESTORE_HELP = `
A SQLite backup restores into a new file, a PostgreSQL backup schema into a new
schema of the same database. The result is checked before it appears (SQLite's
integrity check and a checksum of every entry; as of --at, no entry newer).

Point in time: --at restores the state just after that commit. It must lie in
the backup's change-log window (by default its last 10,000 commits); an older
one is refused, naming the oldest point left. Queues and search documents stay
as they were when the backup was taken.

Examples:
  $ cellar restore backups/app.db data/restored.db
  $ cellar restore backups/app.db data/as-of.db --at 00000000000004d20000
  $ cellar restore "postgres://app@db/prod?schema=app_bk" "postgres://app@db/prod?schema=app_restored"`;

interface BackupFlags {
  readonly db?: string;
  readonly token?: string;
  readonly force?: boolean;
  readonly json?: boolean;
}

interface RestoreFlags {
  readonly at?: string;
  readonly force?: boolean;
  readonly json?: boolean;
}

export function registerBackupCommands(program: Command): void {
  program
    .command("backup")
    .description(
      "back up a whole database (every namespace) while it is being written: a SQLite file, a PostgreSQL schema, or a server",
    )
    .argument("<target>", "the new backup: a file, or a postgres://…?schema= URL")
    .option(
      "--db <database>",
      "the database to back up: a SQLite file, a postgres:// URL or a server's http(s):// URL (default: $CELLAR_URL)",
    )
    .option(
      "--token <token>",
      "an admin token of every namespace, for a server (default: $CELLAR_TOKEN)",
    )
    .option("--force", "replace an existing target")
    .option("--json", "print the result as JSON (the default when stdout is not a terminal)")
    .addHelpText("after", BACKUP_HELP)
    .action((target: string, flags: BackupFlags) =>
      run(async () => {
        const db = flags.db ?? process.env.CELLAR_URL;
        if (!db) throw usage("name the database to back up with --db (or CELLAR_URL)");
        const token = flags.token ?? process.env.CELLAR_TOKEN;
        const started = performance.now();
        const info = await backup(db, target, {
          ...(token !== undefined && { token }),
          ...(flags.force && { force: true }),
          ...progress("backup"),
        });
        report("backup", redactUrl(db), info, started, flags.json);
      }),
    );

  program
    .command("restore")
    .description(
      "restore a backup into a new SQLite file or PostgreSQL schema, verified; optionally as of a versionstamp",
    )
    .argument("<source>", "the backup: a SQLite file, or a postgres://…?schema= URL")
    .argument("<target>", "the new database: a file, or a postgres://…?schema= URL")
    .option(
      "--at <versionstamp>",
      "restore the state just after this commit (20 hex digits), within the backup's change-log window",
    )
    .option("--force", "replace an existing target")
    .option("--json", "print the result as JSON (the default when stdout is not a terminal)")
    .addHelpText("after", RESTORE_HELP)
    .action((source: string, target: string, flags: RestoreFlags) =>
      run(async () => {
        if (flags.at !== undefined && !/^[0-9a-f]{20}$/.test(flags.at))
          throw usage(
            `--at takes a versionstamp of 20 lowercase hex digits, got ${JSON.stringify(flags.at)}`,
          );
        const started = performance.now();
        const info = await restore(source, target, {
          ...(flags.at !== undefined && { at: flags.at }),
          ...(flags.force && { force: true }),
          ...progress("restore"),
        });
        report("restore", redactUrl(source), info, started, flags.json);
      }),
    );
}

/** A progress line on stderr, rewritten in place, when stderr is a terminal. */
function progress(what: string): { onProgress?: (done: number, total: number) => void } {
  if (!process.stderr.isTTY) return {};
  let shown = -1;
  return {
    onProgress: (done, total) => {
      const percent = total > 0 ? Math.floor((done / total) * 100) : 0;
      if (percent === shown) return;
      shown = percent;
      process.stderr.write(`\r${what}: ${percent}%`);
      if (done >= total) process.stderr.write("\r\u001b[K");
    },
  };
}

function report(
  what: string,
  source: string,
  info: BackupInfo,
  started: number,
  json: boolean | undefined,
): void {
  const seconds = (performance.now() - started) / 1000;
  if (json || !process.stdout.isTTY) {
    console.log(
      JSON.stringify({ command: what, source, ...info, target: redactUrl(info.target), seconds }),
    );
    return;
  }
  const mb = info.bytes / 2 ** 20;
  console.log(
    `${what} of ${source} → ${redactUrl(info.target)}: ${info.entries} entries as of ${info.versionstamp}, ${mb.toFixed(1)} MiB in ${seconds.toFixed(1)} s (${(mb / seconds).toFixed(0)} MiB/s), verified`,
  );
}

class UsageError extends Error {}

const usage = (message: string) => new UsageError(message);

/**
 * Runs a command's work: its refusal is one line on stderr and an exit status, never a stack.
 * Ctrl-C exits through `process.exit`, so the copy's temporary file is removed on the way out.
 */
async function run(work: () => Promise<void>): Promise<void> {
  process.once("SIGINT", () => process.exit(130));
  process.once("SIGTERM", () => process.exit(143));
  try {
    await work();
  } catch (error) {
    if (process.stderr.isTTY) process.stderr.write("\r\u001b[K");
    const message = (error as Error).message.replace(/^\[cellar\] /, "");
    console.error(`cellar: ${message.split("\n")[0]}`);
    process.exitCode =
      error instanceof UsageError || (error instanceof KvError && USAGE_CODES.has(error.code))
        ? EXIT.usage
        : error instanceof KvError && error.code === "NOT_FOUND"
          ? EXIT.notFound
          : EXIT.failure;
  }
}
