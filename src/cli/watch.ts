/**
 * `cellar watch`: one line per change to the keys given, the keys under `--prefix`, or the keys
 * a `--pattern` matches, until Ctrl-C. It starts from the database's head (or `--since`) so no
 * commit made after it printed "watching" is missed, whatever the transport.
 */
import type { Command } from "commander";
import type { KvEvent } from "../core/events/index.js";
import { ANY, type KvPattern, REST } from "../core/events/pattern.js";
import { keyToJson, valueToJson } from "../wire/json.js";
import { subcommand } from "./command.js";
import { printJson, showKey, showValue, wantsJson, writeLine } from "./output.js";
import {
  action,
  addTargetOptions,
  describeFailure,
  EXIT,
  openTarget,
  parseKey,
  type TargetFlags,
  usage,
} from "./target.js";

interface WatchFlags extends TargetFlags {
  readonly prefix?: string[];
  readonly pattern?: string[];
  readonly since?: string;
}

async function patternsOf(keys: readonly string[], flags: WatchFlags): Promise<KvPattern[]> {
  // The server's parser of pattern paths, loaded only when a pattern is given.
  const { patternFromPath } = flags.pattern ? await import("../server/routes/events.js") : {};
  const patterns: KvPattern[] = keys.map((key) => parseKey(key));
  for (const prefix of flags.prefix ?? [])
    patterns.push([...parseKey(prefix, "--prefix"), ANY, REST]);
  for (const pattern of flags.pattern ?? []) patterns.push(patternFromPath!(pattern));
  if (patterns.length === 0) throw usage("watch needs keys, --prefix or --pattern");
  return patterns;
}

function eventLine(event: KvEvent, json: boolean): Promise<void> {
  const value = event.entry?.value ?? null;
  if (json) {
    return printJson({
      type: event.type,
      key: keyToJson(event.key),
      versionstamp: event.versionstamp,
      value: event.entry ? valueToJson(value) : null,
    });
  }
  const shown = event.entry ? showValue(value) : "";
  return writeLine(
    `${event.type.padEnd(6)}  ${showKey(event.key)}  ${event.versionstamp}  ${shown}`.trimEnd(),
  );
}

export function registerWatchCommand(program: Command): void {
  addTargetOptions(
    subcommand(
      program,
      "watch [keys...]",
      "print one line per change (set, delete, expire) to the keys, the keys under --prefix or those a --pattern matches, until Ctrl-C",
      [
        "cellar watch users/ada users/bob --db data/app.db",
        "cellar watch --prefix orders --json --db http://127.0.0.1:8080 --token …",
        "cellar watch --pattern 'users/+/settings' --pattern 'audit/#' --db data/app.db",
      ],
    ),
  )
    .option("--prefix <key...>", "the keys under this prefix")
    .option(
      "--pattern <path...>",
      "a key path whose segment + matches one part and last # any number",
    )
    .option("--since <versionstamp>", "first replay the changes after this versionstamp")
    .action(
      action(async (keys: string[], flags: WatchFlags) => {
        const patterns = await patternsOf(keys, flags);
        const json = wantsJson(flags);
        const kv = await openTarget(flags);
        const since = flags.since ?? (await kv.currentVersionstamp());
        return new Promise<number>((resolve) => {
          let output = Promise.resolve();
          const stops = patterns.map((pattern) =>
            kv.subscribe(
              pattern,
              (event) => {
                output = output.then(() => eventLine(event, json));
              },
              {
                since,
                onError: (error) => {
                  const { line } = describeFailure(error);
                  process.stderr.write(`cellar: ${line}\n`);
                  end(EXIT.failure);
                },
              },
            ),
          );
          const end = (status: number) => {
            for (const stop of stops) stop();
            output.then(() => kv.close().catch(() => {})).then(() => resolve(status));
          };
          process.once("SIGINT", () => end(EXIT.ok));
          process.once("SIGTERM", () => end(EXIT.ok));
          process.stderr.write(`cellar: watching from ${since} (Ctrl-C to stop)\n`);
        });
      }),
    );
}
