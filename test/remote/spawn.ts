import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll } from "vitest";
import { assertPositiveInteger, resolveLimits } from "../../src/core/limits.js";
import type { Kv, OpenKvOptions } from "../../src/index.js";
import type { KvTarget } from "../../src/testing/index.js";

/** Starts the spawner process and returns a function that asks it for a fresh server. */
export async function startSpawner(): Promise<{
  spawnServer(options?: object): Promise<string>;
  stop(): Promise<void>;
}> {
  const script = fileURLToPath(new URL("./spawner.ts", import.meta.url));
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  const control = line.toString().trim();
  return {
    async spawnServer(options = {}) {
      const res = await fetch(`${control}/spawn`, {
        method: "POST",
        body: JSON.stringify(options),
      });
      if (!res.ok) throw new Error(`spawner: ${await res.text()}`);
      return ((await res.json()) as { url: string }).url;
    },
    async stop() {
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

/**
 * A conformance target on a Cellar server: each database a fresh server process (from one
 * spawner, started before the suite and stopped after it), opened with `open` — `cellar`'s or
 * `cellar/client`'s `openKv`.
 */
export function remoteTarget(
  name: string,
  open: (url: string, options: OpenKvOptions) => Promise<Kv>,
): KvTarget {
  let spawner: Awaited<ReturnType<typeof startSpawner>>;
  beforeAll(async () => {
    spawner = await startSpawner();
  });
  afterAll(() => spawner.stop());
  return {
    name,
    open: async (options = {}) => {
      const { limits, history, sweepInterval, changeLog } = options;
      // Refuse bad options here as openKv would, before the server process is asked for them.
      resolveLimits(limits);
      assertPositiveInteger("history.depth", history?.depth, 1000);
      return open(
        await spawner.spawnServer({ limits, history, sweepInterval, changeLog }),
        options,
      );
    },
  };
}
