/**
 * `import "cellar"` loads no driver's dependencies: better-sqlite3 (a native module), pg and
 * undici load only when `openKv` is given a path that needs them; pino and prom-client only
 * with `cellar/observe`. Each case runs in a fresh process, where Node's module cache shows
 * what was loaded.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const ENTRY = new URL("../../src/index.ts", import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), "cellar-lazy-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HEAVY = ["better-sqlite3", "pg", "undici", "pino", "prom-client"] as const;

/** Runs `body` after importing the entry point; resolves to the heavy packages Node loaded. */
async function loadedAfter(body: string): Promise<string[]> {
  const script = `
    import { createRequire } from "node:module";
    const { openKv } = await import(${JSON.stringify(ENTRY)});
    ${body}
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    const heavy = ${JSON.stringify(HEAVY)}.filter((name) =>
      loaded.some((path) => path.includes(\`/node_modules/\${name}/\`)));
    console.log(JSON.stringify(heavy));
  `;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script],
    { cwd: new URL("../..", import.meta.url).pathname },
  );
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as string[];
}

describe("what importing cellar loads", () => {
  it("loads none of the drivers' dependencies on import", async () => {
    expect(await loadedAfter("")).toEqual([]);
  });

  it("loads none of them for a database in memory", async () => {
    expect(
      await loadedAfter("const kv = await openKv(); await kv.set(['a'], 1); await kv.close();"),
    ).toEqual([]);
  });

  it("loads better-sqlite3, and only it, for a SQLite file", async () => {
    const file = JSON.stringify(join(dir, "lazy.db"));
    expect(await loadedAfter(`const kv = await openKv(${file}); await kv.close();`)).toEqual([
      "better-sqlite3",
    ]);
  });
});
