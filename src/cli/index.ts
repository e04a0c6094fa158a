#!/usr/bin/env node
/** The `cellar` command. */
import { createRequire } from "node:module";
import { Command, InvalidArgumentError, Option } from "commander";
import { KvError } from "../errors.js";
import { startServer } from "../server/serve.js";

const port = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError("a port is an integer in [0, 65535]");
  return n;
};

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };

const program = new Command("cellar")
  .description("Cellar, an ordered transactional key-value database")
  .version(version);

program
  .command("serve")
  .description("serve a database over HTTP")
  .option(
    "--db <file|url>",
    "SQLite file, :memory:, or postgres://user@host:5432/db?schema=name",
    "data/cellar.db",
  )
  .option("--host <host>", "interface to listen on", "127.0.0.1")
  .option("--port <port>", "port to listen on (0 = any free port)", port, 8080)
  .option("--tokens <file>", "JSON file of bearer tokens scoped to namespaces and access")
  .addOption(
    new Option("--namespace-from <source>", "where a request's namespace comes from")
      .choices(["token", "header", "host"])
      .default("token"),
  )
  .addOption(
    new Option("--durability <mode>", "SQLite durability")
      .choices(["full", "normal"])
      .default("full"),
  )
  .option("--insecure", "allow a non-loopback host without tokens")
  .option("--cors <origins>", "comma-separated origins whose pages may call the API (* for any)")
  .action(async (opts) => {
    try {
      const server = await startServer({
        db: opts.db,
        host: opts.host,
        port: opts.port,
        tokensFile: opts.tokens,
        namespaceFrom: opts.namespaceFrom,
        insecure: opts.insecure === true,
        ...(opts.cors && {
          cors: String(opts.cors)
            .split(",")
            .map((o: string) => o.trim()),
        }),
        openOptions: { durability: opts.durability === "normal" ? "normal" : "full" },
      });
      console.log(`cellar listening on ${server.url} (database: ${opts.db})`);
      const stop = (signal: string) => {
        console.log(`cellar: ${signal}, shutting down`);
        server.close().then(
          () => process.exit(0),
          (error) => {
            console.error(error);
            process.exit(1);
          },
        );
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    } catch (error) {
      console.error(
        error instanceof KvError ? error.message.replace(/^\[cellar\] /, "cellar: ") : error,
      );
      process.exit(1);
    }
  });

await program.parseAsync();
