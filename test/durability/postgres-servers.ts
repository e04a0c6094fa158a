/**
 * `cellar serve` processes on one PostgreSQL schema, for tests of several servers sharing a
 * database: a fresh schema per test file, each server a child process, all stopped and the
 * schema dropped after.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";

export const POSTGRES =
  process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const cli = fileURLToPath(new URL("../../src/cli/index.ts", import.meta.url));

export interface Server {
  readonly child: ChildProcess;
  readonly url: string;
}

/** A fresh schema named after `prefix`, and the database URL that opens it. */
export function freshSchema(prefix: string): { schema: string; database: string } {
  const schema = `${prefix}_${randomBytes(4).toString("hex")}`;
  return { schema, database: `${POSTGRES}?schema=${schema}` };
}

/** Starts `cellar serve` on `database` and resolves to it once it listens. */
export async function startServer(database: string): Promise<Server> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", cli, "serve", "--db", database, "--port", "0"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  for await (const line of createInterface({ input: child.stdout! })) {
    const url = /listening on (\S+)/.exec(line)?.[1];
    if (url) return { child, url };
  }
  throw new Error("the server exited before listening");
}

/** Stops the servers still running, then drops `schema`. */
export async function stopServers(servers: readonly Server[], schema: string): Promise<void> {
  for (const { child } of servers) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  }
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}
