/**
 * `cellar/client` in a real browser: the entry bundled for the browser with no Node polyfills,
 * loaded by Debian's Chromium from a loopback page, talking to a real `cellar serve` on another
 * origin (so through CORS), and holding a database in the page's memory.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Kv, KvU64, openKv } from "../../src/index.js";
import { launchChromium } from "./chromium.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const TOKEN = "browser-test-token-0123456789";
/** Bundles `src/client.ts` for browsers; any Node built-in in its graph fails the build. */
async function bundleClient(): Promise<string> {
  const result = await build({
    entryPoints: [join(ROOT, "src/client.ts")],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    // The package's "imports" point browsers at the built dist/; this condition picks src/.
    conditions: ["cellar-source"],
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}

async function startCellar(
  cors: string,
  dir: string,
): Promise<{ url: string; child: ChildProcess }> {
  const tokens = join(dir, "tokens.json");
  writeFileSync(
    tokens,
    JSON.stringify({ tokens: [{ token: TOKEN, namespaces: ["app"], access: "write" }] }),
  );
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "src/cli/index.ts"), "serve", "--db", ":memory:"].concat([
      "--port",
      "0",
      "--tokens",
      tokens,
      "--cors",
      cors,
    ]),
    { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
  );
  // Keep reading stdout after the address, so the server never writes into a closed pipe.
  let output = "";
  child.stdout!.on("data", (chunk) => {
    output += String(chunk);
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const match = /listening on (http:\/\/\S+)/.exec(output);
    if (match) return { url: match[1]!, child };
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`cellar serve did not start: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function startStatic(bundle: string): Promise<Server> {
  const page = `<!doctype html><meta charset="utf-8"><title>cellar/client</title>
<script type="module">import * as cellar from "/client.js"; window.cellar = cellar;</script>`;
  const server = createServer((req, res) => {
    const [type, body] =
      req.url === "/client.js" ? ["text/javascript", bundle] : ["text/html", page];
    res.writeHead(200, { "content-type": `${type}; charset=utf-8` }).end(body);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

describe("cellar/client in Chromium", () => {
  let bundle: string;
  let dir: string;
  let statics: Server;
  let cellar: { url: string; child: ChildProcess };
  let browser: Browser;
  let page: Page;
  let kv: Kv;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cellar-browser-"));
    bundle = await bundleClient();
    statics = await startStatic(bundle);
    const origin = `http://127.0.0.1:${(statics.address() as AddressInfo).port}`;
    cellar = await startCellar(origin, dir);
    kv = await openKv(cellar.url, { token: TOKEN });
    browser = await launchChromium();
    page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(origin);
    await page.waitForFunction(() => "cellar" in window, undefined, { timeout: 10_000 });
    expect(errors).toEqual([]);
  }, 60_000);

  afterAll(async () => {
    await kv?.close();
    await browser?.close();
    statics?.close();
    if (cellar) {
      cellar.child.kill("SIGTERM");
      await once(cellar.child, "exit");
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("bundles for the browser without a Node built-in", () => {
    expect(bundle).not.toMatch(/["'`]node:/);
    expect(bundle).not.toMatch(/\brequire\(/);
    expect(bundle).not.toMatch(/\bBuffer\./);
  });

  it("writes, reads, lists and sums on a server, values Node reads back", async () => {
    await kv.set(["from-node"], new Map<string, unknown>([["when", new Date(1_000)]]));
    const seen = await page.evaluate(
      async ({ url, token }) => {
        // biome-ignore lint/suspicious/noExplicitAny: the bundle's exports, untyped in the page
        const { openKv, KvU64 } = (window as any).cellar;
        const remote = await openKv(url, { token });
        await remote.set(["users", "ada"], { name: "Ada", langs: new Set(["en"]) });
        await remote.set(["users", "bob"], new Date(86_400_000));
        await remote.set(["users", "cy"], new Map([[1, "one"]]));
        await remote.set(["visits"], new KvU64(40n));
        const sum = await remote.atomic().sum(["visits"], 2n).commit();
        const fromNode = (await remote.get(["from-node"])).value;
        const listed = [];
        for await (const entry of remote.list({ prefix: ["users"] })) listed.push(entry.key);
        const visits = (await remote.get(["visits"])).value;
        await remote.close();
        return {
          ok: sum.ok,
          listed,
          visits: visits instanceof KvU64 ? visits.value.toString() : null,
          fromNode: fromNode instanceof Map ? (fromNode.get("when") as Date).getTime() : null,
        };
      },
      { url: cellar.url, token: TOKEN },
    );
    expect(seen).toEqual({
      ok: true,
      listed: [
        ["users", "ada"],
        ["users", "bob"],
        ["users", "cy"],
      ],
      visits: "42",
      fromNode: 1000,
    });
    expect((await kv.get(["users", "ada"])).value).toEqual({
      name: "Ada",
      langs: new Set(["en"]),
    });
    expect((await kv.get(["users", "bob"])).value).toEqual(new Date(86_400_000));
    expect((await kv.get(["users", "cy"])).value).toEqual(new Map([[1, "one"]]));
    expect((await kv.get(["visits"])).value).toEqual(new KvU64(42n));
  });

  it("watches a key and receives a change made from Node", async () => {
    await page.evaluate(
      async ({ url, token }) => {
        // biome-ignore lint/suspicious/noExplicitAny: the bundle's exports, untyped in the page
        const w = window as any;
        const remote = await w.cellar.openKv(url, { token });
        const reader = remote.watch([["watched"]]).getReader();
        const first = await reader.read();
        w.initialWatch = first.value[0].value;
        w.nextWatch = reader.read().then(async (next: { value: [{ value: unknown }] }) => {
          await reader.cancel();
          await remote.close();
          return next.value[0].value;
        });
      },
      { url: cellar.url, token: TOKEN },
    );
    expect(
      await page.evaluate(() => (window as unknown as { initialWatch: unknown }).initialWatch),
    ).toBeNull();
    await kv.set(["watched"], { by: "node", at: new Date(5) });
    const next = await page.evaluate(async () => {
      const value = await (window as unknown as { nextWatch: Promise<{ by: string; at: Date }> })
        .nextWatch;
      return { by: value.by, at: value.at.getTime() };
    });
    expect(next).toEqual({ by: "node", at: 5 });
  });

  it("keeps a database in the page's memory", async () => {
    const seen = await page.evaluate(async () => {
      // biome-ignore lint/suspicious/noExplicitAny: the bundle's exports, untyped in the page
      const { openKv, KvU64 } = (window as any).cellar;
      const local = await openKv();
      await local.set(["todo", 1], { title: "write", tags: new Set(["a"]) });
      await local.set(["todo", 2], { title: "test" });
      const entry = await local.get(["todo", 1], { metadata: true });
      const res = await local
        .atomic()
        .check({ key: ["todo", 2], versionstamp: (await local.get(["todo", 2])).versionstamp })
        .set(["todo", 3], { title: "ship" })
        .sum(["count"], 3n)
        .commit();
      const keys = [];
      for await (const e of local.list({ prefix: ["todo"] })) keys.push(e.key[1]);
      const count = (await local.get(["count"])).value;
      await local.close();
      return {
        title: entry.value.title,
        tagged: entry.value.tags instanceof Set && entry.value.tags.has("a"),
        hashed: /^[0-9a-f]{64}$/.test(entry.metadata.dataHash),
        ok: res.ok,
        keys,
        count: count instanceof KvU64 ? Number(count.value) : null,
      };
    });
    expect(seen).toEqual({
      title: "write",
      tagged: true,
      hashed: true,
      ok: true,
      keys: [1, 2, 3],
      count: 3,
    });
  });
});
