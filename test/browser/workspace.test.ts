/**
 * Workspace sync in a real browser: `connectDoc` bundled for browsers (y-websocket on the
 * page's own WebSocket, the token as `?token=`), in two pages of Debian's Chromium, against a
 * real server on another origin. Two pages edit one text at once and converge; one goes
 * offline, edits, comes back, and converges.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { build } from "esbuild";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { ytext } from "../../src/workspace/columns.js";
import { defineWorkspace } from "../../src/workspace/define.js";
import { launchChromium } from "./chromium.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const TOKEN = "browser-workspace-token-0123456789";
const notes = defineWorkspace({ id: "notes", kv: { body: ytext() } });

/** `connectDoc` and Yjs for the page; any Node built-in in its graph fails the build. */
async function bundle(): Promise<string> {
  const result = await build({
    stdin: {
      contents: `import * as Y from "yjs";
import { connectDoc } from "./src/workspace/remote.ts";
window.sync = { Y, connectDoc };`,
      resolveDir: ROOT,
      loader: "ts",
    },
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    conditions: ["cellar-source"],
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}

function startStatic(code: string): Promise<Server> {
  const page = `<!doctype html><meta charset="utf-8"><title>workspace</title>
<script type="module" src="/sync.js"></script>`;
  const server = createServer((req, res) => {
    const [type, body] = req.url === "/sync.js" ? ["text/javascript", code] : ["text/html", page];
    res.writeHead(200, { "content-type": `${type}; charset=utf-8` }).end(body);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** Opens a page that connects the workspace's doc; `text()` reads its body in the page. */
async function openEditor(context: BrowserContext, origin: string, url: string): Promise<Page> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(origin);
  await page.waitForFunction(() => "sync" in window, undefined, { timeout: 10_000 });
  await page.evaluate(
    async ({ url, token }) => {
      // biome-ignore lint/suspicious/noExplicitAny: the bundle's exports, untyped in the page
      const w = window as any;
      w.remote = w.sync.connectDoc(url, "notes", { token, maxBackoffTime: 300 });
      w.status = [];
      await w.remote.whenSynced;
    },
    { url, token: TOKEN },
  );
  expect(errors).toEqual([]);
  return page;
}

/** Runs `edit(text)` on the page's `Y.Text` of key `body`. */
function edit(page: Page, script: string): Promise<void> {
  return page.evaluate((source) => {
    // biome-ignore lint/suspicious/noExplicitAny: the page's globals
    const w = window as any;
    const map = w.remote.doc.getMap("kv");
    let text = map.get("body");
    if (!text) {
      text = new w.sync.Y.Text();
      map.set("body", text);
    }
    new Function("text", source)(text);
  }, script);
}

const textOf = (page: Page) =>
  page.evaluate(() => {
    // biome-ignore lint/suspicious/noExplicitAny: the page's globals
    const body = (window as any).remote.doc.getMap("kv").get("body");
    return body ? String(body.toString()) : "";
  });

async function converged(pages: Page[], check: (text: string) => boolean): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const texts = await Promise.all(pages.map(textOf));
    if (texts.every((text) => text === texts[0]) && check(texts[0]!)) return texts[0]!;
    if (Date.now() > deadline)
      throw new Error(`the pages did not converge: ${JSON.stringify(texts)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("workspace sync in Chromium", () => {
  let statics: Server;
  let server: RunningServer;
  let browser: Browser;
  let contexts: BrowserContext[];
  let pages: Page[];
  let code: string;

  beforeAll(async () => {
    code = await bundle();
    statics = await startStatic(code);
    const origin = `http://127.0.0.1:${(statics.address() as AddressInfo).port}`;
    server = await startServer({
      db: ":memory:",
      port: 0,
      workspaces: [notes],
      cors: [origin],
      tokens: [{ token: TOKEN, namespaces: ["workspace-notes"], access: "write" }],
    });
    browser = await launchChromium();
    // One context per page: going offline is per context.
    contexts = [await browser.newContext(), await browser.newContext()];
    pages = await Promise.all(contexts.map((context) => openEditor(context, origin, server.url)));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    statics?.close();
    await server?.close();
  });

  it("bundles connectDoc for the browser without a Node built-in", () => {
    // lib0 keeps a Buffer path behind its own environment check; no module of Node is imported.
    expect(code).not.toMatch(/["'`]node:/);
    expect(code).not.toMatch(/\brequire\(["'`]/);
  });

  it("merges two pages typing into one text at the same time", async () => {
    const [a, b] = pages as [Page, Page];
    await edit(a, 'text.insert(0, "shared ")');
    await converged(pages, (text) => text === "shared ");
    await Promise.all([
      edit(a, 'for (const c of "left") text.insert(0, c)'),
      edit(b, 'for (const c of "right") text.insert(text.length, c)'),
    ]);
    const text = await converged(pages, (t) => t.length === "shared ".length + 9);
    expect(text).toBe("tfelshared right");
    const stored = await fetch(`${server.url}/workspaces/notes/kv/body`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(await stored.json()).toEqual({ data: text });
  });

  it("catches a page up after it went offline and edited", async () => {
    const [a, b] = pages as [Page, Page];
    const before = await converged(pages, () => true);
    await contexts[1]!.setOffline(true);
    await edit(b, 'text.insert(0, "[offline]")');
    await edit(a, 'text.insert(text.length, "[online]")');
    // While offline, neither edit crosses.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await textOf(a)).not.toContain("[offline]");
    await contexts[1]!.setOffline(false);
    const text = await converged(pages, (t) => t.includes("[offline]") && t.includes("[online]"));
    expect(text).toBe(`[offline]${before}[online]`);
  });
});
