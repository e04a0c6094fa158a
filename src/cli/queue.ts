/**
 * `cellar queue stats|dlq`: what a namespace's queues hold, and its dead-letter queues
 * (list, requeue, purge). See README "Queues".
 */
import type { Command } from "commander";
import { decodeKey } from "../codec/key.js";
import type { Kv } from "../core/kv.js";
import { coreOf } from "../core/surface.js";
import { valueToJson } from "../wire/json.js";
import { subcommand } from "./command.js";
import { printJson, printTable, showTime, showValue, wantsJson, writeLine } from "./output.js";
import {
  action,
  addTargetOptions,
  CliError,
  EXIT,
  positiveInteger,
  type TargetFlags,
  usage,
  withKv,
} from "./target.js";

const MAX_QUEUES = 1000;

interface QueueFlags extends TargetFlags {
  readonly queue?: string;
}

/** The names of the namespace's queues that hold any message. */
async function queueNames(kv: Kv): Promise<string[]> {
  const { core, keyspace } = coreOf(kv);
  const stored = await core.listQueues(
    { start: keyspace.prefix, end: keyspace.end },
    keyspace,
    MAX_QUEUES,
  );
  return stored.map((bytes) => String(decodeKey(bytes.subarray(keyspace.prefix.length))[0]));
}

async function stats(kv: Kv, flags: QueueFlags) {
  const names = flags.queue === undefined ? await queueNames(kv) : [flags.queue];
  const rows = await Promise.all(
    names.map(async (name) => ({ name, ...(await kv.queue(name).stats()) })),
  );
  if (wantsJson(flags)) {
    for (const row of rows) await printJson(row);
  } else {
    await printTable(
      ["QUEUE", "PENDING", "DELAYED", "IN FLIGHT", "DEAD", "NEXT"],
      rows.map((r) => [
        r.name,
        String(r.pending),
        String(r.delayed),
        String(r.inFlight),
        String(r.dead),
        showTime(r.nextAt),
      ]),
    );
  }
  return EXIT.ok;
}

async function deadList(kv: Kv, flags: QueueFlags & { limit?: number; after?: string }) {
  const dead = await kv.queue(flags.queue ?? "default").dlq.list({
    limit: flags.limit ?? 100,
    ...(flags.after !== undefined && { after: flags.after }),
  });
  if (wantsJson(flags)) {
    for (const m of dead) await printJson({ ...m, value: valueToJson(m.value) });
    return EXIT.ok;
  }
  await printTable(
    ["ID", "ATTEMPTS", "FAILED", "ERROR", "VALUE"],
    dead.map((m) => [
      m.id,
      String(m.attempts),
      showTime(m.failedAt),
      m.error ?? "-",
      showValue(m.value),
    ]),
  );
  return EXIT.ok;
}

async function report(flags: TargetFlags, verb: string, count: number) {
  if (wantsJson(flags)) await printJson({ ok: true, [verb]: count });
  else await writeLine(`${verb} ${count}`);
}

const queueOption = (command: Command, what: string) =>
  command.option("--queue <name>", `${what} (default: default)`);

export function registerQueueCommands(program: Command): void {
  const queue = subcommand(program, "queue", "inspect queues and their dead-letter queues", [
    "cellar queue stats --db data/app.db",
    "cellar queue dlq list --queue emails --db data/app.db",
    "cellar queue dlq requeue --all --queue emails --db data/app.db",
  ]);

  addTargetOptions(
    subcommand(queue, "stats", "pending, delayed, in-flight and dead messages of each queue", [
      "cellar queue stats --db data/app.db",
      "cellar queue stats --queue emails --json --db http://127.0.0.1:8080 --token …",
    ]),
  )
    .option("--queue <name>", "this queue only (default: every queue holding a message)")
    .action(action(async (flags: QueueFlags) => withKv(flags, (kv) => stats(kv, flags))));

  const dlq = subcommand(queue, "dlq", "the dead-letter queue: list, requeue, purge", [
    "cellar queue dlq list --db data/app.db",
  ]);

  queueOption(
    addTargetOptions(
      subcommand(dlq, "list", "dead messages, oldest failure first", [
        "cellar queue dlq list --queue emails --limit 20 --db data/app.db",
      ]),
    ),
    "the queue",
  )
    .option("--limit <n>", "at most this many (default 100)", positiveInteger)
    .option("--after <id>", "those after this message id")
    .action(action(async (flags) => withKv(flags, (kv) => deadList(kv, flags))));

  queueOption(
    addTargetOptions(
      subcommand(dlq, "requeue [id]", "put a dead message (or --all) back with fresh deliveries", [
        "cellar queue dlq requeue 0192f1c2-… --queue emails --db data/app.db",
        "cellar queue dlq requeue --all --db data/app.db",
      ]),
    ),
    "the queue",
  )
    .option("--all", "every dead message of the queue")
    .action(
      action(async (id: string | undefined, flags: QueueFlags & { all?: boolean }) => {
        if ((id === undefined) === (flags.all !== true)) {
          throw usage("dlq requeue takes either a message id or --all");
        }
        return withKv(flags, async (kv) => {
          const dead = kv.queue(flags.queue ?? "default").dlq;
          const count = id === undefined ? await dead.requeue() : await dead.requeue(id);
          if (id !== undefined && count === 0) {
            throw new CliError(
              EXIT.notFound,
              `no dead message ${id} in queue ${flags.queue ?? "default"}`,
            );
          }
          await report(flags, "requeued", count);
          return EXIT.ok;
        });
      }),
    );

  queueOption(
    addTargetOptions(
      subcommand(dlq, "purge", "delete every dead message of the queue", [
        "cellar queue dlq purge --queue emails --db data/app.db",
      ]),
    ),
    "the queue",
  ).action(
    action(async (flags: QueueFlags) =>
      withKv(flags, async (kv) => {
        await report(flags, "purged", await kv.queue(flags.queue ?? "default").dlq.purge());
        return EXIT.ok;
      }),
    ),
  );
}
