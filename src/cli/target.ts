/**
 * What every data command of `cellar` shares: the database it works on (`--db`, `CELLAR_URL`,
 * `CELLAR_DB`; `--token`, `CELLAR_TOKEN`; `--namespace`), how keys, values and filters are read
 * from the command line, and how a command ends: exit status 0 done, 1 failure, 2 usage error,
 * 3 not found, with one line on stderr and never a stack.
 */
import { readFileSync } from "node:fs";
import { type Command, InvalidArgumentError, Option } from "commander";
import type { KvKey } from "../codec/key.js";
import type { Kv } from "../core/kv.js";
import { bareMessage, KvError, type KvErrorCode, redactUrl } from "../errors.js";
import { openKv } from "../open.js";
import { keyFromJson, keyFromPath, valueFromJson, whereFromJson } from "../wire/json.js";

export const EXIT = { ok: 0, failure: 1, usage: 2, notFound: 3 } as const;

/** A command's refusal or failure, with the exit status it ends with. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const usage = (message: string): CliError => new CliError(EXIT.usage, message);

/** Codes that mean the command line asked for something malformed, not that the work failed. */
const USAGE_CODES: ReadonlySet<KvErrorCode> = new Set([
  "INVALID_KEY",
  "KEY_TOO_LARGE",
  "INVALID_VALUE",
  "VALUE_TOO_LARGE",
  "INVALID_ARGUMENT",
  "INVALID_SELECTOR",
  "INVALID_CURSOR",
  "INVALID_VERSIONSTAMP",
  "INVALID_MUTATION",
  "INVALID_PATTERN",
  "INVALID_FILTER",
  "INVALID_REQUEST",
  "TOO_MANY_CHECKS",
  "TOO_MANY_MUTATIONS",
]);

/** The exit status and the one line an error ends a command with. */
export function describeFailure(error: unknown): { status: number; line: string } {
  if (error instanceof CliError) return { status: error.status, line: error.message };
  if (error instanceof KvError) {
    const status = USAGE_CODES.has(error.code) ? EXIT.usage : EXIT.failure;
    const hint = error.code === "UNAUTHORIZED" ? " (check --token or CELLAR_TOKEN)" : "";
    return { status, line: `${oneLine(bareMessage(error))}${hint}` };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { status: EXIT.failure, line: oneLine(message) };
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, " ").trim();

/** Options every command that opens a database takes. */
export interface TargetFlags {
  readonly db?: string;
  readonly token?: string;
  readonly namespace?: string;
  readonly json?: boolean;
}

/** Adds `--db`, `--token`, `--namespace` and `--json` to `command`. */
export function addTargetOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        "--db <file|url>",
        "a SQLite file, a postgres:// URL or a Cellar server's http(s):// URL",
      ).env("CELLAR_URL"),
    )
    .addOption(new Option("--token <token>", "bearer token for a server URL").env("CELLAR_TOKEN"))
    .option("--namespace <name>", "work in this namespace (default: the default namespace)")
    .option("--json", "print NDJSON even on a terminal (the default when stdout is not one)");
}

/** The database a command works on: `--db`, else `CELLAR_URL` (both read by commander), else `CELLAR_DB`. */
export function targetOf(flags: TargetFlags, env: NodeJS.ProcessEnv = process.env): string {
  const db = flags.db ?? env.CELLAR_DB;
  if (db === undefined || db === "") {
    throw usage(
      "no database: pass --db <file|postgres://…|http(s)://…>, or set CELLAR_URL or CELLAR_DB",
    );
  }
  return db;
}

/** True for a server's URL, false for a file or a PostgreSQL URL. */
export const isServer = (db: string): boolean => /^https?:\/\//i.test(db);

/** Opens the command's database, on its namespace. Refusals and outages become one line. */
export async function openTarget(
  flags: TargetFlags,
  options: { durability?: "full" | "normal" } = {},
): Promise<Kv> {
  const db = targetOf(flags);
  let kv: Kv;
  try {
    kv = isServer(db)
      ? await openKv(db, {
          ...(flags.token !== undefined && { token: flags.token }),
          ...(flags.namespace !== undefined && { namespace: flags.namespace }),
        })
      : await openKv(db, { sweepInterval: 0, ...options });
  } catch (error) {
    const { status, line } = describeFailure(error);
    throw new CliError(
      status === EXIT.usage ? EXIT.usage : EXIT.failure,
      line.includes(redactUrl(db)) ? line : `${redactUrl(db)}: ${line}`,
    );
  }
  if (isServer(db) || flags.namespace === undefined) return kv;
  try {
    return kv.namespace(flags.namespace);
  } catch (error) {
    await kv.close();
    throw error;
  }
}

/** Parses JSON typed on the command line; `what` names it in the usage error. */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw usage(`${what} is not JSON: ${(error as Error).message}`);
  }
}

/** A key written as a path (`users/~n:1`) or as a JSON array (`'["users", 1]'`). */
export function parseKey(text: string, what = "the key"): KvKey {
  try {
    return text.trimStart().startsWith("[")
      ? keyFromJson(parseJson(text, what))
      : keyFromPath(text);
  } catch (error) {
    if (error instanceof KvError) throw usage(`${what}: ${bareMessage(error)}`);
    throw error;
  }
}

/** A value in JSON, tagged where JSON has no form (`{"$bigint": "1"}`, `{"$date": …}`). */
export function parseValue(text: string, what = "the value"): unknown {
  const json = parseJson(text, what);
  try {
    return valueFromJson(json);
  } catch (error) {
    if (error instanceof KvError) throw usage(`${what}: ${bareMessage(error)}`);
    throw error;
  }
}

export function parseWhere(text: string): unknown {
  return whereFromJson(parseJson(text, "--where"));
}

/** Commander's parser of a positive integer flag (`--limit 10`): a refusal is a usage error. */
export function positiveInteger(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError("a positive integer is expected.");
  }
  return n;
}

/** Reads a whole file, or standard input for `-`. */
export function readInput(file: string | undefined, what: string): string {
  try {
    return readFileSync(file === undefined || file === "-" ? 0 : file, "utf8");
  } catch (error) {
    throw new CliError(EXIT.failure, `cannot read ${what}: ${(error as Error).message}`);
  }
}

/**
 * Runs a command's work, then ends the process with its status: open handles (a database, a
 * server's keep-alive sockets) must not keep a finished command alive.
 */
export function action<A extends unknown[]>(
  work: (...args: A) => Promise<number | undefined>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    let status: number;
    try {
      status = (await work(...args)) ?? EXIT.ok;
    } catch (error) {
      const failure = describeFailure(error);
      process.stderr.write(`cellar: ${failure.line}\n`);
      status = failure.status;
    }
    await drain(process.stdout);
    process.exit(status);
  };
}

/** Waits until what was written to `stream` has left the process. */
function drain(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.writableLength === 0) resolve();
    else stream.write("", () => resolve());
  });
}

/** Runs `work` on the command's database and closes it after, whatever happens. */
export async function withKv<T>(
  flags: TargetFlags,
  work: (kv: Kv) => Promise<T>,
  options?: { durability?: "full" | "normal" },
): Promise<T> {
  const kv = await openTarget(flags, options);
  try {
    return await work(kv);
  } finally {
    await kv.close().catch(() => {});
  }
}
