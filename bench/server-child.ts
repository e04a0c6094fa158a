/**
 * The HTTP servers bench/server.ts measures, each in its own process so that the load generator
 * never shares their event loop:
 *
 *   server-child.ts cellar <dir> <full|normal>   a Cellar server on a populated SQLite file
 *   server-child.ts bare <body>                  node:http answering `body` to every request
 *
 * A child sends `{ url }` once it listens, and on "stop" (or when the parent goes away) closes
 * and exits normally, so that a `--cpu-prof` profile gets written.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openKv } from "../src/index.js";
import { startServer } from "../src/server/index.js";
import { forkChild } from "./child.js";
import { populate, VALUES } from "./workload.js";

/** The key `GET /api/keys/users/1` reads: a plain path segment is a string. */
const SERVED_KEY = ["users", "1"] as const;
export const SERVED_PATH = "/api/keys/users/1";

export interface ChildServer {
  readonly url: string;
  /** Asks the child to close, and kills it if it has not exited within 10 s. */
  stop(): Promise<void>;
}

/** Starts a child; `execArgv` is added to this process's flags (e.g. `--cpu-prof`). */
export async function startChild(
  args: readonly string[],
  execArgv: readonly string[] = [],
): Promise<ChildServer> {
  const child = await forkChild<{ url: string }>(fileURLToPath(import.meta.url), args, execArgv);
  return { url: child.ready.url, stop: child.stop };
}

async function cellar(dir: string, durability: "full" | "normal") {
  const kv = await openKv(join(dir, "server.db"), { durability });
  await populate((key, value) => kv.set(key, value));
  await kv.set([...SERVED_KEY], VALUES[1]!);
  return startServer({ db: kv, port: 0, host: "127.0.0.1" });
}

async function bare(body: string) {
  const headers = {
    "content-type": "application/json; charset=UTF-8",
    "content-length": Buffer.byteLength(body),
  };
  const server = createServer((_, res) => {
    res.writeHead(200, headers);
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function child([kind, arg, durability]: string[]): Promise<void> {
  const server =
    kind === "cellar"
      ? await cellar(arg!, durability === "normal" ? "normal" : "full")
      : await bare(arg!);
  const shutdown = async () => {
    await server.close();
    process.exit(0);
  };
  process.once("message", shutdown);
  process.once("disconnect", shutdown);
  process.send!({ url: server.url });
}

if (process.argv[2] === "--child") await child(process.argv.slice(3));
