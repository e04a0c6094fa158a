/** `cellar serve` as a child process, for tests of its settings and startup. */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = join(ROOT, "src/cli/index.ts");

export interface Served {
  readonly child: ChildProcess;
  /** The exit code, once the process ends. */
  readonly exited: Promise<number | null>;
  /** The URL the server prints once it listens; fails if it exits first. */
  listening(): Promise<string>;
  output(): { stdout: string; stderr: string };
  stop(): Promise<void>;
}

/**
 * Runs `cellar serve args` with `env` added to a clean environment (none of the variables
 * `cellar serve` reads is inherited from the test's own).
 */
export function cellarServe(args: string[], env: Record<string, string> = {}): Served {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !/^(CELLAR_|DATABASE_URL$|PORT$|HOST$)/.test(name),
    ),
  );
  const child = spawn(process.execPath, ["--import", "tsx", CLI, "serve", ...args], {
    cwd: ROOT,
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = once(child, "exit").then(([code]) => code as number | null);
  return {
    child,
    exited,
    async listening() {
      for (;;) {
        const match = /cellar listening on (https?:\/\/\S+)/.exec(stdout);
        if (match) return match[1]!;
        if (child.exitCode !== null) throw new Error(`the server did not start: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    output: () => ({ stdout, stderr }),
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await exited;
    },
  };
}
