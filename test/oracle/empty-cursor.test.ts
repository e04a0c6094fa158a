/**
 * The cursor `""` against the real `deno` binary: the same scenario (`empty-cursor-scenario.ts`)
 * runs on an in-memory Deno KV in a child process and on Cellar, and both must see the same.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openKv } from "../../src/index.js";
import { observeEmptyCursor } from "./empty-cursor-scenario.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const DENO = join(HERE, "..", "..", "node_modules", ".bin", "deno");

function runDeno(sandbox: string): Promise<Record<string, unknown>> {
  const args = ["run", "--unstable-kv", "--no-prompt", "--no-config", "--no-lock"];
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: sandbox,
    DENO_DIR: join(sandbox, "deno-dir"),
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
  };
  return new Promise((resolve, reject) => {
    execFile(
      DENO,
      [...args, join(HERE, "deno-empty-cursor.js")],
      { cwd: sandbox, env, timeout: 20_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`deno failed: ${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>);
      },
    );
  });
}

describe("the empty cursor, against the deno binary", () => {
  const sandbox = mkdtempSync(join(tmpdir(), "cellar-deno-cursor-"));
  let deno: Record<string, unknown>;

  beforeAll(async () => {
    deno = await runDeno(sandbox);
  }, 30_000);
  afterAll(() => rmSync(sandbox, { recursive: true, force: true }));

  it.each(["memory", "sqlite"])("Cellar (%s) sees what Deno KV sees", async (storage) => {
    const kv = await openKv(storage === "memory" ? ":memory:" : join(sandbox, "cellar.db"));
    try {
      expect(await observeEmptyCursor(kv)).toEqual(deno);
    } finally {
      await kv.close();
    }
  });
});
