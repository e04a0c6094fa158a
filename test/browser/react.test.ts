/**
 * `cellar/react` in a real browser: a page built with Vite (React's development build, in
 * Strict Mode) renders components using the hooks in Debian's Chromium, over (a) the remote
 * client of a real server on another origin, written to from Node, and (b) a database in the
 * page's memory. Each component records what it rendered; the tests wait on those records.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import type { Browser, Page, Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Kv, openKv } from "../../src/index.js";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { launchChromium } from "./chromium.js";
import { buildVitePage } from "./vite-page.js";

const PAGE = new URL("./react-page/", import.meta.url).pathname;
const TOKEN = "browser-react-token-0123456789";

type Shown = { value: unknown; versionstamp: string | null; pending: boolean; loading: boolean };

/** Builds the page into `outDir`; resolves to its JavaScript. */
async function buildPage(outDir: string): Promise<string> {
  await buildVitePage(PAGE, outDir);
  const assets = join(outDir, "assets");
  return readdirSync(assets)
    .filter((file) => file.endsWith(".js"))
    .map((file) => readFileSync(join(assets, file), "utf8"))
    .join("\n");
}

function serve(dir: string): Promise<Server> {
  const types: Record<string, string> = { ".js": "text/javascript", ".html": "text/html" };
  const server = createServer((req, res) => {
    const path = req.url === "/" ? "/index.html" : (req.url ?? "/");
    try {
      const body = readFileSync(join(dir, path));
      res.writeHead(200, {
        "content-type": `${types[extname(path)] ?? "text/plain"}; charset=utf-8`,
      });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const records = (page: Page, name: string) =>
  page.evaluate(
    (n) =>
      (window as unknown as { harness: { records: Record<string, unknown[]> } }).harness.records[
        n
      ] ?? [],
    name,
  );

/** Waits until `check` holds of component `name`'s records; resolves to them. */
async function until<T>(page: Page, name: string, check: (seen: T[]) => boolean): Promise<T[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const seen = (await records(page, name)) as T[];
    if (check(seen)) return seen;
    if (Date.now() > deadline)
      throw new Error(`${name} never satisfied the check: ${JSON.stringify(seen)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const last = <T>(seen: T[]) => seen.at(-1);

/** Every entry shown after another has a versionstamp no older than it. */
function expectNeverOlder(seen: Shown[]): void {
  const stamps = seen.map((s) => s.versionstamp).filter((v): v is string => v !== null);
  for (let i = 1; i < stamps.length; i++) expect(stamps[i]! >= stamps[i - 1]!).toBe(true);
}

// biome-ignore lint/suspicious/noExplicitAny: the page's harness, untyped here
type Harness = any;
const call = (page: Page, method: string, ...args: unknown[]) =>
  page.evaluate(
    ({ method, args }) =>
      ((window as unknown as { harness: Harness }).harness[method] as (...a: unknown[]) => unknown)(
        ...args,
      ),
    { method, args },
  );

describe("cellar/react in Chromium", () => {
  let dir: string;
  let code: string;
  let statics: Server;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  let kv: Kv;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cellar-react-"));
    code = await buildPage(dir);
    statics = await serve(dir);
    const origin = `http://127.0.0.1:${(statics.address() as AddressInfo).port}`;
    server = await startServer({
      db: ":memory:",
      port: 0,
      cors: [origin],
      tokens: [{ token: TOKEN, namespaces: ["app"], access: "write" }],
    });
    kv = await openKv(server.url, { token: TOKEN });
    browser = await launchChromium();
    page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(origin);
    await page.waitForFunction(() => "harness" in window, undefined, { timeout: 10_000 });
    expect(errors).toEqual([]);
  }, 60_000);

  afterAll(async () => {
    await kv?.close();
    await browser?.close();
    statics?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("builds for the browser without a Node built-in", () => {
    expect(code).not.toMatch(/from\s*["'`]node:/);
    expect(code).not.toMatch(/\brequire\(["'`]node:/);
  });

  describe("over a server (the remote client)", () => {
    beforeAll(async () => {
      await call(page, "open", server.url, TOKEN);
    });
    afterAll(async () => {
      await call(page, "close");
    });

    it("shows one value in two components, updated by writes from Node", async () => {
      await kv.set(["shared"], "first");
      await call(page, "mount", "Value", { name: "a", k: ["shared"] });
      await call(page, "mount", "Value", { name: "b", k: ["shared"] });
      for (const name of ["a", "b"])
        await until<Shown>(page, name, (s) => last(s)?.value === "first");
      await kv.set(["shared"], "second");
      const seen = await Promise.all(
        ["a", "b"].map((name) => until<Shown>(page, name, (s) => last(s)?.value === "second")),
      );
      for (const s of seen) expectNeverOlder(s);
    });

    it("updates a list on inserts and deletes in range, and renders nothing for writes outside", async () => {
      await kv.set(["items", 1], "one");
      await kv.set(["items", 3], "three");
      await call(page, "mount", "List", { name: "list", k: ["items"], limit: 3 });
      type Listed = { loading: boolean; values: unknown[] };
      const values = (s: Listed[]) => JSON.stringify(last(s)?.values);
      await until<Listed>(page, "list", (s) => values(s) === '["one","three"]');
      await kv.set(["items", 2], "two");
      await until<Listed>(page, "list", (s) => values(s) === '["one","two","three"]');
      await kv.delete(["items", 1]);
      await until<Listed>(page, "list", (s) => values(s) === '["two","three"]');
      const before = (await records(page, "list")).length;
      await kv.set(["itemsX"], "outside");
      await kv.set(["items"], "the prefix's own key");
      await kv.set(["other", 1], "elsewhere");
      // A write the page does show, after those: once it is seen, the others were delivered.
      await kv.set(["shared"], "sentinel");
      await until<Shown>(page, "a", (s) => last(s)?.value === "sentinel");
      expect((await records(page, "list")).length).toBe(before);
    });

    it("never shows an older version: a first read answered after a newer event is dropped", async () => {
      await kv.set(["race"], "v1");
      let held: { route: Route; response: Awaited<ReturnType<Route["fetch"]>> } | null = null;
      let release = () => {};
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      await page.route("**/api/driver/read", async (route) => {
        if (held) return route.continue();
        // Read what the server holds now (v1), and answer only once a newer event was shown.
        held = { route, response: await route.fetch() };
        await released;
        await route.fulfill({ response: held.response });
      });
      const reads = await page.evaluate(
        () => (window as unknown as { harness: { reads: number } }).harness.reads,
      );
      await call(page, "mount", "Value", { name: "race", k: ["race"] });
      await until<Shown>(page, "race", () => held !== null);
      await kv.set(["race"], "v2");
      await until<Shown>(page, "race", (s) => last(s)?.value === "v2");
      release();
      // The stale read has finished in the page…
      await page.waitForFunction(
        (n) => (window as unknown as { harness: { reads: number } }).harness.reads > n,
        reads,
      );
      // …and a later write still arrives after it.
      await kv.set(["race"], "v3");
      const seen = await until<Shown>(page, "race", (s) => last(s)?.value === "v3");
      await page.unroute("**/api/driver/read");
      const shown = seen.filter((s) => !s.loading).map((s) => s.value);
      expect(shown).not.toContain("v1");
      expect(shown[0]).toBe("v2");
      expectNeverOlder(seen);
    });

    it("shows an optimistic write at once, replaced only by the server's entry for it", async () => {
      await kv.set(["opt"], "A");
      await call(page, "mount", "Optimistic", { name: "opt", k: ["opt"] });
      await until<Shown>(page, "opt", (s) => last(s)?.value === "A");
      let release = () => {};
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      await page.route("**/api/driver/write", async (route) => {
        await released;
        await route.continue();
      });
      const committed = page.evaluate(() =>
        (window as unknown as { harness: Harness }).harness.mutate("opt", "B"),
      ) as Promise<{ versionstamp: string }>;
      // While the write is held at the network, the page already shows it, pending.
      await until<Shown>(page, "opt", (s) => last(s)?.value === "B" && last(s)?.pending === true);
      release();
      const { versionstamp } = await committed;
      await page.unroute("**/api/driver/write");
      const seen = await until<Shown>(
        page,
        "opt",
        (s) => last(s)?.pending === false && last(s)?.value === "B",
      );
      const from = seen.findIndex((s) => s.value === "B");
      expect(seen.slice(from).every((s) => s.value === "B")).toBe(true);
      const confirmed = seen.slice(from).find((s) => !s.pending)!;
      expect(confirmed.versionstamp! >= versionstamp).toBe(true);
      expect((await kv.get(["opt"])).value).toBe("B");
    });

    it("suspends until the first read, then shows the value", async () => {
      await kv.set(["suspended"], "ready");
      await call(page, "mount", "Suspended", { name: "sus", k: ["suspended"] });
      const seen = await until<unknown>(
        page,
        "sus",
        (s) => (last(s) as Shown | undefined)?.value === "ready",
      );
      expect(seen[0]).toBe("fallback");
    });
  });

  describe("over a client store (createClientKv)", () => {
    beforeAll(async () => {
      await call(page, "openClient", server.url, TOKEN);
    });
    afterAll(async () => {
      await call(page, "close");
    });

    it("shows the store's view in two components and a list, updated by writes from Node", async () => {
      await kv.set(["shared"], "c1");
      await kv.set(["items", 1], "one");
      await call(page, "mount", "Value", { name: "a", k: ["shared"] });
      await call(page, "mount", "Value", { name: "b", k: ["shared"] });
      await call(page, "mount", "List", { name: "list", k: ["items"] });
      await call(page, "mount", "Status", { name: "status", k: [] });
      for (const name of ["a", "b"]) await until<Shown>(page, name, (s) => last(s)?.value === "c1");
      type Listed = { values: unknown[] };
      const values = (s: Listed[]) => JSON.stringify(last(s)?.values);
      // The earlier tests left items 2 and 3 on the server.
      await until<Listed>(page, "list", (s) => values(s) === '["one","two","three"]');
      await kv.set(["shared"], "c2");
      await kv.set(["items", 0], "zero");
      for (const name of ["a", "b"]) await until<Shown>(page, name, (s) => last(s)?.value === "c2");
      await until<Listed>(page, "list", (s) => values(s) === '["zero","one","two","three"]');
      await kv.delete(["items", 0]);
      await until<Listed>(page, "list", (s) => values(s) === '["one","two","three"]');
      const before = (await records(page, "list")).length;
      await kv.set(["itemsX"], "outside");
      await kv.set(["shared"], "c3");
      await until<Shown>(page, "a", (s) => last(s)?.value === "c3");
      expect((await records(page, "list")).length).toBe(before);
      const status = await until<{ state: string } | null>(
        page,
        "status",
        (s) => last(s)?.state === "online",
      );
      expect(status.length).toBeGreaterThan(0);
      for (const name of ["a", "b"]) expectNeverOlder((await records(page, name)) as Shown[]);
    });

    it("shows a write at once, pending, then the server's entry for it", async () => {
      await kv.set(["opt"], "A");
      await call(page, "mount", "Optimistic", { name: "opt", k: ["opt"] });
      await until<Shown>(page, "opt", (s) => last(s)?.value === "A" && !last(s)?.pending);
      await page.evaluate(() => {
        void (window as unknown as { harness: Harness }).harness.mutate("opt", "B");
      });
      const seen = await until<Shown>(
        page,
        "opt",
        (s) => last(s)?.value === "B" && !last(s)?.pending,
      );
      const from = seen.findIndex((s) => s.value === "B");
      expect(seen[from]?.pending).toBe(true);
      expect(seen.slice(from).every((s) => s.value === "B")).toBe(true);
      expect((await kv.get(["opt"])).value).toBe("B");
      expect(last(seen)?.versionstamp).toBe((await kv.get(["opt"])).versionstamp);
    });
  });

  describe("over a database in the page's memory", () => {
    beforeAll(async () => {
      await call(page, "open");
    });
    afterAll(async () => {
      await call(page, "close");
    });

    it("shows one value in two components and follows a list", async () => {
      await call(page, "write", ["shared"], 1);
      await call(page, "mount", "Value", { name: "a", k: ["shared"] });
      await call(page, "mount", "Value", { name: "b", k: ["shared"] });
      await call(page, "mount", "List", { name: "list", k: ["items"] });
      for (const name of ["a", "b"]) await until<Shown>(page, name, (s) => last(s)?.value === 1);
      await call(page, "write", ["shared"], 2);
      await call(page, "write", ["items", "x"], "x");
      await call(page, "write", ["items", "y"], "y");
      for (const name of ["a", "b"]) await until<Shown>(page, name, (s) => last(s)?.value === 2);
      type Listed = { values: unknown[] };
      await until<Listed>(page, "list", (s) => JSON.stringify(last(s)?.values) === '["x","y"]');
      await call(page, "remove", ["items", "x"]);
      await until<Listed>(page, "list", (s) => JSON.stringify(last(s)?.values) === '["y"]');
      const before = (await records(page, "list")).length;
      await call(page, "write", ["itemz"], "outside");
      await call(page, "write", ["shared"], 3);
      await until<Shown>(page, "a", (s) => last(s)?.value === 3);
      expect((await records(page, "list")).length).toBe(before);
    });

    it("shows an optimistic write, then the stored entry", async () => {
      await call(page, "mount", "Optimistic", { name: "opt", k: ["opt"] });
      await until<Shown>(page, "opt", (s) => last(s)?.loading === false);
      const { versionstamp } = (await call(page, "mutate", "opt", "B")) as { versionstamp: string };
      const seen = await until<Shown>(
        page,
        "opt",
        (s) => last(s)?.pending === false && last(s)?.value === "B",
      );
      expect(seen.some((s) => s.value === "B" && s.pending)).toBe(true);
      expect(last(seen)?.versionstamp).toBe(versionstamp);
    });
  });
});
