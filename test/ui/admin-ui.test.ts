/**
 * The admin web UI end to end: built with Vite once, served by a real `startServer` on a SQLite
 * file over loopback, driven in Debian's Chromium. Each page's flow runs against the real API;
 * screenshots go to `test-results/ui/` (gitignored) for a person to look at.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { defineStore, type Kv, KvU64, openKv } from "../../src/index.js";
import { createApp } from "../../src/server/app.js";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { UI_CSP } from "../../src/server/ui.js";
import { defineWorkspace, id, integer, text } from "../../src/workspace.js";
import { launchChromium } from "../browser/chromium.js";

const SHOTS = new URL("../../test-results/ui/", import.meta.url).pathname;
const CONFIG = new URL("../../src/ui/vite.config.ts", import.meta.url).pathname;

/** How long a test waits for the page to show something (the UI polls metrics every 2 s). */
const WAIT = { timeout: 15_000 };

let dir: string;
let uiDir: string;
let server: RunningServer;
/** A server with tokens, for signing in and for a read-only token. */
let guarded: RunningServer;
let kv: Kv;
let browser: Browser;

const PREFS = defineStore("prefs", z.object({ theme: z.enum(["light", "dark"]) }));
const APP = defineWorkspace({
  id: "app",
  tables: { posts: { id: id(), title: text() } },
  kv: { theme: text({ default: "light" }), visits: integer({ default: 0 }) },
});
const TOKENS = [
  { token: "ui-admin-token-0123456789", namespaces: ["*"], access: "admin" as const, name: "ops" },
  {
    token: "ui-reader-token-0123456789",
    namespaces: ["*"],
    access: "read" as const,
    name: "auditor",
  },
  {
    token: "ui-tenant-token-0123456789",
    namespaces: ["tenant-a"],
    access: "write" as const,
    name: "tenant",
  },
];

async function seed(db: Kv): Promise<void> {
  await db.set(["users", "ada"], { name: "Ada", born: new Date("1815-12-10T00:00:00Z"), n: 1n });
  await db.set(["users", "grace"], { name: "Grace", langs: ["COBOL"] });
  await db.set(["users", 42], "the number 42");
  await db.set(["users", "42"], "the string 42");
  await db.set(["users", 42n], "the bigint 42");
  await db.set(["users", new Uint8Array([0x2a])], new KvU64(7n));
  const op = db.atomic();
  for (let i = 0; i < 500; i++) op.set(["items", i], { i, label: `item ${i}` });
  await op.commit();
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cellar-ui-"));
  uiDir = join(dir, "ui");
  mkdirSync(SHOTS, { recursive: true });
  // The production build, as `npm run build` makes it: under vitest's NODE_ENV ("test") Vite
  // would compile JSX and pick React for development.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = "production";
  try {
    await build({ configFile: CONFIG, logLevel: "silent", build: { outDir: uiDir } });
  } finally {
    process.env.NODE_ENV = nodeEnv;
  }
  kv = await openKv(join(dir, "ui.db"), { history: { keepValues: [["audit"]] } });
  await seed(kv);
  server = await startServer({ db: kv, port: 0, ui: uiDir, stores: [PREFS], workspaces: [APP] });
  guarded = await startServer({ db: join(dir, "guarded.db"), port: 0, ui: uiDir, tokens: TOKENS });
  await guarded.kv.set(["notes", "one"], { text: "read me" });
  await guarded.kv.namespace("tenant-a").set(["mine"], 1);
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await guarded?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(path: string, on: RunningServer = server): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(10_000);
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error" && !/status of 4\d\d/.test(message.text())) {
      problems.push(message.text());
    }
  });
  (page as Page & { problems: string[] }).problems = problems;
  await page.goto(new URL(path, on.url).toString());
  return page;
}

const problemsOf = (page: Page) => (page as Page & { problems: string[] }).problems;

describe("serving", () => {
  it("answers / and every view with index.html under a strict CSP, and assets cached by hash", async () => {
    const root = await fetch(new URL("/", server.url));
    expect(root.status).toBe(200);
    expect(root.headers.get("content-type")).toMatch(/^text\/html/);
    expect(root.headers.get("content-security-policy")).toBe(UI_CSP);
    expect(root.headers.get("cache-control")).toBe("no-cache");
    const html = await root.text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect(html).not.toMatch(/<script>|style=/);
    const asset = await fetch(new URL(script!, server.url));
    expect(asset.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    const deep = await fetch(new URL("/entry?key=users/ada", server.url));
    expect(await deep.text()).toBe(html);
    const missing = await fetch(new URL("/assets/nope.js", server.url));
    expect(missing.status).toBe(404);
    expect((await fetch(new URL("/nope", server.url))).status).toBe(404);
  });

  it("answers a page saying how to build the UI where it is not built", async () => {
    const db = await openKv();
    const { app } = createApp(db, { ui: join(dir, "not-built") });
    const res = await app.request("/");
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("npm run build");
    await db.close();
  });
});

describe("overview", () => {
  it("shows entries, size, commits/s, queues and subscribers from the metrics", async () => {
    await kv.queue("mail").enqueue({ kind: "welcome" });
    const page = await open("/");
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await expect
      .poll(() => page.locator("[data-metric=entries] .card-value").textContent(), WAIT)
      .toBe("506");
    // A rate needs two scrapes.
    await expect
      .poll(() => page.locator("[data-metric=commits] .card-value").textContent(), WAIT)
      .toMatch(/^\d+\.\d$/);
    await page.getByRole("table", { name: "Subscribers" }).waitFor();
    await shot(page, "overview");
    expect(problemsOf(page)).toEqual([]);
    await page.close();
  });
});

const rowsOf = (page: Page) => page.locator(".vrow[role=option]");

describe("keys", () => {
  it("pages a prefix in a virtualised table, typed parts shown apart, opened with the keyboard", async () => {
    const page = await open("/keys?prefix=users");
    await page.getByRole("listbox", { name: "Entries" }).waitFor();
    await expect.poll(() => rowsOf(page).count(), WAIT).toBe(6);
    const labels = await page.locator(".vrow .cell-key .key").allTextContents();
    expect(labels).toContain('"users"/"42"');
    expect(labels).toContain('"users"/42');
    expect(labels).toContain('"users"/42n');
    expect(labels).toContain('"users"/0x2a');
    expect(await page.locator(".part-bigint").first().getAttribute("title")).toBe("bigint");
    await shot(page, "keys-table");

    await page.goto(new URL("/keys?prefix=items", server.url).toString());
    const list = page.getByRole("listbox", { name: "Entries" });
    await expect
      .poll(() => page.getByRole("status").first().textContent(), WAIT)
      .toMatch(/^200 loaded/);
    expect(await rowsOf(page).count()).toBeLessThan(60);
    await list.evaluate((element) => {
      element.scrollTop = element.scrollHeight;
    });
    await expect
      .poll(() => page.getByRole("status").first().textContent(), WAIT)
      .toMatch(/^400 loaded/);
    expect(await rowsOf(page).count()).toBeLessThan(60);
    await page.getByRole("button", { name: "Count all" }).click();
    await expect.poll(() => page.getByTestId("count").textContent(), WAIT).toBe("500 in all");
    await list.evaluate((element) => {
      element.scrollTop = 0;
    });
    await list.focus();
    await page.keyboard.press("j");
    await page.keyboard.press("j");
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/entry\?key=items\/~n:2$/);
    await expect
      .poll(() => page.getByLabel("Value", { exact: true }).inputValue(), WAIT)
      .toContain('"label": "item 2"');
    expect(problemsOf(page)).toEqual([]);
    await page.close();
  });

  it("filters by where and by range, and shows the server's error for a bad filter", async () => {
    const where = JSON.stringify({ i: { $gte: 495 } });
    const page = await open(`/keys?prefix=items&where=${encodeURIComponent(where)}`);
    await expect.poll(() => rowsOf(page).count(), WAIT).toBe(5);
    await page.goto(
      new URL("/keys?prefix=items&start=items/~n:10&end=items/~n:13", server.url).toString(),
    );
    await expect.poll(() => rowsOf(page).count(), WAIT).toBe(3);
    await shot(page, "keys-range");
    await page.getByLabel("Where (JSON)").fill('{"i": {"$near": 1}}');
    await page.getByRole("button", { name: "Apply" }).click();
    await page.getByRole("alert").filter({ hasText: "INVALID_FILTER" }).waitFor();
    expect(await page.getByRole("alert").textContent()).toContain("$near");
    await page.close();
  });

  it("searches a full-text index, best match first", async () => {
    await kv.set(["posts", 1], { title: "SQLite write-ahead logging", body: "the WAL" });
    await kv.set(["posts", 2], { title: "PostgreSQL replication", body: "streaming" });
    await kv.set(["posts", 3], { title: "Cellar on SQLite", body: "one file" });
    await kv.createSearchIndex("posts", { prefix: ["posts"], fields: ["title", "body"] });
    const page = await open("/keys");
    await page.getByLabel("Search index").selectOption("posts");
    await page.getByLabel("Search", { exact: true }).fill("sqlite");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/index=posts&q=sqlite$/);
    const hits = page.getByRole("listbox", { name: "Search hits" });
    await expect.poll(() => rowsOf(page).count(), WAIT).toBe(2);
    expect(await hits.locator(".key").allTextContents()).toEqual(
      expect.arrayContaining(['"posts"/1', '"posts"/3']),
    );
    await shot(page, "keys-search");
    await page.close();
  });

  it("shows the keys as a tree by their parts", async () => {
    const page = await open("/keys?view=tree");
    const tree = page.getByTestId("tree");
    await tree.getByRole("button", { name: '"users"' }).click();
    for (const label of ['"42"', "42", "42n", "0x2a", '"ada"']) {
      await tree.getByRole("button", { name: label, exact: true }).waitFor();
    }
    await shot(page, "keys-tree");

    // A node reads one page per child, not per key: 12 children of 250 keys each.
    for (let c = 0; c < 12; c++) {
      const op = kv.atomic();
      for (let i = 0; i < 250; i++) op.set(["wide", `c${String(c).padStart(2, "0")}`, i], i);
      await op.commit();
    }
    let reads = 0;
    page.on("request", (request) => {
      if (request.url().endsWith("/api/list")) reads++;
    });
    await page.goto(new URL("/keys?view=tree&prefix=wide", server.url).toString());
    await expect.poll(() => tree.locator("button.node").count(), WAIT).toBe(12);
    await tree.getByRole("button", { name: '"c11"' }).waitFor();
    expect(reads).toBeLessThanOrEqual(13);
    await page.close();
  });
});

/** Types into the value editor, replacing what it holds. */
async function edit(page: Page, text: string): Promise<void> {
  await page.getByLabel("Value", { exact: true }).fill(text);
}

describe("entry", () => {
  it("edits a value losslessly, refusing malformed JSON and tags before saving", async () => {
    await kv.set(["edit", "me"], { n: 1n, at: new Date("2020-01-01T00:00:00Z") });
    const page = await open("/entry?key=edit/me");
    await expect
      .poll(() => page.getByLabel("Value", { exact: true }).inputValue(), WAIT)
      .toContain('"$bigint": "1"');
    const save = page.getByRole("button", { name: "Save" });
    await edit(page, "{ nope");
    await page.getByTestId("invalid").waitFor();
    expect(await save.isDisabled()).toBe(true);
    await edit(page, '{"n": {"$bigint": "1.5"}}');
    await page.getByTestId("invalid").waitFor();
    expect(await save.isDisabled()).toBe(true);
    await edit(
      page,
      '{"n": {"$bigint": "2"}, "at": {"$date": "2021-02-03T04:05:06.000Z"}, "m": {"$map": [["k", 1]]}}',
    );
    await page.getByLabel("Comment").fill("typed by hand");
    await save.click();
    await page.getByText("Saved.").waitFor();
    const stored = await kv.get<{ n: bigint; at: Date; m: Map<string, number> }>(["edit", "me"], {
      metadata: true,
    });
    expect(stored.value).toEqual({
      n: 2n,
      at: new Date("2021-02-03T04:05:06Z"),
      m: new Map([["k", 1]]),
    });
    expect(stored.metadata?.modifiedBy).toBe("admin-ui");
    expect(stored.metadata?.comment).toBe("typed by hand");
    expect(await page.title()).toBe("Entry · Cellar");
    await page.locator("dl.meta").getByText("admin-ui").waitFor();
    await shot(page, "entry");
    await page.close();
  });

  it("shows a conflict when the entry changed meanwhile, and overwrites nothing", async () => {
    await kv.set(["edit", "race"], { by: "first" });
    const page = await open("/entry?key=edit/race");
    await expect
      .poll(() => page.getByLabel("Value", { exact: true }).inputValue(), WAIT)
      .toContain('"by": "first"');
    await edit(page, '{"by": "the UI"}');
    await kv.set(["edit", "race"], { by: "node" });
    await page.getByRole("button", { name: "Save" }).click();
    const conflict = page.getByTestId("conflict");
    await conflict.waitFor();
    expect(await conflict.textContent()).toContain("CHECK_FAILED");
    expect(await conflict.getByTestId("diff").textContent()).toContain('"by": "node"');
    expect((await kv.get(["edit", "race"])).value).toEqual({ by: "node" });
    await shot(page, "entry-conflict");
    await conflict.getByRole("button", { name: /Load theirs/ }).click();
    await expect
      .poll(() => page.getByLabel("Value", { exact: true }).inputValue(), WAIT)
      .toContain('"by": "node"');
    await page.close();
  });

  it("creates, sets expiry on and deletes entries through checked writes, after a confirmation", async () => {
    const page = await open("/entry?new=1&key=made");
    await page.getByRole("textbox", { name: /^Key/ }).fill("made/~n:1");
    await edit(page, '{"hello": "world"}');
    await page.getByRole("button", { name: "Create" }).click();
    await page.waitForURL(/\/entry\?key=made\/~n:1$/);
    expect((await kv.get(["made", 1])).value).toEqual({ hello: "world" });

    await page.getByLabel("Expire in (seconds)").fill("3600");
    await page.getByRole("button", { name: "Set expiry" }).click();
    await page.getByText("Expiry set.").waitFor();
    const expiring = await kv.get(["made", 1], { metadata: true });
    expect(expiring.metadata?.expiresAt).toBeGreaterThan(Date.now() + 3_500_000);
    expect(expiring.value).toEqual({ hello: "world" });
    // The page reads the entry again after the write: wait for that read, not for the notice.
    await expect
      .poll(() => page.getByTestId("expires").textContent(), { timeout: 10_000 })
      .not.toBe("never");

    await page.getByRole("button", { name: "Delete…" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete this entry?" });
    await dialog.getByRole("button", { name: "Cancel" }).click();
    expect((await kv.get(["made", 1])).versionstamp).not.toBeNull();
    await page.getByRole("button", { name: "Delete…" }).click();
    await dialog.getByRole("button", { name: "Delete" }).click();
    await page.waitForURL(/\/keys\?prefix=made$/);
    expect((await kv.get(["made", 1])).versionstamp).toBeNull();

    await kv.set(["made", 2], "taken");
    await page.goto(new URL("/entry?new=1&key=made", server.url).toString());
    await page.getByRole("textbox", { name: /^Key/ }).fill("made/~n:2");
    await edit(page, '"mine"');
    await page.getByRole("button", { name: "Create" }).click();
    await page.getByRole("alert").filter({ hasText: "exists already" }).waitFor();
    expect((await kv.get(["made", 2])).value).toBe("taken");
    await page.close();
  });

  it("lists revisions and diffs two of them", async () => {
    await kv.set(["audit", "doc"], { title: "Draft", words: 10 });
    await kv.set(["audit", "doc"], { title: "Final", words: 12 });
    const page = await open("/entry?key=audit/doc");
    const diff = page.getByTestId("diff");
    await diff.waitFor();
    expect(await diff.locator(".del").allTextContents()).toEqual([
      '-   "title": "Draft",',
      '-   "words": 10',
    ]);
    expect(await diff.locator(".add").allTextContents()).toEqual([
      '+   "title": "Final",',
      '+   "words": 12',
    ]);
    await shot(page, "entry-history");
    await page.close();
  });
});

describe("watch", () => {
  it("streams the events of a pattern as Node writes", async () => {
    const page = await open("/watch?pattern=watched/+/settings");
    await expect.poll(() => page.getByTestId("watch-status").textContent(), WAIT).toMatch(/^live/);
    await kv.set(["watched", "ada", "settings"], { theme: "dark" });
    await kv.set(["watched", "ada", "other"], "not matched");
    await kv.delete(["watched", "ada", "settings"]);
    const events = page.getByRole("list", { name: "Events" }).getByRole("listitem");
    await expect.poll(() => events.count(), WAIT).toBe(2);
    expect(await events.nth(0).textContent()).toMatch(/^delete"watched"\/"ada"\/"settings"/);
    expect(await events.nth(1).textContent()).toContain('{"theme":"dark"}');
    await shot(page, "watch");
    await page.getByLabel(/^Pattern/).fill("nope/+/+/");
    await page.getByRole("button", { name: "Watch", exact: true }).click();
    await page.getByRole("alert").waitFor();
    expect(await page.getByRole("alert").textContent()).toMatch(/INVALID_PATTERN|INVALID_KEY/);
    await page.close();
  });
});

describe("queues", () => {
  it("shows stats and the dead-letter queue: inspect, requeue one or all, delete, purge", async () => {
    const jobs = kv.queue("jobs");
    for (let i = 0; i < 4; i++) await jobs.enqueue({ job: i }, { backoffSchedule: [] });
    for (let i = 0; i < 4; i++) {
      const message = await jobs.dequeue();
      await jobs.nack(message!.token);
    }
    const page = await open("/queues?queue=jobs");
    const dead = page.getByRole("table", { name: "Dead messages" });
    await expect.poll(() => dead.getByRole("row").count(), WAIT).toBe(5);
    await dead.getByRole("button", { name: "Inspect" }).first().click();
    await dead.getByText('"job": 0').waitFor();
    await shot(page, "queues");

    await dead.getByRole("button", { name: "Requeue" }).first().click();
    await page.getByText(/^Requeued /).waitFor();
    await expect.poll(async () => (await jobs.stats()).pending, WAIT).toBe(1);

    await dead.getByRole("button", { name: "Delete…" }).first().click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
    await page.getByText(/^Deleted /).waitFor();
    expect((await jobs.stats()).dead).toBe(2);

    await page.getByRole("button", { name: "Requeue all…" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Requeue all" }).click();
    await page.getByText("Requeued 2 messages.").waitFor();
    expect(await jobs.stats()).toMatchObject({ pending: 3, dead: 0 });

    for (let i = 0; i < 3; i++) await jobs.nack((await jobs.dequeue())!.token);
    await page.getByRole("button", { name: "Refresh" }).click();
    await expect.poll(() => dead.getByRole("row").count(), WAIT).toBe(4);
    await page.getByRole("button", { name: "Purge…" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    expect((await jobs.stats()).dead).toBe(3);
    await page.getByRole("button", { name: "Purge…" }).click();
    await dialog.getByRole("button", { name: "Purge" }).click();
    await page.getByText("Purged 3 dead messages.").waitFor();
    expect((await jobs.stats()).dead).toBe(0);
    await page.close();
  });
});

describe("stores and workspaces", () => {
  it("lists a typed store's entries with its schema, and refuses a value the schema refuses", async () => {
    await PREFS.bind(kv).set("ada", { theme: "dark" });
    const page = await open("/typed?store=prefs");
    const entries = page.getByRole("table", { name: "Entries of prefs" });
    await entries.getByText('{"theme":"dark"}').waitFor();
    await page.getByText("Schema").click();
    expect(await page.getByTestId("schema").textContent()).toContain('"light"');
    await entries.getByRole("button", { name: "Edit" }).click();
    await page.getByLabel("Store value").fill('{"theme": "purple"}');
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("alert").filter({ hasText: "INVALID_VALUE" }).waitFor();
    expect(await PREFS.bind(kv).get("ada")).toEqual({ theme: "dark" });
    await page.getByLabel("Store value").fill('{"theme": "light"}');
    await page.getByRole("button", { name: "Save" }).click();
    await entries.getByText('{"theme":"light"}').waitFor();
    expect(await PREFS.bind(kv).get("ada")).toEqual({ theme: "light" });
    await shot(page, "typed-store");
    await page.close();
  });

  it("shows a workspace's values with their schemas and writes one", async () => {
    const page = await open("/typed?workspace=app");
    const values = page.getByRole("table", { name: "Values of app" });
    await values.getByRole("cell", { name: '"light"', exact: true }).waitFor();
    await values
      .getByRole("row", { name: /visits/ })
      .getByRole("button", { name: "Edit" })
      .click();
    await page.getByLabel("Value of visits").fill("7");
    await values.getByRole("button", { name: "Save" }).click();
    await values.getByRole("cell", { name: "7", exact: true }).waitFor();
    const res = await fetch(new URL("/workspaces/app/kv/visits", server.url));
    expect(await res.json()).toEqual({ data: 7 });
    await shot(page, "typed-workspace");
    await page.close();
  });
});

describe("tokens and access", () => {
  it("shows what the token may do and the namespaces, and opens one", async () => {
    await kv.namespace("tenant-a").set(["only", "here"], 1);
    const page = await open("/access");
    await page.getByTestId("access").filter({ hasText: "admin" }).waitFor();
    const namespaces = page.getByRole("table", { name: "Namespaces" });
    await namespaces.getByText("tenant-a").waitFor();
    await shot(page, "access");
    await namespaces
      .getByRole("row", { name: /tenant-a/ })
      .getByRole("link", { name: "Open keys" })
      .click();
    await page.waitForURL(/\/keys\?ns=tenant-a$/);
    await expect.poll(() => rowsOf(page).count(), WAIT).toBe(1);
    expect(await page.locator(".vrow .key").textContent()).toBe('"only"/"here"');
    await page.close();
  });

  it("asks for a token, keeps it for the tab, and refuses writes of a read-only token with the server's message", async () => {
    const page = await open("/entry?key=notes/one", guarded);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await page.getByLabel("Token").fill("not-a-token-at-all-0000");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "UNAUTHORIZED" }).waitFor();
    await page.getByLabel("Token").fill("ui-reader-token-0123456789");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("This token is read-only").waitFor();
    await expect
      .poll(() => page.getByLabel("Value", { exact: true }).inputValue(), WAIT)
      .toContain("read me");
    await edit(page, '{"text": "changed"}');
    await page.getByRole("button", { name: "Save" }).click();
    const refusal = page.getByRole("alert").filter({ hasText: "FORBIDDEN" });
    await refusal.waitFor();
    expect(await refusal.textContent()).toContain(
      "this token has read access; the request needs write",
    );
    expect((await guarded.kv.get(["notes", "one"])).value).toEqual({ text: "read me" });
    await shot(page, "read-only");

    await page.reload();
    await page.getByText("auditor").waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("cellar.token"))).toBe(
      "ui-reader-token-0123456789",
    );
    await page.close();
  });

  it("shows a token of one namespace what it may see where the metrics are refused", async () => {
    const page = await open("/", guarded);
    await page.getByLabel("Token").fill("ui-tenant-token-0123456789");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "FORBIDDEN" }).waitFor();
    await expect
      .poll(() => page.locator("[data-metric=entries] .card-value").textContent(), WAIT)
      .toBe("1");
    await shot(page, "overview-tenant");
    await page.close();
  });

  it("switches to the dark theme with t, and lists the shortcuts with ?", async () => {
    const page = await open("/");
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    const before = await page.evaluate(() => document.documentElement.dataset.theme);
    await page.keyboard.press("t");
    const after = await page.evaluate(() => document.documentElement.dataset.theme);
    expect(after).not.toBe(before);
    if (after !== "dark") await page.keyboard.press("t");
    await page.keyboard.press("g");
    await page.keyboard.press("k");
    await page.waitForURL(/\/keys$/);
    await page.getByRole("listbox", { name: "Entries" }).waitFor();
    await shot(page, "keys-dark");
    await page.keyboard.press("?");
    await page.getByRole("dialog", { name: "Keyboard shortcuts" }).waitFor();
    await page.close();
  });
});
