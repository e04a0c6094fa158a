/**
 * `cellar atomic`: the checks and mutations of one atomic commit, from a JSON document on stdin
 * or in `--file`, in the shape `POST /api/atomic` takes.
 */
import type { Command } from "commander";
import { subcommand } from "./command.js";
import { printJson, wantsJson, writeLine } from "./output.js";
import {
  action,
  addTargetOptions,
  CliError,
  EXIT,
  parseJson,
  readInput,
  type TargetFlags,
  usage,
  withKv,
} from "./target.js";

/**
 * The document, checked before the database is opened. The server's schema and parser are
 * loaded here, not at startup: the other commands need neither.
 */
async function atomicBody(text: string) {
  const { AtomicBody } = await import("../server/schemas.js");
  const parsed = AtomicBody.safeParse(parseJson(text, "the atomic document"));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
    throw usage(`the atomic document: ${where}${issue.message}`);
  }
  return parsed.data;
}

export function registerAtomicCommand(program: Command): void {
  addTargetOptions(
    subcommand(
      program,
      "atomic",
      'commit checks and mutations all or nothing, from JSON on stdin or --file: { "checks": [{ "key", "versionstamp" }], "mutations": [{ "type", "key", "value"?, "expireIn"? }] } (types set, delete, sum, min, max, append, prepend); a failed check writes nothing and exits with status 1',
      [
        `echo '{"mutations": [{"type": "set", "key": ["users", "ada"], "value": {"name": "Ada"}}, {"type": "sum", "key": ["stats", "users"], "value": {"$u64": "1"}}]}' | cellar atomic --db data/app.db`,
        `echo '{"checks": [{"key": ["users", "ada"], "versionstamp": null}], "mutations": [{"type": "set", "key": ["users", "ada"], "value": 1}]}' | cellar atomic --db data/app.db`,
        "cellar atomic --file ops.json --db http://127.0.0.1:8080 --token …",
      ],
    ),
  )
    .option("--file <path>", "read the document from this file rather than stdin")
    .action(
      action(async (flags: TargetFlags & { file?: string }) => {
        const body = await atomicBody(readInput(flags.file, "the atomic document"));
        const { addAtomicBody } = await import("../server/routes/atomic.js");
        return withKv(flags, async (kv) => {
          const op = kv.atomic();
          addAtomicBody(op, body);
          const result = await op.commit();
          if (!result.ok) throw new CliError(EXIT.failure, "a check failed; nothing was written");
          if (wantsJson(flags)) {
            await printJson({ ok: true, versionstamp: result.versionstamp, uuids: result.uuids });
          } else {
            await writeLine(`OK ${result.versionstamp}`);
            for (const uuid of result.uuids) await writeLine(`uuid ${uuid}`);
          }
          return EXIT.ok;
        });
      }),
    );
}
