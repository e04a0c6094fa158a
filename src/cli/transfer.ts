/**
 * `cellar export` and `cellar import`: entries as NDJSON, one a line, in the HTTP API's lossless
 * JSON forms, so every value type round-trips:
 *
 *     {"key":["users","ada"],"value":{"name":"Ada"},"versionstamp":"…","expiresAt":1767225600000}
 *
 * `expiresAt` (epoch ms) is there for entries that expire; `metadata` with `--metadata`. An
 * import writes each line's value under its key in atomic commits of `--batch-size` entries
 * (1000); the database gives them new versionstamps (and, for metadata, new versions and times:
 * tags, modifiedBy and comment are carried over). A line that has expired by then is skipped.
 *
 * Resuming: as it commits, the import records the number of lines committed in a state file
 * (`<input>.import-state`, or `--state`): at most once a second, and when it stops on an error or
 * Ctrl-C. `--resume` skips those lines, and a finished import removes the file. Each line is a
 * plain set of its key, so importing a line twice leaves the same entry: a resume after a crash
 * that repeats the batches since the last record is still exact.
 */
import {
  createReadStream,
  createWriteStream,
  existsSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { SingleBar } from "cli-progress";
import type { Command } from "commander";
import type { KvKey } from "../codec/key.js";
import type { Kv } from "../core/kv.js";
import { coreOf, listNamespaces } from "../core/surface.js";
import type { KvEntry, KvListSelector, KvSetOptions } from "../core/types.js";
import { bareMessage, KvError } from "../errors.js";
import { keyFromJson, keyToJson, valueFromJson, valueToJson } from "../wire/json.js";
import { subcommand } from "./command.js";
import { selectorOf } from "./data.js";
import {
  action,
  addTargetOptions,
  CliError,
  EXIT,
  isServer,
  positiveInteger,
  type TargetFlags,
  targetOf,
  usage,
  withKv,
} from "./target.js";

/** A batch is also cut at this many bytes of input, to stay under a server's body limit. */
const BATCH_BYTES = 512 * 1024;

/** One line of an export. */
export function exportLine(entry: KvEntry, metadata: boolean, namespace = ""): string {
  const expiresAt = entry.metadata?.expiresAt ?? null;
  return JSON.stringify({
    ...(namespace !== "" && { namespace }),
    key: keyToJson(entry.key),
    value: valueToJson(entry.value),
    versionstamp: entry.versionstamp,
    ...(expiresAt !== null && { expiresAt }),
    ...(metadata && entry.metadata && { metadata: entry.metadata }),
  });
}

/** A progress bar on stderr when it is a terminal, else nothing. */
function progress(total: number, unit: string): { update(n: number): void; stop(): void } {
  if (!process.stderr.isTTY || total === 0) return { update() {}, stop() {} };
  const bar = new SingleBar({
    format: `{bar} {percentage}% | {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted}`,
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: true,
  });
  const started = Date.now();
  bar.start(total, 0, { rate: 0 });
  return {
    update: (n) =>
      bar.update(n, { rate: Math.round(n / Math.max(0.001, (Date.now() - started) / 1000)) }),
    stop: () => bar.stop(),
  };
}

interface ExportFlags extends TargetFlags {
  readonly allNamespaces?: boolean;
  readonly prefix?: string;
  readonly start?: string;
  readonly end?: string;
  readonly metadata?: boolean;
  readonly output?: string;
}

/**
 * The views an export reads, with the namespace each line names: the command's view, or with
 * `--all-namespaces` every namespace of the database that holds entries (Cellar's own `$…`
 * namespaces are derived or transient, and no view may write them back).
 */
async function exportedViews(kv: Kv, flags: ExportFlags): Promise<[Kv, string][]> {
  if (!flags.allNamespaces) return [[kv, ""]];
  if (flags.namespace !== undefined) throw usage("give --namespace or --all-namespaces, not both");
  if (isServer(targetOf(flags))) {
    throw usage(
      "--all-namespaces reads a SQLite file or a postgres:// database; through a server, export each namespace with --namespace",
    );
  }
  const { core, keyspace } = coreOf(kv);
  if (keyspace.namespace !== "") {
    throw usage("--all-namespaces reads the whole database: use a token of every namespace");
  }
  const names = await listNamespaces(core, { limit: Number.MAX_SAFE_INTEGER });
  return names
    .filter((name) => !name.startsWith("$"))
    .map((name) => [name === "" ? kv : kv.namespace(name), name]);
}

async function exportEntries(kv: Kv, selector: KvListSelector, flags: ExportFlags) {
  const views = await exportedViews(kv, flags);
  const out = flags.output === undefined ? process.stdout : createWriteStream(flags.output);
  let total = 0;
  if (process.stderr.isTTY) for (const [view] of views) total += await view.count(selector);
  const bar = progress(total, "entries");
  const started = Date.now();
  let count = 0;
  let chunk = "";
  const flush = async () => {
    if (!out.write(chunk)) await new Promise<void>((done) => out.once("drain", done));
    chunk = "";
    bar.update(count);
  };
  for (const [view, namespace] of views) {
    for await (const entry of view.list(selector, { metadata: true, batchSize: 1000 })) {
      chunk += `${exportLine(entry, flags.metadata === true, namespace)}\n`;
      if (++count % 1000 === 0) await flush();
    }
  }
  await flush();
  bar.stop();
  if (out !== process.stdout)
    await new Promise<void>((done, fail) =>
      out.end((error?: Error) => (error ? fail(error) : done())),
    );
  summary("exported", count, started);
  return EXIT.ok;
}

function summary(verb: string, count: number, started: number, extra = ""): void {
  const seconds = (Date.now() - started) / 1000;
  const rate = Math.round(count / Math.max(seconds, 0.001));
  process.stderr.write(
    `cellar: ${verb} ${count} entries in ${seconds.toFixed(1)} s (${rate}/s)${extra}\n`,
  );
}

interface ImportFlags extends TargetFlags {
  readonly resume?: boolean;
  readonly state?: string;
  readonly batchSize: number;
}

interface ImportState {
  readonly input: string;
  readonly lines: number;
}

/** Where an import records its progress: `--state`, else beside its input file. */
function statePath(input: string | undefined, flags: ImportFlags): string | undefined {
  if (flags.state !== undefined) return flags.state;
  return input === undefined || input === "-" ? undefined : `${input}.import-state`;
}

function readState(path: string | undefined, input: string): number {
  if (path === undefined)
    throw usage("--resume reads a file: name the input file, or give --state");
  if (!existsSync(path)) return 0;
  let state: ImportState;
  try {
    state = JSON.parse(readFileSync(path, "utf8")) as ImportState;
  } catch (error) {
    throw new CliError(
      EXIT.failure,
      `cannot read import state ${path}: ${(error as Error).message}`,
    );
  }
  if (!Number.isSafeInteger(state.lines) || state.lines < 0) {
    throw new CliError(EXIT.failure, `import state ${path} has no line count`);
  }
  if (state.input !== input) {
    throw usage(`import state ${path} is of ${state.input}, not ${input}`);
  }
  return state.lines;
}

interface Parsed {
  /** The namespace a line of an `--all-namespaces` export names; `""` otherwise. */
  readonly namespace: string;
  readonly key: KvKey;
  readonly value: unknown;
  readonly options: KvSetOptions;
}

const LINE_FIELDS = new Set(["namespace", "key", "value", "versionstamp", "expiresAt", "metadata"]);

/** One line of an import; `null` for an entry that has expired. Throws a usage error naming the line. */
function parseLine(text: string, number: number, now: number): Parsed | null {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
    if (typeof json !== "object" || json === null || Array.isArray(json) || !("value" in json)) {
      throw new Error('a line is an object with "key" and "value"');
    }
    for (const field of Object.keys(json)) {
      if (!LINE_FIELDS.has(field)) throw new Error(`unknown field "${field}"`);
    }
    const namespace = json.namespace ?? "";
    if (typeof namespace !== "string") throw new Error("namespace must be a string");
    const key = keyFromJson(json.key);
    const value = valueFromJson(json.value);
    const expiresAt = json.expiresAt;
    if (expiresAt !== undefined && !Number.isSafeInteger(expiresAt)) {
      throw new Error("expiresAt must be an integer of epoch milliseconds");
    }
    if (typeof expiresAt === "number" && expiresAt <= now) return null;
    const meta = (json.metadata ?? {}) as {
      tags?: string[];
      modifiedBy?: string | null;
      comment?: string | null;
    };
    const options: KvSetOptions = {
      ...(typeof expiresAt === "number" && { expireIn: expiresAt - now }),
      ...(Array.isArray(meta.tags) && meta.tags.length > 0 && { tags: meta.tags }),
      ...(typeof meta.modifiedBy === "string" && { modifiedBy: meta.modifiedBy }),
      ...(typeof meta.comment === "string" && { comment: meta.comment }),
    };
    return { namespace, key, value, options };
  } catch (error) {
    const reason = error instanceof KvError ? bareMessage(error) : (error as Error).message;
    throw usage(`line ${number}: ${reason}`);
  }
}

async function importEntries(kv: Kv, input: string | undefined, flags: ImportFlags) {
  const fromFile = input !== undefined && input !== "-";
  const absolute = fromFile ? resolve(input) : "-";
  const state = statePath(input, flags);
  const skip = flags.resume ? readState(state, absolute) : 0;
  if (!flags.resume && state !== undefined && existsSync(state)) {
    process.stderr.write(
      `cellar: ${state} records an earlier import; starting over (--resume continues it)\n`,
    );
  }
  const bar = progress(fromFile ? statSync(input).size : 0, "bytes");
  const lines = createInterface({
    input: fromFile ? createReadStream(input) : process.stdin,
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  const started = Date.now();
  let number = 0;
  let bytes = 0;
  let imported = 0;
  let expired = 0;
  let batch: Parsed[] = [];
  let batchBytes = 0;
  // The lines committed so far, recorded at most once a second (a resume repeats at most that
  // second's batches, which is harmless) and always before the import stops on an error or Ctrl-C.
  let committed = skip;
  let recordedAt = 0;
  const record = (now: boolean) => {
    if (state === undefined || (!now && Date.now() - recordedAt < 1000)) return;
    writeFileSync(state, JSON.stringify({ input: absolute, lines: committed }));
    recordedAt = Date.now();
  };
  const interrupted = () => {
    record(true);
    process.exit(130);
  };
  process.once("SIGINT", interrupted);
  // Lines of an `--all-namespaces` export go to their namespace's view, one commit each.
  const views = new Map<string, Kv>([["", kv]]);
  const viewFor = (namespace: string, line: number): Kv => {
    let view = views.get(namespace);
    if (view) return view;
    if (flags.namespace !== undefined) {
      throw usage(
        `line ${line} names namespace ${JSON.stringify(namespace)}: import it without --namespace`,
      );
    }
    view = kv.namespace(namespace);
    views.set(namespace, view);
    return view;
  };
  /** Commits the batch, which holds the lines up to `upTo`. */
  const commit = async (upTo: number) => {
    if (batch.length > 0) {
      const op = viewFor(batch[0]!.namespace, upTo).atomic();
      for (const entry of batch) op.set(entry.key, entry.value, entry.options);
      try {
        await op.commit();
      } catch (error) {
        if (error instanceof KvError) {
          throw new KvError(error.code, `lines up to ${upTo}: ${bareMessage(error)}`, {
            cause: error,
          });
        }
        throw error;
      }
      imported += batch.length;
    }
    committed = upTo;
    record(false);
    batch = [];
    batchBytes = 0;
    bar.update(bytes);
  };
  try {
    for await (const text of lines) {
      number++;
      bytes += Buffer.byteLength(text) + 1;
      if (number <= skip || text.trim() === "") continue;
      const parsed = parseLine(text, number, Date.now());
      if (parsed === null) {
        expired++;
        continue;
      }
      if (batch.length > 0 && batch[0]!.namespace !== parsed.namespace) await commit(number - 1);
      batch.push(parsed);
      batchBytes += text.length;
      if (batch.length >= flags.batchSize || batchBytes >= BATCH_BYTES) await commit(number);
    }
    await commit(number);
  } catch (error) {
    record(true);
    throw error;
  } finally {
    process.off("SIGINT", interrupted);
    bar.stop();
  }
  if (state !== undefined) rmSync(state, { force: true });
  const notes = [
    skip > 0 && `, ${skip} lines skipped (--resume)`,
    expired > 0 && `, ${expired} expired skipped`,
  ];
  summary("imported", imported, started, notes.filter(Boolean).join(""));
  return EXIT.ok;
}

export function registerTransferCommands(program: Command): void {
  addTargetOptions(
    subcommand(
      program,
      "export",
      "write entries as NDJSON, one a line: { key, value, versionstamp, expiresAt?, metadata? } in lossless JSON",
      [
        "cellar export --db data/app.db > backup.ndjson",
        "cellar export --prefix users --metadata --output users.ndjson --db data/app.db",
        "cellar export --namespace tenant-a --db postgres://localhost/app > tenant-a.ndjson",
        "cellar export --all-namespaces --db data/app.db > whole.ndjson",
      ],
    ),
  )
    .option(
      "--all-namespaces",
      'every namespace holding entries, each line naming its own ("namespace"; none for the default)',
    )
    .option("--prefix <key>", "the entries under this prefix (default: the whole namespace)")
    .option("--start <key>", "from this key, included")
    .option("--end <key>", "up to this key, excluded")
    .option("--metadata", "with each entry's metadata")
    .option("--output <file>", "write to this file rather than stdout")
    .action(
      action(async (flags: ExportFlags) => {
        const selector = selectorOf(flags);
        return withKv(flags, (kv) => exportEntries(kv, selector, flags));
      }),
    );

  addTargetOptions(
    subcommand(
      program,
      "import [file]",
      "write the entries of an export (a file, or stdin for - or none) in atomic batches; --resume continues an interrupted import",
      [
        "cellar import backup.ndjson --db data/copy.db",
        "cellar import backup.ndjson --resume --db data/copy.db",
        "cellar export --db data/app.db | cellar import --db http://127.0.0.1:8080 --token …",
      ],
    ),
  )
    .option("--resume", "skip the lines an earlier import of this file committed")
    .option("--state <file>", "where progress is recorded (default: <file>.import-state)")
    .option("--batch-size <n>", "entries per atomic commit", positiveInteger, 1000)
    .action(
      action(async (input: string | undefined, flags: ImportFlags) => {
        if (flags.batchSize > 1000)
          throw usage("--batch-size is at most 1000 (the mutations of one commit)");
        if (input !== undefined && input !== "-" && !existsSync(input)) {
          throw new CliError(EXIT.failure, `cannot read ${input}: no such file`);
        }
        return withKv(flags, (kv) => importEntries(kv, input, flags));
      }),
    );
}
