import { describe, expect, it, vi } from "vitest";
import * as Y from "yjs";
import { z } from "zod";
import { KvError } from "../errors.js";
import { ValidationError } from "../typed/schemas.js";
import {
  boolean,
  date,
  dateWithTimeZone,
  integer,
  json,
  real,
  select,
  tags,
  text,
  ytext,
} from "./columns.js";
import { defineWorkspace } from "./define.js";
import { bindWorkspace } from "./doc.js";

const app = defineWorkspace({
  id: "app",
  kv: {
    theme: select({ options: ["light", "dark"], default: "light" }),
    locale: text({ default: "en-US" }),
    nickname: text(),
    pageSize: integer({ default: 20 }),
    ratio: real({ nullable: true }),
    betaFeatures: boolean({ default: false }),
    lastSyncAt: date({ nullable: true }),
    notes: ytext(),
    currentDraft: ytext({ nullable: true }),
    greeting: ytext({ default: "Hello" }),
    labels: tags({ options: ["work", "home", "urgent"], default: ["work"] }),
    freeTags: tags(),
    userPrefs: json({
      schema: z.object({ notifications: z.boolean(), fontSize: z.number() }),
      default: { notifications: true, fontSize: 14 },
    }),
  },
});

const open = () => bindWorkspace(app, new Y.Doc());

describe("$kv plain values", () => {
  it("reads defaults, then what was set; reset restores the default", () => {
    const { $kv } = open();
    expect($kv.theme.get()).toBe("light");
    expect($kv.nickname.get()).toBeNull();
    expect($kv.lastSyncAt.get()).toBeNull();
    $kv.theme.set("dark");
    $kv.pageSize.set(50);
    expect($kv.theme.get()).toBe("dark");
    expect($kv.pageSize.get()).toBe(50);
    $kv.theme.reset();
    expect($kv.theme.get()).toBe("light");
  });

  it("keeps dates with their time zone, stored as their JSON form", () => {
    const { $kv, doc } = open();
    const at = dateWithTimeZone(new Date("2025-01-01T10:00:00Z"), "Europe/Paris");
    $kv.lastSyncAt.set(at);
    expect($kv.lastSyncAt.get()).toEqual(at);
    expect(doc.getMap("kv").get("lastSyncAt")).toEqual({
      date: "2025-01-01T10:00:00.000Z",
      timeZone: "Europe/Paris",
    });
    $kv.lastSyncAt.set(null);
    expect($kv.lastSyncAt.get()).toBeNull();
  });

  it("validates json() values with their Standard Schema and returns fresh default copies", () => {
    const { $kv } = open();
    const prefs = $kv.userPrefs.get();
    prefs.fontSize = 99;
    expect($kv.userPrefs.get()).toEqual({ notifications: true, fontSize: 14 });
    $kv.userPrefs.set({ notifications: false, fontSize: 16 });
    expect($kv.userPrefs.get()).toEqual({ notifications: false, fontSize: 16 });
    expect(() => $kv.userPrefs.set({ notifications: "no", fontSize: 16 } as never)).toThrow(
      ValidationError,
    );
  });

  it("refuses a wrong value with INVALID_VALUE and its issues, changing nothing", () => {
    const { $kv, doc } = open();
    $kv.theme.set("dark");
    const updates: Uint8Array[] = [];
    doc.on("update", (update: Uint8Array) => updates.push(update));
    const attempts: [() => void, string][] = [
      [() => $kv.theme.set("blue" as never), "theme"],
      [() => $kv.pageSize.set(1.5), "pageSize"],
      [() => $kv.locale.set(null as never), "locale"],
      [() => $kv.notes.set(3 as never), "notes"],
      [() => $kv.labels.set(["work", "work"] as never), "labels"],
      [() => $kv.labels.set(["play"] as never), "labels"],
      [() => $kv.ratio.set(Number.NaN), "ratio"],
    ];
    for (const [attempt, name] of attempts) {
      try {
        attempt();
        expect.unreachable(`${name} accepted a wrong value`);
      } catch (error) {
        expect(error).toBeInstanceOf(KvError);
        expect((error as KvError).code).toBe("INVALID_VALUE");
        expect((error as ValidationError).issues.length).toBeGreaterThan(0);
        expect((error as Error).message).toContain(name);
      }
    }
    expect(updates).toEqual([]);
    expect($kv.theme.get()).toBe("dark");
  });

  it("refuses json() values that are not plain JSON", () => {
    const workspace = defineWorkspace({
      id: "dates",
      kv: { when: json({ schema: z.object({ at: z.date() }), nullable: true }) },
    });
    const { $kv } = bindWorkspace(workspace, new Y.Doc());
    expect(() => $kv.when.set({ at: new Date() })).toThrow(/plain JSON/);
  });

  it("writes nothing when the value is already stored", () => {
    const { $kv, doc } = open();
    $kv.userPrefs.set({ notifications: false, fontSize: 16 });
    const updates: Uint8Array[] = [];
    doc.on("update", (update: Uint8Array) => updates.push(update));
    $kv.userPrefs.set({ fontSize: 16, notifications: false });
    expect(updates).toEqual([]);
  });

  it("reads a stored value that does not validate as the default", () => {
    const { $kv, doc } = open();
    doc.getMap("kv").set("pageSize", "many");
    doc.getMap("kv").set("theme", "blue");
    expect($kv.pageSize.get()).toBe(20);
    expect($kv.theme.get()).toBe("light");
    expect($kv.$toJSON().pageSize).toBe(20);
  });

  it("sets from the JSON form, as HTTP bodies carry it", () => {
    const { $kv } = open();
    $kv.lastSyncAt.setJSON({ date: "2025-03-01T00:00:00.000Z", timeZone: "UTC" });
    expect($kv.lastSyncAt.toJSON()).toEqual({ date: "2025-03-01T00:00:00.000Z", timeZone: "UTC" });
    expect($kv.lastSyncAt.get()?.date).toBeInstanceOf(Date);
  });
});

describe("$kv ytext and tags", () => {
  it("returns a live Y.Text, created on first use, and set() edits it by a diff", () => {
    const { $kv, doc } = open();
    expect(doc.getMap("kv").has("notes")).toBe(false);
    const notes = $kv.notes.get();
    expect(notes).toBeInstanceOf(Y.Text);
    notes.insert(0, "Hello world");
    $kv.notes.set("Hello, brave world");
    expect($kv.notes.get()).toBe(notes);
    expect(notes.toString()).toBe("Hello, brave world");
    const deltas: unknown[] = [];
    notes.observe((event) => deltas.push(event.delta));
    $kv.notes.set("Hello, brave new world");
    expect(deltas).toEqual([[{ retain: 13 }, { insert: "new " }]]);
  });

  it("diffs text with characters outside the BMP without splitting them", () => {
    const { $kv } = open();
    $kv.notes.set("a😀b");
    $kv.notes.set("a😁b😀");
    expect($kv.notes.toJSON()).toBe("a😁b😀");
  });

  it("starts a ytext with its default, and a nullable one as null until set", () => {
    const { $kv } = open();
    expect($kv.greeting.get().toString()).toBe("Hello");
    expect($kv.currentDraft.get()).toBeNull();
    expect($kv.currentDraft.toJSON()).toBeNull();
    $kv.currentDraft.set("draft");
    expect($kv.currentDraft.get()?.toString()).toBe("draft");
    $kv.currentDraft.set(null);
    expect($kv.currentDraft.get()).toBeNull();
    $kv.greeting.set("Bye");
    $kv.greeting.reset();
    expect($kv.greeting.toJSON()).toBe("Hello");
  });

  it("returns a live Y.Array of tags; set() applies an array diff", () => {
    const { $kv } = open();
    const labels = $kv.labels.get();
    expect(labels.toArray()).toEqual(["work"]);
    $kv.labels.set(["home", "work"]);
    const deltas: unknown[] = [];
    labels.observe((event) => deltas.push(event.changes.delta));
    $kv.labels.set(["home", "urgent"]);
    expect(deltas).toEqual([[{ retain: 1 }, { insert: ["urgent"] }, { delete: 1 }]]);
    expect($kv.labels.get()).toBe(labels);
    expect($kv.freeTags.get().toArray()).toEqual([]);
    $kv.labels.reset();
    expect($kv.labels.toJSON()).toEqual(["work"]);
  });

  it("reads tags repeated by concurrent additions once", () => {
    const { $kv } = open();
    $kv.freeTags.get().push(["a", "b", "a"]);
    expect($kv.freeTags.toJSON()).toEqual(["a", "b"]);
    $kv.freeTags.set(["a", "b"]);
    expect($kv.freeTags.get().toArray()).toEqual(["a", "b"]);
  });
});

describe("$kv observers and whole-store helpers", () => {
  it("observe() fires on local and remote changes, once per transaction, until unsubscribed", () => {
    const a = open();
    const b = bindWorkspace(app, new Y.Doc());
    a.doc.on("update", (update: Uint8Array) => Y.applyUpdate(b.doc, update, "remote"));
    const seen = vi.fn();
    const unsubscribe = b.$kv.theme.observe(seen);
    a.$kv.theme.set("dark");
    b.$kv.theme.set("light");
    b.$kv.locale.set("fr-FR");
    expect(seen.mock.calls).toEqual([["dark"], ["light"]]);
    unsubscribe();
    a.$kv.theme.set("dark");
    expect(seen).toHaveBeenCalledTimes(2);
  });

  it("observe() of a ytext fires on edits inside the text", () => {
    const { $kv } = open();
    const seen = vi.fn();
    $kv.notes.observe((text) => seen(text.toString()));
    $kv.notes.get().insert(0, "hi");
    expect(seen).toHaveBeenLastCalledWith("hi");
  });

  it("$observe reports the keys each transaction changed, local or not", () => {
    const { $kv, doc } = open();
    const changes: unknown[] = [];
    $kv.$observe((change) => changes.push(change));
    doc.transact(() => {
      $kv.theme.set("dark");
      $kv.pageSize.set(10);
    }, "mine");
    const other = new Y.Doc();
    other.getMap("kv").set("locale", "de-DE");
    other.getMap("kv").set("unknown", 1);
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(other), "peer");
    expect(changes).toEqual([
      { keys: ["theme", "pageSize"], local: true, origin: "mine" },
      { keys: ["locale"], local: false, origin: "peer" },
    ]);
  });

  it("an observer that throws does not fail the write", async () => {
    const { $kv } = open();
    const errors: unknown[] = [];
    const onError = (error: unknown) => errors.push(error);
    process.prependListener("uncaughtException", onError);
    try {
      $kv.theme.observe(() => {
        throw new Error("observer bug");
      });
      $kv.theme.set("dark");
      expect($kv.theme.get()).toBe("dark");
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("uncaughtException", onError);
    }
    expect(errors).toEqual([new Error("observer bug")]);
  });

  it("$all, $toJSON, schema and name", () => {
    const { $kv } = open();
    $kv.notes.set("n");
    expect($kv.$all().map((helper) => helper.name)).toEqual(Object.keys(app.kv));
    expect($kv.theme.schema).toBe(app.kv.theme);
    expect($kv.$toJSON()).toEqual({
      theme: "light",
      locale: "en-US",
      nickname: null,
      pageSize: 20,
      ratio: null,
      betaFeatures: false,
      lastSyncAt: null,
      notes: "n",
      currentDraft: null,
      greeting: "Hello",
      labels: ["work"],
      freeTags: [],
      userPrefs: { notifications: true, fontSize: 14 },
    });
  });
});
