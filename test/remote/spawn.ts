import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

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
