/**
 * `cellar get|set|delete|list|count|history`: one call of the `Kv` API each, on the database
 * `--db` names, printed as a table on a terminal and as NDJSON otherwise.
 */
import { type Command, Option } from "commander";
import type { KvKey } from "../codec/key.js";
import type { Kv } from "../core/kv.js";
import type { KvEntry, KvListSelector } from "../core/types.js";
import type { KvWhere } from "../core/where/compile.js";
import { keyToJson, valueToJson } from "../wire/json.js";
import { subcommand } from "./command.js";
import {
  entryToJson,
  printJson,
  printTable,
  showKey,
  showTime,
  showValue,
  wantsJson,
  writeLine,
} from "./output.js";
import {
  action,
  addTargetOptions,
  CliError,
  EXIT,
  parseKey,
  parseValue,
  parseWhere,
  positiveInteger,
  readInput,
  type TargetFlags,
  usage,
  withKv,
} from "./target.js";

interface SelectorFlags {
  readonly prefix?: string;
  readonly start?: string;
  readonly end?: string;
  readonly where?: string;
}

/** The selector of `--prefix`, `--start`, `--end`: the whole namespace when none is given. */
export function selectorOf(flags: SelectorFlags): KvListSelector {
  const prefix = flags.prefix === undefined ? undefined : parseKey(flags.prefix, "--prefix");
  const start = flags.start === undefined ? undefined : parseKey(flags.start, "--start");
  const end = flags.end === undefined ? undefined : parseKey(flags.end, "--end");
  if (prefix && start && end) throw usage("give --prefix with --start or --end, not both");
  if (start && end && !prefix) return { start, end };
  const base = prefix ?? [];
  if (start) return { prefix: base, start };
  if (end) return { prefix: base, end };
  return { prefix: base };
}

const whereOf = (flags: SelectorFlags): { where?: KvWhere } =>
  flags.where === undefined ? {} : { where: parseWhere(flags.where) as KvWhere };

function addSelectorOptions(command: Command): Command {
  return command
    .option("--prefix <key>", "keys under this prefix (a key path or a JSON array)")
    .option("--start <key>", "from this key, included")
    .option("--end <key>", "up to this key, excluded")
    .option("--where <json>", "only values matching this filter (README: Where filters)");
}

function entryRows(entry: KvEntry): string[][] {
  const rows = [
    ["key", showKey(entry.key)],
    ["value", showValue(entry.value)],
    ["versionstamp", entry.versionstamp],
  ];
  const m = entry.metadata;
  if (m) {
    rows.push(
      ["version", String(m.version)],
      ["createdAt", showTime(m.createdAt)],
      ["updatedAt", showTime(m.updatedAt)],
      ["expiresAt", showTime(m.expiresAt)],
      ["tags", m.tags.join(", ")],
      ["modifiedBy", m.modifiedBy ?? "-"],
      ["comment", m.comment ?? "-"],
      ["dataHash", m.dataHash],
    );
  }
  return rows;
}

async function get(kv: Kv, key: KvKey, flags: TargetFlags & { metadata?: boolean }) {
  const entry = await kv.get(key, { metadata: flags.metadata === true });
  if (entry.versionstamp === null) throw new CliError(EXIT.notFound, `${showKey(key)}: not found`);
  if (wantsJson(flags)) await printJson(entryToJson(entry));
  else await printTable(["field", "value"], entryRows(entry));
  return EXIT.ok;
}

interface SetFlags extends TargetFlags {
  readonly expireIn?: number;
  readonly tag?: string[];
  readonly modifiedBy?: string;
  readonly comment?: string;
}

async function set(kv: Kv, key: KvKey, value: unknown, flags: SetFlags) {
  const result = await kv.set(key, value, {
    ...(flags.expireIn !== undefined && { expireIn: flags.expireIn }),
    ...(flags.tag && { tags: flags.tag }),
    ...(flags.modifiedBy !== undefined && { modifiedBy: flags.modifiedBy }),
    ...(flags.comment !== undefined && { comment: flags.comment }),
  });
  if (wantsJson(flags)) await printJson({ ok: true, versionstamp: result.versionstamp });
  else await writeLine(`OK ${result.versionstamp}`);
  return EXIT.ok;
}

interface ListFlags extends TargetFlags, SelectorFlags {
  readonly limit?: number;
  readonly reverse?: boolean;
  readonly metadata?: boolean;
  readonly keysOnly?: boolean;
}

async function list(
  kv: Kv,
  selector: KvListSelector,
  where: { where?: KvWhere },
  flags: ListFlags,
) {
  const entries = kv.list(selector, {
    ...(flags.limit !== undefined && { limit: flags.limit }),
    ...(flags.reverse && { reverse: true }),
    ...(flags.metadata && { metadata: true }),
    ...where,
    batchSize: 1000,
  });
  if (wantsJson(flags)) {
    for await (const entry of entries) {
      await printJson(
        flags.keysOnly
          ? { key: keyToJson(entry.key), versionstamp: entry.versionstamp }
          : entryToJson(entry),
      );
    }
    return EXIT.ok;
  }
  // A table needs its column widths, so a terminal listing is gathered first; pipes stream.
  const rows: string[][] = [];
  for await (const entry of entries) {
    const row = [showKey(entry.key), entry.versionstamp];
    if (flags.metadata)
      row.push(String(entry.metadata?.version), showTime(entry.metadata?.expiresAt));
    if (!flags.keysOnly) row.push(showValue(entry.value));
    rows.push(row);
  }
  const header = ["KEY", "VERSIONSTAMP"];
  if (flags.metadata) header.push("VERSION", "EXPIRES");
  if (!flags.keysOnly) header.push("VALUE");
  await printTable(header, rows);
  process.stderr.write(`(${rows.length} ${rows.length === 1 ? "entry" : "entries"})\n`);
  return EXIT.ok;
}

async function history(kv: Kv, key: KvKey, flags: TargetFlags & { limit?: number }) {
  const revisions = await kv.history(key, flags.limit === undefined ? {} : { limit: flags.limit });
  if (revisions.length === 0) throw new CliError(EXIT.notFound, `${showKey(key)}: no history`);
  if (wantsJson(flags)) {
    for (const r of revisions) {
      const { value, ...rest } = r;
      await printJson({ ...rest, ...("value" in r && { value: valueToJson(value) }) });
    }
    return EXIT.ok;
  }
  await printTable(
    ["VERSION", "VERSIONSTAMP", "TIME", "BY", "COMMENT", "HASH", "VALUE"],
    revisions.map((r) => [
      String(r.version),
      r.versionstamp,
      showTime(r.timestamp),
      r.modifiedBy ?? "-",
      r.comment ?? "-",
      r.dataHash === null ? "(deleted)" : r.dataHash.slice(0, 12),
      "value" in r ? showValue(r.value) : "-",
    ]),
  );
  return EXIT.ok;
}

/** Registers the commands that read and write entries. */
export function registerDataCommands(program: Command): void {
  addTargetOptions(
    subcommand(program, "get <key>", "print one entry; exit status 3 when the key is absent", [
      "cellar get users/ada --db data/app.db",
      `cellar get '["users", 42]' --db postgres://localhost/app --metadata`,
      "CELLAR_URL=http://127.0.0.1:8080 CELLAR_TOKEN=… cellar get users/~n:42 --json",
    ]),
  )
    .option("--metadata", "also print version, times, tags, modifiedBy, comment and dataHash")
    .action(
      action(async (key: string, flags: TargetFlags & { metadata?: boolean }) => {
        const parsed = parseKey(key);
        return withKv(flags, (kv) => get(kv, parsed, flags));
      }),
    );

  addTargetOptions(
    subcommand(
      program,
      "set <key> <value>",
      'write one entry; the value is JSON (a string is "quoted"), with tags for what JSON lacks: {"$bigint":"1"}, {"$date":"…"}, {"$map":[…]}… (- reads it from stdin)',
      [
        `cellar set users/ada '{"name": "Ada", "langs": {"$set": ["en"]}}' --db data/app.db`,
        `cellar set sessions/abc '"token"' --expire-in 60000 --db data/app.db`,
        `cellar set counters/visits '{"$u64": "0"}' --db http://127.0.0.1:8080 --token …`,
        "cat big.json | cellar set docs/1 - --db data/app.db",
      ],
    ),
  )
    .option("--expire-in <ms>", "delete the entry after this many milliseconds", positiveInteger)
    .option("--tag <tag...>", "tags stored in the entry's metadata")
    .option("--modified-by <who>", "recorded in the entry's metadata and history")
    .option("--comment <text>", "recorded in the entry's metadata and history")
    .action(
      action(async (key: string, value: string, flags: SetFlags) => {
        const parsed = parseKey(key);
        const decoded = parseValue(value === "-" ? readInput("-", "the value") : value);
        return withKv(flags, (kv) => set(kv, parsed, decoded, flags));
      }),
    );

  addTargetOptions(
    subcommand(
      program,
      "delete <key>",
      "delete one entry (deleting an absent key is not an error)",
      ["cellar delete users/ada --db data/app.db"],
    ),
  ).action(
    action(async (key: string, flags: TargetFlags) => {
      const parsed = parseKey(key);
      return withKv(flags, async (kv) => {
        await kv.delete(parsed);
        if (wantsJson(flags)) await printJson({ ok: true });
        else await writeLine("OK");
        return EXIT.ok;
      });
    }),
  );

  addSelectorOptions(
    addTargetOptions(
      subcommand(program, "list", "list entries in key order (the whole namespace by default)", [
        "cellar list --prefix users --db data/app.db",
        "cellar list --prefix users --start users/m --limit 10 --reverse --db data/app.db",
        `cellar list --prefix users --where '{"age": {"$gte": 18}}' --json --db data/app.db`,
      ]),
    ),
  )
    .option("--limit <n>", "at most this many entries", positiveInteger)
    .option("--reverse", "in descending key order")
    .option("--metadata", "with each entry's metadata")
    .option("--keys-only", "keys and versionstamps, without values")
    .action(
      action(async (flags: ListFlags) => {
        const selector = selectorOf(flags);
        const where = whereOf(flags);
        return withKv(flags, (kv) => list(kv, selector, where, flags));
      }),
    );

  addSelectorOptions(
    addTargetOptions(
      subcommand(program, "count", "count live entries (that match --where)", [
        "cellar count --prefix users --db data/app.db",
        `cellar count --prefix orders --where '{"status": "open"}' --db data/app.db`,
      ]),
    ),
  ).action(
    action(async (flags: TargetFlags & SelectorFlags) => {
      const selector = selectorOf(flags);
      const where = whereOf(flags);
      return withKv(flags, async (kv) => {
        await writeLine(String(await kv.count(selector, where)));
        return EXIT.ok;
      });
    }),
  );

  addTargetOptions(
    subcommand(
      program,
      "history <key>",
      "print a key's revisions, newest first; exit status 3 when it has none",
      ["cellar history users/ada --limit 5 --db data/app.db"],
    ),
  )
    .addOption(new Option("--limit <n>", "at most this many revisions").argParser(positiveInteger))
    .action(
      action(async (key: string, flags: TargetFlags & { limit?: number }) => {
        const parsed = parseKey(key);
        return withKv(flags, (kv) => history(kv, parsed, flags));
      }),
    );
}
