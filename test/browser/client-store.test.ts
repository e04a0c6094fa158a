/**
 * The client store in a real browser: a page built with Vite (React, `useValue` over a client
 * store kept in IndexedDB) in two Chromium contexts — two users — against a real server. One
 * goes offline (`context.setOffline`), writes, reloads while offline (the page itself comes from
 * a route, as an installed app's would from its cache), comes back and converges with the
 * other; a conflicting write under the default policy (`reject`) shows the server's value and
 * the conflict; the component never renders an older server version after a newer one.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, relative } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Kv } from "../../src/index.js";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { launchChromium } from "./chromium.js";
import { buildVitePage } from "./vite-page.js";

const PAGE = new URL("./client-store-page/", import.meta.url).pathname;
/** The app's origin: every request to it is answered from the built files, online or not. */
const ORIGIN = "http://localhost:9";
const TOKEN = "browser-store-token-0123456789";

interface Shown {
  value: unknown;
  versionstamp: string | null;
  pending: boolean;
  state: string;
  pendingWrites: number;
}

async function buildPage(outDir: string): Promise<Map<string, Buffer>> {
  await buildVitePage(PAGE, outDir);
  const files = new Map<string, Buffer>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.set(`/${relative(outDir, path)}`, readFileSync(path));
    }
  };
  walk(outDir);
  return files;
}

// biome-ignore lint/suspicious/noExplicitAny: the page's harness, untyped here
type Harness = any;
const call = <T = unknown>(page: Page, method: string, ...args: unknown[]): Promise<T> =>
  page.evaluate(
    ({ method, args }) =>
      ((window as unknown as { harness: Harness }).harness[method] as (...a: unknown[]) => unknown)(
        ...args,
      ),
    { method, args },
  ) as Promise<T>;

async function until<T>(
  what: string,
  read: () => Promise<T>,
  check: (value: T) => boolean,
): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`${what}: never happened; last ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The server versionstamps a component rendered never go back. */
function expectNeverOlder(seen: Shown[]): void {
  const stamps = seen
    .filter((s) => !s.pending && s.versionstamp !== null)
    .map((s) => s.versionstamp!);
  for (let i = 1; i < stamps.length; i++) expect(stamps[i]! >= stamps[i - 1]!).toBe(true);
}

describe("client store in Chromium", () => {
  let dir: string;
  let files: Map<string, Buffer>;
  let server: RunningServer;
  let browser: Browser;
  let kv: Kv;
  const users: { context: BrowserContext; page: Page }[] = [];

  async function openUser(): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext();
    await context.route(`${ORIGIN}/**`, (route) => {
      const path = new URL(route.request().url()).pathname;
      const body = files.get(path === "/" ? "/index.html" : path);
      if (!body) return route.fulfill({ status: 404 });
      const type = extname(path) === ".js" ? "text/javascript" : "text/html";
      return route.fulfill({ status: 200, contentType: `${type}; charset=utf-8`, body });
    });
    const page = await context.newPage();
    await load(page);
    const user = { context, page };
    users.push(user);
    return user;
  }

  async function load(page: Page): Promise<void> {
    await page.goto(`${ORIGIN}/`);
    await page.waitForFunction(() => "harness" in window, undefined, { timeout: 10_000 });
    await call(page, "open", server.url, TOKEN);
  }

  const records = (page: Page) =>
    page.evaluate(() => (window as unknown as { harness: Harness }).harness.records as Shown[]);
  const lastShown = async (page: Page) => (await records(page)).at(-1);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cellar-client-store-"));
    files = await buildPage(join(dir, "page"));
    server = await startServer({
      db: join(dir, "server.db"),
      port: 0,
      cors: [ORIGIN],
      tokens: [{ token: TOKEN, namespaces: ["app"], access: "write" }],
    });
    kv = server.kv.namespace("app");
    // The app's page comes from a route (it has no address), which Chromium's Local Network
    // Access checks count as public, so they would refuse its socket to the loopback server; a
    // deployed app loads from the server's own origin or a real host instead.
    browser = await launchChromium(["--disable-features=LocalNetworkAccessChecks"]);
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("two users see one value; one writes offline, reloads offline, comes back and converges", async () => {
    await kv.set(["doc"], "v1");
    const a = await openUser();
    const b = await openUser();
    for (const { page } of [a, b])
      await until(
        "v1 shown",
        () => lastShown(page),
        (s) => s?.value === "v1" && s.state === "online",
      );

    await a.context.setOffline(true);
    await until(
      "A offline",
      () => lastShown(a.page),
      (s) => s?.state === "offline",
    );
    await call(a.page, "set", ["doc"], "written offline");
    await call(a.page, "set", ["note"], "also offline");
    const offline = await until(
      "A shows its write",
      () => lastShown(a.page),
      (s) => s?.value === "written offline",
    );
    expect(offline).toMatchObject({ pending: true, pendingWrites: 2 });

    // A reload while offline: the replica and the outbox come back from IndexedDB.
    await a.page.reload();
    await a.page.waitForFunction(() => "harness" in window, undefined, { timeout: 10_000 });
    await call(a.page, "open", server.url, TOKEN);
    const reloaded = await until(
      "A's write after reload",
      () => lastShown(a.page),
      (s) => s?.value === "written offline",
    );
    expect(reloaded).toMatchObject({ pending: true, pendingWrites: 2, state: "offline" });
    expect(await call(a.page, "outbox")).toMatchObject([{ keys: [["doc"]] }, { keys: [["note"]] }]);
    expect((await kv.get(["doc"])).value).toBe("v1");
    expect((await lastShown(b.page))?.value).toBe("v1");

    await a.context.setOffline(false);
    await call(a.page, "synced");
    expect((await kv.get(["doc"])).value).toBe("written offline");
    expect((await kv.get(["note"])).value).toBe("also offline");
    await until(
      "B converges",
      () => lastShown(b.page),
      (s) => s?.value === "written offline",
    );
    const settled = await until(
      "A confirmed",
      () => lastShown(a.page),
      (s) => s?.pending === false && s.pendingWrites === 0,
    );
    expect(settled?.versionstamp).toBe((await kv.get(["doc"])).versionstamp);
    for (const { page } of [a, b]) expectNeverOlder(await records(page));
  });

  it("shows the server's value and the conflict when a write conflicts under reject", async () => {
    const [a, b] = users as [(typeof users)[0], (typeof users)[0]];
    await a.context.setOffline(true);
    await until(
      "A offline",
      () => lastShown(a.page),
      (s) => s?.state === "offline",
    );
    const mine = await call<number>(a.page, "set", ["doc"], "A's edit");
    const theirs = await call<number>(b.page, "set", ["doc"], "B's edit");
    await until(
      "B's write confirmed",
      () => call(b.page, "outcome", theirs),
      (o) => o !== null,
    );
    await a.context.setOffline(false);
    const outcome = await until(
      "A's answer",
      () => call(a.page, "outcome", mine),
      (o) => o !== null,
    );
    expect(outcome).toMatchObject({ ok: false, error: { code: "CONFLICT" } });
    await until(
      "A shows B's edit",
      () => lastShown(a.page),
      (s) => s?.value === "B's edit" && !s.pending,
    );
    const status = await call<{ conflicts: unknown[] }>(a.page, "status");
    expect(status.conflicts).toMatchObject([
      {
        key: ["doc"],
        attempted: { type: "set", value: "A's edit" },
        server: { value: "B's edit" },
      },
    ]);
    expect((await kv.get(["doc"])).value).toBe("B's edit");
    for (const { page } of [a, b]) expectNeverOlder(await records(page));
  });
});
