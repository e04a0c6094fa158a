/**
 * Two or three documents that exchange updates (no network) converge after concurrent edits,
 * and lose none of them: text and tags merge, plain keys settle on one value everywhere.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { id, integer, select, tags, text, ytext } from "./columns.js";
import { defineWorkspace } from "./define.js";
import { bindWorkspace } from "./doc.js";

const app = defineWorkspace({
  id: "app",
  tables: {
    posts: {
      id: id(),
      title: text(),
      body: ytext(),
      labels: tags(),
      views: integer({ default: 0 }),
    },
  },
  kv: {
    theme: select({ options: ["light", "dark", "system"], default: "light" }),
    count: integer({ default: 0 }),
    notes: ytext(),
    labels: tags(),
    motd: ytext({ default: "Welcome" }),
  },
});

const replica = () => bindWorkspace(app, new Y.Doc());
type Replica = ReturnType<typeof replica>;

/** Sends each document's state to every other one. */
function sync(...replicas: Replica[]): void {
  const states = replicas.map((r) => Y.encodeStateAsUpdate(r.doc));
  for (const [i, r] of replicas.entries()) {
    for (const [j, state] of states.entries()) if (i !== j) Y.applyUpdate(r.doc, state, "peer");
  }
}

const snapshot = (r: Replica) => ({ kv: r.$kv.$toJSON(), posts: r.$tables.posts.toJSON() });

describe("concurrent edits converge", () => {
  it("to the same ytext, created on both sides before they ever met, keep both edits", () => {
    const a = replica();
    const b = replica();
    a.$kv.notes.get().insert(0, "alpha ");
    b.$kv.notes.set("beta");
    sync(a, b);
    expect(a.$kv.notes.toJSON()).toBe(b.$kv.notes.toJSON());
    expect(a.$kv.notes.toJSON()).toContain("alpha ");
    expect(a.$kv.notes.toJSON()).toContain("beta");
    expect(a.$kv.motd.get().toString()).toBe("Welcome");
    a.$kv.motd.get().insert(7, "!");
    b.$kv.motd.get().insert(0, ">");
    sync(a, b);
    expect(a.$kv.motd.toJSON()).toBe(">Welcome!");
    expect(b.$kv.motd.toJSON()).toBe(">Welcome!");
  });

  it("to the same ytext through set(): each side's diff merges into the other's", () => {
    const a = replica();
    const b = replica();
    a.$kv.notes.set("The quick fox");
    sync(a, b);
    a.$kv.notes.set("The quick brown fox");
    b.$kv.notes.set("The quick fox jumps");
    sync(a, b);
    expect(a.$kv.notes.toJSON()).toBe("The quick brown fox jumps");
    expect(b.$kv.notes.toJSON()).toBe("The quick brown fox jumps");
  });

  it("to the same tags: additions and removals on both sides all apply", () => {
    const a = replica();
    const b = replica();
    a.$kv.labels.set(["red", "green"]);
    b.$kv.labels.set(["blue"]);
    sync(a, b);
    expect(a.$kv.labels.toJSON()).toEqual(b.$kv.labels.toJSON());
    expect([...a.$kv.labels.toJSON()].sort()).toEqual(["blue", "green", "red"]);
    a.$kv.labels.set(a.$kv.labels.toJSON().filter((tag) => tag !== "red"));
    b.$kv.labels.set([...b.$kv.labels.toJSON(), "yellow"]);
    sync(a, b);
    expect(a.$kv.labels.toJSON()).toEqual(b.$kv.labels.toJSON());
    expect([...a.$kv.labels.toJSON()].sort()).toEqual(["blue", "green", "yellow"]);
  });

  it("to the same plain keys: every replica settles on one of the values written", () => {
    const a = replica();
    const b = replica();
    const c = replica();
    a.$kv.theme.set("dark");
    b.$kv.theme.set("system");
    c.$kv.count.set(3);
    sync(a, b, c);
    expect(snapshot(a)).toEqual(snapshot(b));
    expect(snapshot(b)).toEqual(snapshot(c));
    expect(["dark", "system"]).toContain(a.$kv.theme.get());
    expect(c.$kv.count.get()).toBe(3);
  });

  it("to rows: new rows on both sides of a new table, and different fields of one row, all survive", () => {
    const a = replica();
    const b = replica();
    a.$tables.posts.upsert({ id: "a1", title: "From a" });
    b.$tables.posts.upsert({ id: "b1", title: "From b" });
    sync(a, b);
    expect(a.$tables.posts.toJSON().map((post) => post.id)).toEqual(["a1", "b1"]);
    a.$tables.posts.upsert({ id: "a1", title: "Retitled" });
    b.$tables.posts.upsert({ id: "a1", title: "From a", views: 7, body: "written in b" });
    a.$tables.posts.get("a1")?.body.insert(0, "a: ");
    sync(a, b);
    expect(snapshot(a)).toEqual(snapshot(b));
    const post = a.$tables.posts.getJSON("a1");
    expect(post).toMatchObject({ title: "Retitled", views: 7 });
    expect(["a: written in b", "written in ba: "]).toContain(post?.body);
  });

  it("for any interleaving of edits and partial syncs (property)", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("text" as const), value: fc.string({ maxLength: 12 }) }),
      fc.record({
        kind: fc.constant("tags" as const),
        value: fc.uniqueArray(fc.constantFrom("a", "b", "c", "d", "e"), { maxLength: 5 }),
      }),
      fc.record({
        kind: fc.constant("theme" as const),
        value: fc.constantFrom("light", "dark", "system"),
      }),
      fc.record({
        kind: fc.constant("row" as const),
        value: fc.constantFrom("r1", "r2"),
        title: fc.string({ maxLength: 5 }),
      }),
      fc.record({ kind: fc.constant("sync" as const), value: fc.constant(null) }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(2), op), { maxLength: 30 }), (steps) => {
        const replicas = [replica(), replica(), replica()];
        for (const [who, step] of steps) {
          const r = replicas[who]!;
          if (step.kind === "text") r.$kv.notes.set(step.value);
          else if (step.kind === "tags") r.$kv.labels.set(step.value);
          else if (step.kind === "theme") r.$kv.theme.set(step.value);
          else if (step.kind === "row")
            r.$tables.posts.upsert({ id: step.value, title: step.title });
          else sync(r, replicas[(who + 1) % 3]!);
        }
        sync(...replicas);
        const [first, ...others] = replicas.map(snapshot);
        for (const other of others) expect(other).toEqual(first);
      }),
      { numRuns: 150 },
    );
  });
});
