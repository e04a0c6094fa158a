/**
 * React is an optional peer dependency: `cellar` and `cellar/client` load and work where it is
 * not installed, and only `cellar/react` needs it. Each case runs in a fresh process whose
 * module resolution refuses `react` and `react-dom`, as an application without them would.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = new URL("../..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "cellar-no-react-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

writeFileSync(
  join(dir, "hooks.mjs"),
  `export async function resolve(specifier, context, next) {
  if (/^react(-dom)?($|\\/)/.test(specifier)) throw new Error("Cannot find package '" + specifier + "'");
  return next(specifier, context);
}`,
);
writeFileSync(
  join(dir, "register.mjs"),
  `import { register } from "node:module"; register("./hooks.mjs", import.meta.url);`,
);

/** Imports `entry` (a file of src/) without React and runs `body`; resolves to what it printed. */
async function withoutReact(entry: string, body: string): Promise<string> {
  const url = new URL(`../../src/${entry}`, import.meta.url).href;
  const script = `const m = await import(${JSON.stringify(url)}); ${body}`;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", join(dir, "register.mjs"), "--import", "tsx", "--input-type=module", "-e", script],
    { cwd: ROOT },
  );
  return stdout.trim();
}

describe("without react installed", () => {
  it("cellar loads and opens a database", async () => {
    const out = await withoutReact(
      "index.ts",
      "const kv = await m.openKv(); await kv.set(['a'], 1); console.log((await kv.get(['a'])).value); await kv.close();",
    );
    expect(out).toBe("1");
  });

  it("cellar/client loads and opens a database", async () => {
    const out = await withoutReact(
      "client.ts",
      "const kv = await m.openKv(); await kv.set(['a'], 2); console.log((await kv.get(['a'])).value); await kv.close();",
    );
    expect(out).toBe("2");
  });

  it("cellar/react is the entry that needs it", async () => {
    await expect(withoutReact("react.ts", "console.log('loaded')")).rejects.toThrow(
      /Cannot find package 'react'/,
    );
  });
});
