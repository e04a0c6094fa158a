/**
 * `cellar serve --workspaces <module>`: the definitions a module exports are served (sync and
 * REST), what clients wrote is stored when the server stops, and a module without definitions
 * is a usage error.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Sqlite from "better-sqlite3";
import { afterAll, expect, it } from "vitest";
import { connectDoc } from "../../src/workspace/remote.js";
import { bindWorkspace, defineWorkspace, id, integer, text, ytext } from "../../src/workspace.js";
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

it("keeps each workspace mirrored in SQL tables while it runs, with --workspace-mirror", async () => {
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  const module = join(dir, "mirrored.ts");
  writeFileSync(
    module,
    `import { defineWorkspace, id, integer, text, ytext } from ${JSON.stringify(entry)};
export const app = defineWorkspace({
  id: "shop",
  kv: { theme: text({ default: "light" }), notes: ytext() },
  tables: { items: { id: id(), name: text(), stock: integer({ default: 0 }) } },
});`,
  );
  const mirror = join(dir, "mirror");
  const served = cellarServe([
    "--db",
    join(dir, "mirrored.db"),
    "--port",
    "0",
    "--workspaces",
    module,
    "--workspace-mirror",
    mirror,
  ]);
  try {
    const url = await served.listening();
    const put = await fetch(`${url}/workspaces/shop/kv/theme`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ value: "dark" }),
    });
    expect(put.status).toBe(200);
    const row = await fetch(`${url}/workspaces/shop/tables/items/i1`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ value: { id: "i1", name: "Lamp", stock: 3 } }),
    });
    expect(row.status, await row.text()).toBe(200);
    const remote = connectDoc(url, "shop");
    await remote.whenSynced;
    const shop = defineWorkspace({
      id: "shop",
      kv: { theme: text({ default: "light" }), notes: ytext() },
      tables: { items: { id: id(), name: text(), stock: integer({ default: 0 }) } },
    });
    bindWorkspace(shop, remote.doc).$kv.notes.get().insert(0, "hello");
    await remote.flush();
    await remote.close();
    // Read by another program while the server runs.
    const db = new Sqlite(join(mirror, "shop.sqlite"), { readonly: true });
    try {
      const kv = db.prepare('SELECT key, value FROM "_kv" ORDER BY key').all();
      expect(kv).toEqual([
        { key: "notes", value: '"hello"' },
        { key: "theme", value: '"dark"' },
      ]);
      expect(db.prepare("SELECT id, name, stock FROM items").all()).toEqual([
        { id: "i1", name: "Lamp", stock: 3 },
      ]);
    } finally {
      db.close();
    }
  } finally {
    await served.stop();
  }
});
