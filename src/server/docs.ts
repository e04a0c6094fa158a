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
  let document: OpenApiDocument | undefined;
  app.get("/api/openapi.json", (c) => {
    document ??= withNamespaceAndIds(
      JSON.parse(
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
      ),
    );
    return c.json(document);
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

type Operation = { operationId?: string; parameters?: unknown[] };
type OpenApiDocument = {
  paths?: Record<string, Record<string, Operation>>;
  components?: Record<string, Record<string, unknown>>;
};

const HTTP_METHODS = new Set(["get", "put", "post", "patch", "delete", "head", "options"]);

/**
 * The operation id a route without its own gets, from its method and path, so generated clients
 * have stable names: `GET /api/keys/{key}` is `getKeysByKey`, `POST /api/queues/{name}/dlq/requeue`
 * is `postQueuesByNameDlqRequeue`.
 */
export function operationIdOf(method: string, path: string): string {
  const words = path
    .replace(/^\/api(?=\/|$)/, "")
    .split("/")
    .filter(Boolean)
    .map((segment) => {
      const param = /^\{(.+)\}$/.exec(segment);
      return param ? `By-${param[1]}` : segment;
    })
    .flatMap((segment) => segment.split(/[^A-Za-z0-9]+/))
    .filter(Boolean)
    .map((word) => word[0]!.toUpperCase() + word.slice(1));
  return method.toLowerCase() + words.join("");
}

/**
 * Gives every operation an operationId and every `/api` operation the namespace header, which
 * applies to all of them (`--namespace-from token|header`): Hono's route definitions would have
 * to repeat both on each route.
 */
function withNamespaceAndIds(document: OpenApiDocument): OpenApiDocument {
  document.components ??= {};
  document.components.parameters = {
    ...document.components.parameters,
    Namespace: {
      name: "X-Cellar-Namespace",
      in: "header",
      required: false,
      description:
        "The namespace the request works in, for a token that may use several (or any, with --namespace-from header). A token of one namespace needs none; with --namespace-from host the host name decides and the header is ignored.",
      schema: { type: "string", minLength: 1, maxLength: 256 },
    },
  };
  for (const [path, operations] of Object.entries(document.paths ?? {})) {
    for (const [method, operation] of Object.entries(operations)) {
      if (!HTTP_METHODS.has(method)) continue;
      operation.operationId ??= operationIdOf(method, path);
      if (path.startsWith("/api/")) {
        operation.parameters = [
          ...(operation.parameters ?? []),
          { $ref: "#/components/parameters/Namespace" },
        ];
      }
    }
  }
  return document;
}
