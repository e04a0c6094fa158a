/** The `cellar` command's own surface: version, help and refused arguments. */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const CLI = new URL("../../src/cli/index.ts", import.meta.url).pathname;
const { version } = JSON.parse(
  readFileSync(new URL("../../package.json", import.meta.url), "utf8"),
) as { version: string };

async function cellar(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [
      "--import",
      "tsx",
      CLI,
      ...args,
    ]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("the cellar command", () => {
  it("prints the package's version", async () => {
    const run = await cellar("--version");
    expect(run).toMatchObject({ code: 0 });
    expect(run.stdout.trim()).toBe(version);
  });

  it("lists its commands and the options of serve", async () => {
    expect((await cellar("--help")).stdout).toMatch(/serve \[options\]/);
    const serve = await cellar("serve", "--help");
    for (const flag of ["--db", "--port", "--host", "--tokens", "--insecure"]) {
      expect(serve.stdout).toContain(flag);
    }
  });

  it("refuses a bad port and an unreadable tokens file, naming the problem", async () => {
    const port = await cellar("serve", "--port", "http");
    expect(port.code).not.toBe(0);
    expect(port.stderr).toMatch(/--port.*'http' is invalid.*integer in \[0, 65535\]/);
    const tokens = await cellar(
      "serve",
      "--db",
      ":memory:",
      "--tokens",
      "/nonexistent/tokens.json",
    );
    expect(tokens.code).not.toBe(0);
    expect(tokens.stderr).toContain("cannot read tokens file /nonexistent/tokens.json");
  });
});
