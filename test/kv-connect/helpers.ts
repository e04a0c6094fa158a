/** Runs the real Deno binary (the `deno` devDependency) against a Cellar server. */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const DENO = join(ROOT, "node_modules", ".bin", "deno");
const CLIENT = join(HERE, "deno-client.js");

/** A scratch DENO_DIR (Deno's cache) and working directory, removed by `dispose`. */
export function denoSandbox(): { dir: string; dispose: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "cellar-deno-"));
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Runs `deno-client.js` with `scenario` against the KV Connect database at `url` and returns
 * what it printed (tagged JSON). Rejects with Deno's stderr if it fails or runs past `timeoutMs`.
 */
export function runDeno(
  sandbox: string,
  url: string,
  scenario: string,
  options: { token?: string; timeoutMs?: number } = {},
): Promise<Record<string, unknown>> {
  const args = [
    "run",
    "--unstable-kv",
    "--no-prompt",
    "--no-config",
    "--no-lock",
    "--allow-net=127.0.0.1",
    "--allow-env=DENO_KV_ACCESS_TOKEN",
    CLIENT,
    url,
    scenario,
  ];
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: sandbox,
    DENO_DIR: join(sandbox, "deno-dir"),
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    DENO_KV_ACCESS_TOKEN: options.token ?? "any-token-works-on-loopback",
  };
  return new Promise((resolve, reject) => {
    execFile(
      DENO,
      args,
      { cwd: sandbox, env, timeout: options.timeoutMs ?? 20_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`deno ${scenario} failed: ${error.message}\n${stderr}`));
          return;
        }
        const line = stdout.trim().split("\n").at(-1) ?? "";
        try {
          resolve(JSON.parse(line) as Record<string, unknown>);
        } catch {
          reject(new Error(`deno ${scenario} printed no result:\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}
