/**
 * `cellar serve --workspaces <module>`: the definitions a module exports are served (sync and
 * REST), what clients wrote is stored when the server stops, and a module without definitions
 * is a usage error.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { connectDoc } from "../../src/workspace/remote.js";
import { cellarServe } from "../cli/serve.js";

const dir = mkdtempSync(join(tmpdir(), "cellar-ws-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const entry = new URL("../../src/workspace.ts", import.meta.url).href;

it("serves the workspaces a TypeScript module exports, and stores them across a restart", async () => {
  // As in a project of ESM modules, where tsx loads a .ts module as ESM.
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  const module = join(dir, "workspaces.ts");
  writeFileSync(
    module,
    `import { defineWorkspace, text, ytext } from ${JSON.stringify(entry)};
export const app = defineWorkspace({ id: "app", kv: { theme: text({ default: "light" }), notes: ytext() } });
export const more = [defineWorkspace({ id: "notes", kv: { body: ytext() } })];
export const unrelated = { id: "x" };`,
  );
  const db = join(dir, "cli.db");
  const args = ["--db", db, "--port", "0", "--workspaces", module];
  const first = cellarServe(args);
  try {
    const url = await first.listening();
    const remote = connectDoc(url, "app");
    await remote.whenSynced;
    remote.doc.getMap("kv").set("theme", "dark");
    await remote.flush();
    await remote.close();
    const other = await fetch(`${url}/workspaces/notes/kv`);
    expect(await other.json()).toEqual({ data: { body: "" } });
  } finally {
    await first.stop();
  }
  expect(await first.exited).toBe(0);

  const second = cellarServe(args);
  try {
    const url = await second.listening();
    const response = await fetch(`${url}/workspaces/app/kv/theme`);
    expect(await response.json()).toEqual({ data: "dark" });
  } finally {
    await second.stop();
  }
});

it("refuses a module that exports no workspace definition", async () => {
  const module = join(dir, "empty.mjs");
  writeFileSync(module, "export const nothing = 1;");
  const served = cellarServe(["--db", ":memory:", "--port", "0", "--workspaces", module]);
  expect(await served.exited).toBe(2);
  expect(served.output().stderr).toMatch(/exports no workspace definition/);
});
