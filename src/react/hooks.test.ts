// @vitest-environment happy-dom
/**
 * The hooks rendered by react-dom in a DOM (happy-dom) against an embedded database: what each
 * shows, when it re-renders, typed values and store entries, optimistic writes, workspaces.
 * Over a real server and in a real browser: test/browser/react.test.ts.
 */
import { act, createElement, type ReactNode, Suspense } from "react";
import { createRoot, hydrateRoot, type Root } from "react-dom/client";
import { prerender } from "react-dom/static";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import * as Y from "yjs";
import { z } from "zod";
import type { KvKey } from "../codec/key.js";
import type { Kv } from "../core/kv.js";
import { openKv } from "../open.js";
import { select } from "../typed/columns.js";
import type { KeyRef } from "../typed/compose.js";
import { defineKv } from "../typed/define-kv.js";
import { defineStore } from "../typed/store.js";
import { date, text, ytext } from "../workspace/columns.js";
import { defineWorkspace } from "../workspace/define.js";
import { bindWorkspace } from "../workspace/doc.js";
import { type StoreRefs, useList, useStoreEntry, useTyped, useValue } from "./hooks.js";
import { useMutation } from "./mutation.js";
import { KvProvider } from "./provider.js";
import { useSyncStatus } from "./status.js";
import { useWorkspaceKv, useWorkspaceValue } from "./workspace.js";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let kv: Kv;
let root: Root;
let container: HTMLElement;

beforeEach(async () => {
  kv = await openKv();
  container = document.createElement("div");
  document.body.append(container);
  root = createRoot(container);
});

afterEach(async () => {
  await act(async () => root.unmount());
  container.remove();
  await kv.close();
});

async function render(node: ReactNode): Promise<void> {
  await act(async () => root.render(createElement(KvProvider, { kv, keepAlive: 10 }, node)));
}

/** Waits (rendering what is due) until `check` holds. */
async function until(check: () => boolean, what = "the condition"): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}: ${container.innerHTML}`);
    await act(() => new Promise((resolve) => setTimeout(resolve, 5)));
  }
}

const text$ = () => container.textContent ?? "";

/** Renders per component name, counted by the components below. */
const renders: Record<string, number> = {};
const count = (name: string) => {
  renders[name] = (renders[name] ?? 0) + 1;
};

function Show({ k, label = "" }: { k: KvKey; label?: string }) {
  count(label || "show");
  const { value, loading } = useValue<string>(k);
  return createElement("span", null, loading ? "…" : `${label}${value ?? ""}`);
}

function Todos() {
  count("todos");
  const { entries } = useList<string>({ prefix: ["todo"] }, { limit: 2 });
  return createElement("p", null, entries.map((entry) => entry.value).join(","));
}

function Typed<T>({ value }: { value: KeyRef<T> }) {
  const { value: shown, loading } = useTyped(value);
  return createElement("p", null, loading ? "…" : String(shown));
}

function Prefs({ store }: { store: StoreRefs<{ theme: string }> }) {
  const { value, loading } = useStoreEntry(store, "ada");
  return createElement("p", null, loading ? "…" : (value?.theme ?? "none"));
}

/** A value with a mutation whose write waits for `gate`, or fails when `fail` is set. */
const mutation = {
  seen: [] as string[],
  gate: Promise.resolve(),
  fail: false,
  status: "",
  mutate: (_value: string) => {},
};

function Mutated() {
  const { value, pending, versionstamp } = useValue<string>(["name"]);
  mutation.seen.push(`${value}:${pending}:${versionstamp !== null}`);
  const rename = useMutation(
    async (db: Kv, name: string) => {
      await mutation.gate;
      if (mutation.fail) throw new Error("refused");
      return db.set(["name"], name);
    },
    { optimistic: (name) => [{ key: ["name"], value: name }] },
  );
  mutation.mutate = rename.mutate;
  mutation.status = rename.status;
  return createElement("p", null, `${value ?? "none"}${pending ? "*" : ""}`);
}

/** A list with an optimistic insert and delete, whose writes wait for `gate`. */
const listed = { gate: Promise.resolve(), add: (_id: number) => {}, remove: (_id: number) => {} };

function Editable() {
  const { entries } = useList<string>({ prefix: ["todo"] });
  const add = useMutation(
    async (db: Kv, id: number) => {
      await listed.gate;
      return db.set(["todo", id], `#${id}`);
    },
    { optimistic: (id) => [{ key: ["todo", id], value: `#${id}` }] },
  );
  const remove = useMutation(
    async (db: Kv, id: number) => {
      await listed.gate;
      await db.delete(["todo", id]); // resolves to nothing: settled at the head read after it
    },
    { optimistic: (id) => [{ key: ["todo", id], delete: true }] },
  );
  listed.add = add.mutate;
  listed.remove = remove.mutate;
  return createElement(
    "p",
    null,
    entries.map((entry) => `${entry.value}${entry.pending ? "*" : ""}`).join(","),
  );
}

function Suspended() {
  const { value } = useValue<string>(["mode"], { suspense: true });
  return createElement("p", null, value);
}

let status: unknown = "unset";
function Status() {
  status = useSyncStatus();
  return null;
}

const app = defineWorkspace({
  id: "app",
  kv: {
    theme: text({ default: "light" }),
    lastSyncAt: date({ nullable: true }),
    draft: ytext({ nullable: true }),
  },
});
type App = ReturnType<typeof bindWorkspace<typeof app>>;

function WorkspaceTheme({ workspace }: { workspace: App }) {
  count("workspace-theme");
  return createElement("i", null, useWorkspaceValue(workspace.$kv.theme));
}

function WorkspaceAll({ workspace }: { workspace: App }) {
  const { theme, draft } = useWorkspaceKv(workspace.$kv);
  return createElement("b", null, `${theme}|${draft ?? ""}`);
}

const settle = () => act(() => new Promise((resolve) => setTimeout(resolve, 30)));

describe("useValue", () => {
  it("shows a key, follows its changes, and does not render for another key", async () => {
    await kv.set(["theme"], "light");
    await render(createElement(Show, { k: ["theme"] }));
    await until(() => text$() === "light");
    await act(() => kv.set(["theme"], "dark"));
    await until(() => text$() === "dark");
    const before = renders.show;
    await act(async () => {
      await kv.set(["other"], 1);
      await kv.set(["theme", "nested"], 1);
    });
    await settle();
    expect(renders.show).toBe(before);
    await act(() => kv.delete(["theme"]));
    await until(() => text$() === "");
  });

  it("shares one cell between components", async () => {
    await render([
      createElement(Show, { key: 1, k: ["n"], label: "a=" }),
      createElement(Show, { key: 2, k: ["n"], label: "b=" }),
    ]);
    await until(() => text$() === "a=b=");
    await act(() => kv.set(["n"], "7"));
    await until(() => text$() === "a=7b=7");
  });
});

describe("useList", () => {
  it("follows inserts and deletes in range, with a limit, and ignores writes outside it", async () => {
    await kv.set(["todo", 1], "one");
    await kv.set(["todo", 3], "three");
    await render(createElement(Todos));
    await until(() => text$() === "one,three");
    await act(() => kv.set(["todo", 2], "two"));
    await until(() => text$() === "one,two");
    await act(() => kv.delete(["todo", 1]));
    await until(() => text$() === "two,three");
    const before = renders.todos;
    await act(async () => {
      await kv.set(["todos"], "outside");
      await kv.set(["todo"], "the prefix itself");
      await kv.set(["todo", 9], "past the limit");
    });
    await settle();
    expect(renders.todos).toBe(before);
    expect(text$()).toBe("two,three");
  });
});

describe("typed values and stores", () => {
  it("useTyped shows a defineKv value, its default when unset", async () => {
    const settings = defineKv(kv, {
      theme: select({ options: ["light", "dark"], default: "light" }),
    });
    await render(createElement(Typed<string>, { value: settings.theme }));
    await until(() => text$() === "light");
    await act(() => settings.theme.set("dark"));
    await until(() => text$() === "dark");
    await act(() => settings.theme.reset());
    await until(() => text$() === "light");
  });

  it("useStoreEntry shows a store entry, null when absent", async () => {
    const prefs = defineStore(kv, "user_prefs", z.object({ theme: z.enum(["light", "dark"]) }));
    await render(createElement(Prefs, { store: prefs }));
    await until(() => text$() === "none");
    await act(() => prefs.set("ada", { theme: "dark" }));
    await until(() => text$() === "dark");
  });
});

describe("useMutation", () => {
  it("shows an optimistic value until the write's own entry arrives", async () => {
    let release = () => {};
    mutation.gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    mutation.fail = false;
    mutation.seen = [];
    await kv.set(["name"], "Ada");
    await render(createElement(Mutated));
    await until(() => text$() === "Ada");
    await act(async () => mutation.mutate("Ada L."));
    await until(() => text$() === "Ada L.*");
    release();
    await until(() => text$() === "Ada L.");
    expect(mutation.seen.at(-1)).toBe("Ada L.:false:true");
    // Once shown, the optimistic value is replaced only by the server's entry, never by "Ada".
    const from = mutation.seen.indexOf("Ada L.:true:true");
    expect(from).toBeGreaterThan(0);
    expect(mutation.seen.slice(from).every((s) => s.startsWith("Ada L."))).toBe(true);
  });

  it("takes an optimistic value back when the write fails", async () => {
    mutation.gate = new Promise((resolve) => setTimeout(resolve, 20));
    mutation.fail = true;
    await render(createElement(Mutated));
    await until(() => text$() === "none");
    await act(async () => mutation.mutate("optimistic"));
    await until(() => text$() === "optimistic*");
    await until(() => text$() === "none" && mutation.status === "error");
  });

  it("has no sync status on a Kv", async () => {
    await render(createElement(Status));
    expect(status).toBeNull();
  });
});

describe("optimistic writes in a list", () => {
  it("shows an insert and a delete at once, then what the database holds", async () => {
    let release = () => {};
    listed.gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    await kv.set(["todo", 1], "#1");
    await render(createElement(Editable));
    await until(() => text$() === "#1");
    await act(async () => {
      listed.add(2);
      listed.remove(1);
    });
    await until(() => text$() === "#2*", "the optimistic list");
    release();
    await until(() => text$() === "#2", "the stored list");
    expect((await kv.get(["todo", 1])).versionstamp).toBeNull();
  });
});

describe("hydration", () => {
  it("hydrates server-rendered HTML, with initial entries and with Suspense", async () => {
    await kv.set(["theme"], "dark");
    await kv.set(["mode"], "dark");
    // The suspended component's key is not among them: it suspends again while hydrating.
    const initial = [await kv.get(["theme"])];
    const app = createElement(
      KvProvider,
      { kv, initial },
      createElement(Show, { k: ["theme"] }),
      createElement(Suspense, { fallback: "…" }, createElement(Suspended)),
    );
    const { prelude } = await prerender(app);
    const html = await new Response(prelude).text();
    expect(html).toContain("dark");
    const errors: unknown[] = [];
    const host = document.createElement("div");
    host.innerHTML = html;
    document.body.append(host);
    const hydrated = await act(async () =>
      hydrateRoot(host, app, { onRecoverableError: (error) => errors.push(error) }),
    );
    const deadline = Date.now() + 5000;
    while (host.textContent !== "darkdark" && Date.now() < deadline) {
      await act(() => new Promise((resolve) => setTimeout(resolve, 5)));
    }
    expect(host.textContent).toBe("darkdark");
    await act(async () => {
      await kv.set(["theme"], "light");
      await kv.set(["mode"], "light");
    });
    while (host.textContent !== "lightlight" && Date.now() < deadline) {
      await act(() => new Promise((resolve) => setTimeout(resolve, 5)));
    }
    expect(host.textContent).toBe("lightlight");
    expect(errors).toEqual([]);
    await act(async () => hydrated.unmount());
    host.remove();
  });
});

describe("workspaces", () => {
  it("useWorkspaceValue and useWorkspaceKv follow local and remote edits", async () => {
    const doc = new Y.Doc();
    const other = new Y.Doc();
    doc.on("update", (update: Uint8Array) => Y.applyUpdate(other, update));
    other.on("update", (update: Uint8Array) => Y.applyUpdate(doc, update));
    const mine = bindWorkspace(app, doc);
    const theirs = bindWorkspace(app, other);
    await render([
      createElement(WorkspaceTheme, { key: 1, workspace: mine }),
      createElement(WorkspaceAll, { key: 2, workspace: mine }),
    ]);
    expect(text$()).toBe("lightlight|");
    await act(async () => theirs.$kv.theme.set("dark"));
    expect(text$()).toBe("darkdark|");
    const before = renders["workspace-theme"];
    await act(async () => theirs.$kv.draft.set("Hello"));
    expect(text$()).toBe("darkdark|Hello");
    expect(renders["workspace-theme"]).toBe(before);
    await act(async () => mine.$kv.draft.get()?.insert(5, ", world"));
    expect(text$()).toBe("darkdark|Hello, world");
  });
});
