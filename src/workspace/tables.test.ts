import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { ValidationError } from "../typed/schemas.js";
import { boolean, date, id, integer, tags, text, ytext } from "./columns.js";
import { defineWorkspace } from "./define.js";
import { bindWorkspace } from "./doc.js";

const app = defineWorkspace({
  id: "blog",
  tables: {
    posts: {
      id: id(),
      title: text(),
      content: ytext(),
      labels: tags({ default: [] }),
      views: integer({ default: 0 }),
      published: boolean({ nullable: true }),
      publishedAt: date({ nullable: true }),
    },
    people: { slug: id(), name: text() },
  },
});

const open = () => bindWorkspace(app, new Y.Doc());

describe("$tables", () => {
  it("upserts rows as Y.Maps keyed by id, with defaults for the fields not given", () => {
    const { $tables, doc } = open();
    $tables.posts.upsert({ id: "p1", title: "Hello", content: "First post" });
    const row = doc.getMap("tables").get("posts") as Y.Map<Y.Map<unknown>>;
    expect(row.get("p1")).toBeInstanceOf(Y.Map);
    expect(row.get("p1")?.get("content")).toBeInstanceOf(Y.Text);
    expect($tables.posts.getJSON("p1")).toEqual({
      id: "p1",
      title: "Hello",
      content: "First post",
      labels: [],
      views: 0,
      published: null,
      publishedAt: null,
    });
    const post = $tables.posts.get("p1");
    expect(post?.content).toBeInstanceOf(Y.Text);
    expect(post?.labels).toBeInstanceOf(Y.Array);
  });

  it("an upsert of an existing row writes only the fields given and changed", () => {
    const { $tables, doc } = open();
    $tables.posts.upsert({ id: "p1", title: "Hello", content: "Hello world", views: 3 });
    const text = $tables.posts.get("p1")?.content;
    const updates: Uint8Array[] = [];
    doc.on("update", (update: Uint8Array) => updates.push(update));
    $tables.posts.upsert({ id: "p1", title: "Hello" });
    expect(updates).toEqual([]);
    $tables.posts.upsert({ id: "p1", title: "Hello again", content: "Hello, world" });
    const post = $tables.posts.get("p1");
    expect(post?.content).toBe(text);
    expect(post?.content.toString()).toBe("Hello, world");
    expect(post?.views).toBe(3);
    expect(post?.title).toBe("Hello again");
  });

  it("refuses a row that does not validate, with every issue, changing nothing", () => {
    const { $tables, doc } = open();
    const updates: Uint8Array[] = [];
    doc.on("update", (update: Uint8Array) => updates.push(update));
    try {
      $tables.posts.upsert({ id: "", title: 3, views: "x", extra: true } as never);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).code).toBe("INVALID_VALUE");
      expect((error as ValidationError).issues.map((issue) => issue.path)).toEqual([
        ["extra"],
        ["id"],
        ["title"],
        ["views"],
      ]);
    }
    expect(() => $tables.posts.upsert({ id: "p2" } as never)).toThrow(/title: required/);
    expect(() => $tables.posts.upsert(null as never)).toThrow(ValidationError);
    expect(updates).toEqual([]);
  });

  it("gets all rows by id, deletes, and keys rows by a differently named id() field", () => {
    const { $tables } = open();
    $tables.people.upsert({ slug: "zoe", name: "Zoé" });
    $tables.people.upsert({ slug: "ada", name: "Ada" });
    expect($tables.people.getAll()).toEqual([
      { slug: "ada", name: "Ada" },
      { slug: "zoe", name: "Zoé" },
    ]);
    expect($tables.people.delete("zoe")).toBe(true);
    expect($tables.people.delete("zoe")).toBe(false);
    expect($tables.people.get("zoe")).toBeNull();
    expect($tables.people.toJSON()).toEqual([{ slug: "ada", name: "Ada" }]);
  });

  it("upserts from the JSON form", () => {
    const { $tables } = open();
    $tables.posts.upsertJSON({
      id: "p1",
      title: "T",
      publishedAt: { date: "2025-01-01T00:00:00.000Z", timeZone: "UTC" },
    });
    expect($tables.posts.get("p1")?.publishedAt?.date).toEqual(new Date("2025-01-01T00:00:00Z"));
    expect(() => $tables.posts.upsertJSON("nope")).toThrow(ValidationError);
  });

  it("skips a stored row whose required field does not validate, and reads bad optional fields as defaults", () => {
    const { $tables, doc } = open();
    $tables.posts.upsert({ id: "p1", title: "ok" });
    $tables.posts.upsert({ id: "p2", title: "ok" });
    const rows = doc.getMap("tables").get("posts") as Y.Map<Y.Map<unknown>>;
    rows.get("p1")?.set("title", 42);
    rows.get("p2")?.set("views", "many");
    expect($tables.posts.get("p1")).toBeNull();
    expect($tables.posts.getJSON("p1")).toBeNull();
    expect($tables.posts.getAll().map((post) => [post.id, post.views])).toEqual([["p2", 0]]);
  });

  it("observe() reports upserted and deleted rows, local and remote, edits inside text included", () => {
    const a = open();
    const b = open();
    a.doc.on("update", (update: Uint8Array) => Y.applyUpdate(b.doc, update, "remote"));
    const changes: unknown[] = [];
    b.$tables.posts.observe((change) => changes.push(change));
    a.$tables.posts.upsert({ id: "p1", title: "One" });
    a.$tables.posts.upsert({ id: "p2", title: "Two" });
    b.$tables.posts.get("p1")?.content.insert(0, "typed in b");
    a.$tables.posts.delete("p1");
    a.$tables.people.upsert({ slug: "ada", name: "Ada" });
    expect(changes).toEqual([
      { upserted: ["p1"], deleted: [], local: false, origin: "remote" },
      { upserted: ["p2"], deleted: [], local: false, origin: "remote" },
      { upserted: ["p1"], deleted: [], local: true, origin: null },
      { upserted: [], deleted: ["p1"], local: false, origin: "remote" },
    ]);
  });
});
