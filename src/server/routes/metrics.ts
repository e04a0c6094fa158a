/**
 * The database's metrics (its `withMetrics` registry, with the server's HTTP metrics added):
 * Prometheus text at `GET /metrics`, where scrapers look, and the same as JSON at
 * `GET /api/metrics`. Metrics describe every namespace (queue names, totals), so with tokens on
 * they need a token of every namespace (`"*"`) with at least read access.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Registry } from "prom-client";
import { KvError } from "../../errors.js";
import {
  type Authenticator,
  authenticate,
  type RequestScope,
  requireAccess,
  type ServerEnv,
} from "../../http/auth.js";
import { errors, json } from "./keys.js";

export const METRICS_ROUTE = "/metrics";

const MetricsJson = z
  .array(
    z
      .object({
        name: z.string(),
        help: z.string(),
        type: z.enum(["counter", "gauge", "histogram", "summary"]),
        values: z.array(
          z.object({
            value: z.number(),
            labels: z.record(z.string(), z.union([z.string(), z.number()])),
            metricName: z.string().optional(),
          }),
        ),
      })
      .passthrough(),
  )
  .openapi("Metrics");

const scrape = {
  tags: ["metrics"],
  description:
    "With tokens on, needs a token of every namespace (`\"*\"`) with read access or more: metrics name every namespace's queues and count every namespace's entries.",
};

export function metricsRoutes(
  app: OpenAPIHono<ServerEnv>,
  registry: Registry,
  auth: Authenticator,
): void {
  // /api/* is authenticated by the application's middleware; /metrics is outside it.
  app.use(METRICS_ROUTE, authenticate(auth));

  app.openapi(
    createRoute({
      method: "get",
      path: METRICS_ROUTE,
      // The id derived from the path would be that of /api/metrics.
      operationId: "getMetricsText",
      summary: "Metrics in Prometheus text format",
      ...scrape,
      responses: {
        200: {
          description: "Prometheus text exposition format 0.0.4",
          content: { "text/plain": { schema: z.string() } },
        },
        ...errors,
      },
    }),
    async (c) => {
      assertWholeDatabase(c.get("scope"));
      requireAccess(c, "read");
      return c.text(await registry.metrics(), 200, { "content-type": registry.contentType });
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/metrics",
      summary: "Metrics as JSON",
      ...scrape,
      responses: {
        200: json(MetricsJson, "prom-client's `getMetricsAsJSON()`: one object per metric"),
        ...errors,
      },
    }),
    async (c) => {
      assertWholeDatabase(c.get("scope"));
      requireAccess(c, "read");
      // prom-client types `type` as an enum of the strings the schema names.
      const metrics = (await registry.getMetricsAsJSON()) as unknown as z.infer<typeof MetricsJson>;
      return c.json(metrics, 200);
    },
  );
}

function assertWholeDatabase(scope: RequestScope): void {
  if (scope.grant !== null && !scope.grant.namespaces.includes("*"))
    throw new KvError(
      "FORBIDDEN",
      'metrics describe every namespace: they need a token whose namespaces are ["*"]',
    );
}
