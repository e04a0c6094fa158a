import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Sqlite from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import * as Y from "yjs";
import { z } from "zod";
import {
  bindWorkspace,
  boolean,
  defineWorkspace,
  id,
  integer,
  json,
  real,
  tags,
  text,
  ytext,
} from "../workspace.js";
import { mirrorToSqlite } from "./sqlite-mirror.js";

const app = defineWorkspace({
  id: "app",
  tables: {
    posts: {
      id: id(),
      title: text(),
      body: ytext(),
      views: integer({ default: 0 }),
      rating: real({ nullable: true }),
      published: boolean({ default: false }),
      labels: tags(),
    },
  },
  kv: {
    theme: text({ default: "light" }),
    betaFeatures: boolean({ default: false }),
    draft: ytext(),
    prefs: json({ schema: z.object({ fontSize: z.number() }), default: { fontSize: 14 } }),
  },
});

const dir = mkdtempSync(join(tmpdir(), "cellar-mirror-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What another program sees in the file, through its own connection. */
function read(path: string, sql: string): unknown[] {
  const db = new Sqlite(path, { readonly: true });
  try {
    return db.prepare(sql).all();
  } finally {
    db.close();
  }
}

describe("the SQLite mirror of a workspace", () => {
  it("holds the document as it is, then every change, local or received, in plain tables", async () => {
    const doc = new Y.Doc();
    const ws = bindWorkspace(app, doc);
    ws.$kv.theme.set("dark");
    ws.$tables.posts.upsert({ id: "p1", title: "Hello", body: "first", labels: ["a"] });
    const path = join(dir, "app.sqlite");
    const mirror = await mirrorToSqlite(ws, path);
    try {
      const kv = Object.fromEntries(
        (read(path, 'SELECT key, value FROM "_kv"') as { key: string; value: string }[]).map(
          (r) => [r.key, JSON.parse(r.value)],
        ),
      );
      expect(kv).toEqual({
        theme: "dark",
        betaFeatures: false,
        draft: "",
        prefs: { fontSize: 14 },
      });
      expect(
        read(path, "SELECT id, title, body, views, rating, published, labels FROM posts"),
      ).toEqual([
        {
          id: "p1",
          title: "Hello",
          body: "first",
          views: 0,
          rating: null,
          published: 0,
          labels: '["a"]',
        },
      ]);

      // A local edit inside a Y.Text, a row changed and one added.
      ws.$kv.draft.get().insert(0, "typed ");
      ws.$tables.posts.upsert({ id: "p1", title: "Hello again", published: true, rating: 4.5 });
      ws.$tables.posts.upsert({ id: "p2", title: "Second", body: "" });
      expect(read(path, `SELECT value FROM "_kv" WHERE key = 'draft'`)).toEqual([
        { value: '"typed "' },
      ]);
      expect(read(path, "SELECT id, title, published, rating FROM posts ORDER BY id")).toEqual([
        { id: "p1", title: "Hello again", published: 1, rating: 4.5 },
        { id: "p2", title: "Second", published: 0, rating: null },
      ]);

      // Changes received from another replica, and a delete.
      const other = new Y.Doc();
      Y.applyUpdate(other, Y.encodeStateAsUpdate(doc));
      const remote = bindWorkspace(app, other);
      remote.$kv.betaFeatures.set(true);
      remote.$tables.posts.delete("p2");
      Y.applyUpdate(doc, Y.encodeStateAsUpdate(other, Y.encodeStateVector(doc)));
      expect(read(path, `SELECT value FROM "_kv" WHERE key = 'betaFeatures'`)).toEqual([
        { value: "true" },
      ]);
      expect(read(path, "SELECT id FROM posts")).toEqual([{ id: "p1" }]);
    } finally {
      mirror.close();
    }
  });

  it("rebuilds its tables from the document when opened again, whatever the file held", async () => {
    const path = join(dir, "again.sqlite");
    const first = bindWorkspace(app, new Y.Doc());
    first.$tables.posts.upsert({ id: "old", title: "Old", body: "" });
    (await mirrorToSqlite(first, path)).close();
    const second = bindWorkspace(app, new Y.Doc());
    second.$tables.posts.upsert({ id: "new", title: "New", body: "" });
    const mirror = await mirrorToSqlite(second, path);
    try {
      expect(read(path, "SELECT id FROM posts")).toEqual([{ id: "new" }]);
    } finally {
      mirror.close();
    }
  });
});
