/** The OpenAPI 3.1 document, generated from the route definitions, and a reference page. */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { ServerEnv } from "../http/auth.js";

const ASSETS = [
  "swagger-ui.css",
  "swagger-ui-bundle.js",
  "swagger-ui-standalone-preset.js",
] as const;

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Cellar HTTP API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#ui", deepLinking: true });</script>
</body></html>`;

export function docsRoutes(app: OpenAPIHono<ServerEnv>): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
  });
  let document: unknown;
  app.get("/api/openapi.json", (c) => {
    document ??= JSON.parse(
      JSON.stringify(
        app.getOpenAPI31Document({
          openapi: "3.1.0",
          info: {
            title: "Cellar",
            version: "1",
            description:
              "Cellar's HTTP API. Keys in paths: one segment per part (~n: number, ~i: bigint, ~x: hex bytes, ~t/~f booleans, ~s: string). Errors: { error: { code, message } }.",
          },
          security: [{ bearer: [] }],
        }),
      ).replaceAll("{key{.+}}", "{key}"),
    );
    return c.json(document as object);
  });

  const dir = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
  const assets = new Map(ASSETS.map((name) => [name, readFileSync(join(dir, name))]));
  app.get("/api/docs", (c) => c.html(PAGE));
  app.get("/api/docs/:asset", (c) => {
    const name = c.req.param("asset");
    const body = assets.get(name as (typeof ASSETS)[number]);
    if (!body) return c.notFound();
    c.header("content-type", name.endsWith(".css") ? "text/css" : "text/javascript");
    c.header("cache-control", "public, max-age=86400");
    return c.body(new Uint8Array(body));
  });
}
