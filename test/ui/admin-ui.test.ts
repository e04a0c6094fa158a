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
import { type Kv, KvU64, openKv } from "../../src/index.js";
import { createApp } from "../../src/server/app.js";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { UI_CSP } from "../../src/server/ui.js";
import { launchChromium } from "../browser/chromium.js";

const SHOTS = new URL("../../test-results/ui/", import.meta.url).pathname;
const CONFIG = new URL("../../src/ui/vite.config.ts", import.meta.url).pathname;

/** How long a test waits for the page to show something (the UI polls metrics every 2 s). */
const WAIT = { timeout: 15_000 };

let dir: string;
let uiDir: string;
let server: RunningServer;
let kv: Kv;
let browser: Browser;

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
  await build({ configFile: CONFIG, logLevel: "silent", build: { outDir: uiDir } });
  kv = await openKv(join(dir, "ui.db"), { history: { keepValues: [["audit"]] } });
  await seed(kv);
  server = await startServer({ db: kv, port: 0, ui: uiDir });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(path: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error" && !/status of 4\d\d/.test(message.text())) {
      problems.push(message.text());
    }
  });
  (page as Page & { problems: string[] }).problems = problems;
  await page.goto(new URL(path, server.url).toString());
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
