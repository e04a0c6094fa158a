#!/usr/bin/env node
/** The `cellar` command. */
import { createRequire } from "node:module";
import { Command } from "commander";
import { pino } from "pino";
import { KvError, redactUrl } from "../errors.js";
import { createLogger } from "../observe/logging.js";
import type { AnyWorkspace } from "../workspace/define.js";
import { registerBackupCommands } from "./backup.js";
import { registerCommands } from "./commands.js";
import { type MirrorSpec, mirrorSpecs, startMirrors } from "./mirrors.js";
import { addServeOptions, ConfigError, resolveSettings, serverOptions } from "./serve-config.js";
import { loadWorkspaces } from "./workspaces.js";

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };

/** Exit status of a usage or configuration mistake, as for commander's own refusals. */
const USAGE = 2;

const program = new Command("cellar")
  .description("Cellar, an ordered transactional key-value database")
  .version(version)
  // A refused argument is a usage error (2), told apart from a server that failed to run (1).
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : USAGE));

const serve = program
  .command("serve")
  .description(
    "serve a database over HTTP; each setting comes from its flag, else its environment variable, else the --config file, else its default",
  );

addServeOptions(serve).action(async (flags: Record<string, unknown>) => {
  let options: ReturnType<typeof serverOptions>;
  let mirrors: MirrorSpec[];
  try {
    options = serverOptions(resolveSettings(flags, process.env));
    mirrors = options.mirrors === undefined ? [] : mirrorSpecs(options.mirrors);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`cellar: ${error.message}`);
    process.exit(USAGE);
  }
  // Asynchronous: a slow reader of stdout (a pipe to a log collector) must not stall the server;
  // what is still buffered is written out before the process exits.
  const destination = pino.destination({ dest: 1, sync: false });
  const { logLevel, workspacesModule, mirrors: _, ...served } = options;
  const logger = createLogger({ level: logLevel, destination });
  const exit = (status: number) => {
    destination.flushSync();
    process.exit(status);
  };
  let workspaces: AnyWorkspace[] | undefined;
  try {
    workspaces =
      workspacesModule === undefined ? undefined : await loadWorkspaces(workspacesModule);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`cellar: ${error.message}`);
    process.exit(USAGE);
  }
  try {
    // Loaded here, not at startup: the data commands (get, list, export…) never serve.
    const { startServer } = await import("../server/serve.js");
    const server = await startServer({ ...served, logger, ...(workspaces && { workspaces }) });
    // Mirrors follow the database in the background, retrying while PostgreSQL is away.
    const closeMirrors = startMirrors(server.kv, mirrors, logger);
    console.log(`cellar listening on ${server.url} (database: ${redactUrl(options.db)})`);
    const stop = (signal: string) => {
      console.log(`cellar: ${signal}, shutting down`);
      closeMirrors()
        .then(() => server.close())
        .then(
          () => exit(0),
          (error) => {
            console.error(error);
            exit(1);
          },
        );
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  } catch (error) {
    if (!(error instanceof KvError)) {
      console.error(error);
      process.exit(1);
    }
    console.error(error.message.replace(/^\[cellar\] /, "cellar: "));
    // A setting the server refuses (a limit out of range, a bad tokens file) is a usage error.
    process.exit(error.code === "INVALID_ARGUMENT" ? USAGE : 1);
  }
});

registerCommands(program);

registerBackupCommands(program);

await program.parseAsync();
