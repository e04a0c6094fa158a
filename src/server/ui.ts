/**
 * The admin web UI: the files Vite builds into `dist/ui/` (`npm run build`), served by Cellar
 * itself, so a browser needs nothing but this server. The UI is a single page: each of its views
 * has a URL of its own (`/keys?prefix=users`), answered with `index.html`, which reads the URL.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { ServerEnv } from "../http/auth.js";

/** The UI's views: their paths answer `index.html`, so a deep link or a reload works. */
export const UI_VIEWS = ["keys", "entry", "watch", "queues", "access", "typed"] as const;

/**
 * Everything the page loads comes from this server; scripts and styles only from files (no
 * inline code), and no other site may frame it.
 */
export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

/** A page saying how to build the UI, for a checkout that runs from `src/` without `dist/ui/`. */
const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cellar</title></head>
<body>
<h1>Cellar is running</h1>
<p>The admin UI is not built in this checkout. Build it with <code>npm run build</code>
(or <code>npm run build:ui</code> for the UI alone), then reload this page.</p>
<p>The HTTP API answers meanwhile: <a href="/api/docs">/api/docs</a>.</p>
</body></html>`;

/**
 * Where the built UI is: `dist/ui/` beside `dist/server/`, whether this module runs from there or
 * from `src/server/` (with tsx, where `src/ui/` holds the sources, not a build).
 */
export function defaultUiDir(): string | undefined {
  const relative = import.meta.url.endsWith(".ts") ? "../../dist/ui" : "../ui";
  const dir = fileURLToPath(new URL(relative, import.meta.url));
  return existsSync(join(dir, "index.html")) ? dir : undefined;
}

const loaded = new Map<string, Map<string, Uint8Array>>();

/**
 * Reads the built files once per process (every app of it shares them): the UI is small, and a
 * rebuild means a restart.
 */
function loadFiles(dir: string): Map<string, Uint8Array> {
  const known = loaded.get(dir);
  if (known) return known;
  const files = new Map<string, Uint8Array>();
  const walk = (sub: string) => {
    for (const name of readdirSync(join(dir, sub))) {
      const rel = sub === "" ? name : `${sub}/${name}`;
      if (statSync(join(dir, rel)).isDirectory()) walk(rel);
      else files.set(`/${rel}`, new Uint8Array(readFileSync(join(dir, rel))));
    }
  };
  walk("");
  loaded.set(dir, files);
  return files;
}

/**
 * Serves the UI at `/`, its views and `/assets/*`. `dir` is the built UI (`dist/ui/`); where it
 * holds no build, `/` answers a page saying how to make one.
 */
export function uiRoutes(app: OpenAPIHono<ServerEnv>, dir: string | null | undefined): void {
  const built = dir !== null && dir !== undefined && existsSync(join(dir, "index.html"));
  const files = built ? loadFiles(dir) : new Map<string, Uint8Array>();
  const index = files.get("/index.html");
  const page = (c: Context<ServerEnv>) => {
    c.header("content-security-policy", UI_CSP);
    c.header("x-content-type-options", "nosniff");
    c.header("referrer-policy", "no-referrer");
    c.header("cache-control", "no-cache");
    if (!index) return c.html(NOT_BUILT, 200);
    c.header("content-type", TYPES[".html"]);
    return c.body(index as Uint8Array<ArrayBuffer>, 200);
  };
  app.on(["GET", "HEAD"], "/", page);
  for (const view of UI_VIEWS) app.on(["GET", "HEAD"], `/${view}`, page);
  app.on(["GET", "HEAD"], "/assets/*", (c) => {
    const body = files.get(c.req.path);
    if (!body) return c.notFound();
    c.header("content-type", TYPES[extname(c.req.path)] ?? "application/octet-stream");
    c.header("x-content-type-options", "nosniff");
    // Vite names every asset by a hash of its content: a new build is a new name.
    c.header("cache-control", "public, max-age=31536000, immutable");
    return c.body(body as Uint8Array<ArrayBuffer>, 200);
  });
  for (const [path, body] of files) {
    if (path.startsWith("/assets/") || path === "/index.html") continue;
    app.on(["GET", "HEAD"], path, (c) => {
      c.header("content-type", TYPES[extname(path)] ?? "application/octet-stream");
      c.header("x-content-type-options", "nosniff");
      c.header("cache-control", "public, max-age=3600");
      return c.body(body as Uint8Array<ArrayBuffer>, 200);
    });
  }
}
