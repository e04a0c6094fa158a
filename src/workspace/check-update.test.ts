/**
 * `checkUpdate`: a peer that writes the document directly (not through the typed helpers) may
 * send anything. The server-side doc applies the update merged with its repair; a peer that
 * already had the bad update converges once it receives the repair.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { KvError } from "../errors.js";
import { provablyValid } from "./check-fast.js";
import { fullCheck } from "./check-update.js";
import { id, integer, select, tags, text, ytext } from "./columns.js";
import { defineWorkspace } from "./define.js";
import { bindWorkspace, checkUpdate } from "./doc.js";

const app = defineWorkspace({
  id: "app",
  tables: { posts: { id: id(), title: text(), body: ytext(), views: integer({ default: 0 }) } },
  kv: {
    theme: select({ options: ["light", "dark"], default: "light" }),
    locale: text({ default: "en-US" }),
    notes: ytext(),
    labels: tags({ options: ["a", "b", "c"] }),
  },
});

/** A server document with some state, and a peer holding a copy of it. */
function setup() {
  const server = bindWorkspace(app, new Y.Doc());
  server.$kv.theme.set("dark");
  server.$kv.locale.set("fr-FR");
  server.$kv.notes.set("shared notes");
  server.$kv.labels.set(["a"]);
  server.$tables.posts.upsert({ id: "p1", title: "First", body: "body", views: 2 });
  const peer = new Y.Doc();
  Y.applyUpdate(peer, Y.encodeStateAsUpdate(server.doc));
  return { server, peer };
}

/** The update `edit` makes on `doc`. */
function updateOf(doc: Y.Doc, edit: () => void): Uint8Array {
  const parts: Uint8Array[] = [];
  const capture = (update: Uint8Array) => parts.push(update);
  doc.on("update", capture);
  doc.transact(edit);
  doc.off("update", capture);
  return Y.mergeUpdates(parts);
}

const json = (doc: Y.Doc) => {
  const bound = bindWorkspace(app, doc);
  return { kv: bound.$kv.$toJSON(), posts: bound.$tables.posts.toJSON() };
};

/** Applies what a server applies, and checks that a peer that saw the update alone converges. */
function applyChecked(server: Y.Doc, peer: Y.Doc, update: Uint8Array) {
  const before = Y.encodeStateAsUpdate(server);
  const check = checkUpdate(app, server, update);
  expect(Y.encodeStateAsUpdate(server)).toEqual(before);
  if (!check.ok) {
    Y.applyUpdate(server, Y.mergeUpdates([update, check.repair]));
    Y.applyUpdate(peer, check.repair);
    expect(json(peer)).toEqual(json(server));
    expect(checkUpdate(app, server, Y.encodeStateAsUpdate(server)).ok).toBe(true);
  } else {
    Y.applyUpdate(server, update);
  }
  return check;
}

describe("checkUpdate", () => {
  it("passes valid edits: helper writes, text edits, deletions", () => {
    const { server, peer } = setup();
    const bound = bindWorkspace(app, peer);
    for (const edit of [
      () => bound.$kv.theme.set("light"),
      () => bound.$kv.notes.get().insert(0, ">> "),
      () => bound.$kv.labels.set(["b", "c"]),
      () => bound.$kv.locale.reset(),
      () => bound.$tables.posts.upsert({ id: "p2", title: "Second" }),
      () => bound.$tables.posts.get("p1")?.body.delete(0, 2),
      () => bound.$tables.posts.delete("p1"),
    ]) {
      expect(applyChecked(server.doc, peer, updateOf(peer, edit))).toEqual({ ok: true });
    }
    expect(json(server.doc)).toEqual(json(peer));
  });

  it("reports a number written into a text key; the repair restores the previous value", () => {
    const { server, peer } = setup();
    const update = updateOf(peer, () => peer.getMap("kv").set("locale", 42));
    const check = applyChecked(server.doc, peer, update);
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.issues).toEqual([
      { path: ["kv", "locale"], message: "expected a string, got 42" },
    ]);
    expect(server.doc.getMap("kv").get("locale")).toBe("fr-FR");
    expect(peer.getMap("kv").get("locale")).toBe("fr-FR");
  });

  it("reports a string written into a ytext slot; the repair restores the text", () => {
    const { server, peer } = setup();
    const update = updateOf(peer, () => peer.getMap("kv").set("notes", "plain string"));
    const check = applyChecked(server.doc, peer, update);
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.issues[0]).toMatchObject({ path: ["kv", "notes"] });
    expect(check.issues[0]?.message).toMatch(/expected a Y.Text/);
    const notes = server.doc.getMap("kv").get("notes");
    expect(notes).toBeInstanceOf(Y.Text);
    expect(String(notes)).toBe("shared notes");
  });

  it("deletes a bad value that had nothing valid before, so reads give the default", () => {
    const { server, peer } = setup();
    const update = updateOf(peer, () => {
      peer.getMap("kv").delete("theme");
    });
    applyChecked(server.doc, peer, update);
    const check = applyChecked(
      server.doc,
      peer,
      updateOf(peer, () => peer.getMap("kv").set("theme", "blue")),
    );
    expect(check.ok).toBe(false);
    expect(server.doc.getMap("kv").has("theme")).toBe(false);
    expect(bindWorkspace(app, server.doc).$kv.theme.get()).toBe("light");
  });

  it("removes only the bad items of a tags array, keeping valid concurrent additions", () => {
    const { server, peer } = setup();
    const update = updateOf(peer, () => {
      const labels = peer.getMap("kv").get("labels") as Y.Array<unknown>;
      labels.push(["b", 7, "zzz"]);
    });
    const check = applyChecked(server.doc, peer, update);
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.issues.map((issue) => issue.path)).toEqual([
      ["kv", "labels", 2],
      ["kv", "labels", 3],
    ]);
    expect(bindWorkspace(app, server.doc).$kv.labels.get().toArray()).toEqual(["a", "b"]);
  });

  it("removes a new row missing its id, and one with a wrong-typed required field", () => {
    const { server, peer } = setup();
    const rows = () => peer.getMap("tables").get("posts") as Y.Map<unknown>;
    const noId = updateOf(peer, () => {
      rows().set(
        "p9",
        new Y.Map<unknown>([
          ["title", "no id"],
          ["body", new Y.Text("x")],
          ["views", 0],
        ]),
      );
    });
    const check = applyChecked(server.doc, peer, noId);
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.issues).toEqual([
      {
        path: ["tables", "posts", "p9", "id"],
        message: 'expected the row\'s id "p9", got undefined',
      },
    ]);
    expect(
      bindWorkspace(app, server.doc)
        .$tables.posts.toJSON()
        .map((post) => post.id),
    ).toEqual(["p1"]);
    const badTitle = updateOf(peer, () => {
      rows().set(
        "p8",
        new Y.Map<unknown>([
          ["id", "p8"],
          ["title", 5],
        ]),
      );
    });
    expect(applyChecked(server.doc, peer, badTitle).ok).toBe(false);
    expect((server.doc.getMap("tables").get("posts") as Y.Map<unknown>).has("p8")).toBe(false);
  });

  it("puts back the bad fields of an existing row and drops unknown ones", () => {
    const { server, peer } = setup();
    const update = updateOf(peer, () => {
      const row = (peer.getMap("tables").get("posts") as Y.Map<Y.Map<unknown>>).get("p1")!;
      row.set("views", "lots");
      row.set("body", 3);
      row.set("title", "Edited");
      row.set("spam", true);
    });
    const check = applyChecked(server.doc, peer, update);
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.issues.map((issue) => issue.path)).toEqual([
      ["tables", "posts", "p1", "spam"],
      ["tables", "posts", "p1", "body"],
      ["tables", "posts", "p1", "views"],
    ]);
    expect(bindWorkspace(app, server.doc).$tables.posts.getJSON("p1")).toEqual({
      id: "p1",
      title: "Edited",
      body: "body",
      views: 2,
    });
  });

  it("removes keys and tables the definition does not know, and a table replaced by a value", () => {
    const { server, peer } = setup();
    const update = updateOf(peer, () => {
      peer.getMap("kv").set("junk", "x");
      peer.getMap("tables").set("other", new Y.Map());
    });
    const check = applyChecked(server.doc, peer, update);
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.issues.map((issue) => issue.path)).toEqual([
      ["kv", "junk"],
      ["tables", "other"],
    ]);
    expect(server.doc.getMap("kv").has("junk")).toBe(false);
    expect(server.doc.getMap("tables").has("other")).toBe(false);
    const replaced = updateOf(peer, () => peer.getMap("tables").set("posts", "gone"));
    expect(applyChecked(server.doc, peer, replaced).ok).toBe(false);
    expect(bindWorkspace(app, server.doc).$tables.posts.getJSON("p1")?.title).toBe("First");
  });

  it("checks an update that arrives before one it depends on once both are there", () => {
    const { server, peer } = setup();
    const first = updateOf(peer, () => peer.getMap("kv").set("locale", "de-DE"));
    const second = updateOf(peer, () => peer.getMap("kv").set("locale", 42));
    expect(applyChecked(server.doc, peer, second)).toEqual({ ok: true });
    const check = applyChecked(server.doc, peer, first);
    expect(check.ok).toBe(false);
    expect(bindWorkspace(app, server.doc).$kv.locale.get()).toBe("fr-FR");
  });

  it("refuses bytes that are not a Yjs update with INVALID_VALUE", () => {
    const { server } = setup();
    const error = (() => {
      try {
        checkUpdate(app, server.doc, new Uint8Array([255, 255, 255, 255, 1, 2, 3]));
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(KvError);
    expect((error as KvError).code).toBe("INVALID_VALUE");
  });
});

describe("checkUpdate's fast path", () => {
  it("proves the edits clients make all the time without copying the document", () => {
    const { server, peer } = setup();
    const bound = bindWorkspace(app, peer);
    const common = [
      () => bound.$kv.notes.get().insert(3, "typing"),
      () => bound.$kv.notes.get().delete(0, 4),
      () => bound.$kv.theme.set("light"),
      () => bound.$kv.labels.set(["a", "b"]),
      () => bound.$kv.locale.reset(),
      () => bound.$tables.posts.upsert({ id: "p1", title: "Renamed", views: 9 }),
      () => bound.$tables.posts.get("p1")?.body.insert(0, "x"),
      () => bound.$tables.posts.delete("p1"),
    ];
    for (const edit of common) {
      const update = updateOf(peer, edit);
      expect([common.indexOf(edit), provablyValid(app, server.doc, update)]).toEqual([
        common.indexOf(edit),
        true,
      ]);
      Y.applyUpdate(server.doc, update);
    }
  });

  it("never passes an update the full check refuses (property)", () => {
    const edits: ((peer: Y.Doc) => void)[] = [
      (peer) => bindWorkspace(app, peer).$kv.notes.get().insert(0, "ok"),
      (peer) => bindWorkspace(app, peer).$kv.theme.set("light"),
      (peer) => bindWorkspace(app, peer).$tables.posts.upsert({ id: "p1", title: "t" }),
      (peer) => bindWorkspace(app, peer).$tables.posts.upsert({ id: "p2", title: "new" }),
      (peer) => peer.getMap("kv").set("theme", "blue"),
      (peer) => peer.getMap("kv").set("locale", 1),
      (peer) => peer.getMap("kv").set("notes", "plain"),
      (peer) => peer.getMap("kv").set("junk", true),
      (peer) => peer.getMap("kv").delete("notes"),
      (peer) => (peer.getMap("kv").get("labels") as Y.Array<unknown>).push([5]),
      (peer) => (peer.getMap("kv").get("labels") as Y.Array<unknown>).push(["c"]),
      (peer) => posts(peer).get("p1")?.set("views", "x"),
      (peer) => posts(peer).get("p1")?.set("id", "other"),
      (peer) => posts(peer).get("p1")?.delete("title"),
      (peer) => posts(peer).get("p1")?.delete("views"),
      (peer) => posts(peer).get("p1")?.set("title", "fine"),
      (peer) => (posts(peer).get("p1")?.get("body") as Y.Text | undefined)?.insert(0, "b"),
      (peer) => posts(peer).delete("p1"),
      (peer) => peer.getMap("tables").set("posts", 3),
    ];
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.nat(edits.length - 1), { minLength: 1, maxLength: 3 }), {
          maxLength: 8,
        }),
        (batches) => {
          const { server, peer } = setup();
          for (const batch of batches) {
            const update = updateOf(peer, () => {
              for (const i of batch) edits[i]!(peer);
            });
            const full = fullCheck(app, server.doc, update);
            if (provablyValid(app, server.doc, update)) expect(full.ok).toBe(true);
            const repaired = full.ok ? update : Y.mergeUpdates([update, full.repair]);
            Y.applyUpdate(server.doc, repaired);
            if (!full.ok) Y.applyUpdate(peer, full.repair);
          }
          expect(json(peer)).toEqual(json(server.doc));
        },
      ),
      { numRuns: 300 },
    );
  });
});

function posts(doc: Y.Doc): Y.Map<Y.Map<unknown>> {
  const rows = doc.getMap("tables").get("posts");
  return rows instanceof Y.Map ? rows : new Y.Map();
}
