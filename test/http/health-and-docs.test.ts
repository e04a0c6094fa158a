/** /healthz, /readyz, the OpenAPI document and the reference page. */
import { describe, expect, it } from "vitest";
import { apiServer, expectError, send, serve } from "./helpers.js";

describe("HTTP API", () => {
  const server = apiServer();

  describe("health and documentation", () => {
    it("answers /healthz and /readyz", async () => {
      expect(await send(server().url, "/healthz").then((r) => [r.status, r.json])).toEqual([
        200,
        { ok: true },
      ]);
      expect(await send(server().url, "/readyz").then((r) => [r.status, r.json])).toEqual([
        200,
        { ok: true },
      ]);
    });

    it("reports 503 UNAVAILABLE from /readyz once the database is closed", async () => {
      const other = await serve();
      try {
        await other.kv.close();
        expectError(await send(other.url, "/readyz"), 503, "UNAVAILABLE");
        expect((await send(other.url, "/healthz")).status).toBe(200);
      } finally {
        await other.close();
      }
    });

    it("serves an OpenAPI 3.1 document listing every route", async () => {
      const reply = await send(server().url, "/api/openapi.json");
      expect(reply.status).toBe(200);
      const doc = reply.json;
      expect(doc.openapi).toBe("3.1.0");
      expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
      const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
        ([path, item]) =>
          Object.keys(item)
            .filter((m) => ["get", "put", "post", "delete", "patch"].includes(m))
            .map((m) => `${m.toUpperCase()} ${path}`),
      );
      expect(routes).toEqual(
        expect.arrayContaining([
          "GET /api/keys/{key}",
          "PUT /api/keys/{key}",
          "DELETE /api/keys/{key}",
          "POST /api/get",
          "POST /api/delete",
          "GET /api/history/{key}",
          "GET /api/list",
          "POST /api/list",
          "GET /api/count",
          "POST /api/count",
          "POST /api/delete-range",
          "DELETE /api/namespace",
          "POST /api/atomic",
          "GET /api/watch",
          "GET /api/watch/poll",
          "GET /api/watch/prefix",
          "GET /api/watch/prefix/poll",
        ]),
      );
      expect(new Set(routes).size).toBe(routes.length);
      expect(reply.text).not.toContain("{key{");

      const refs = new Set<string>();
      JSON.stringify(doc, (name, value) => {
        if (name === "$ref") refs.add(value);
        return value;
      });
      for (const ref of refs) {
        const target = ref
          .replace(/^#\//, "")
          .split("/")
          .reduce((node: Record<string, unknown> | undefined, part) => node?.[part] as never, doc);
        expect(target, ref).toBeDefined();
      }
      for (const [path, item] of Object.entries(
        doc.paths as Record<
          string,
          Record<
            string,
            { parameters?: { name: string; in: string; required?: boolean }[]; responses: object }
          >
        >,
      )) {
        const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
        for (const operation of Object.values(item)) {
          expect(Object.keys(operation.responses).length, path).toBeGreaterThan(0);
          for (const name of templated) {
            expect(operation.parameters, path).toContainEqual(
              expect.objectContaining({ name, in: "path", required: true }),
            );
          }
        }
      }
    });

    it("serves the reference page and its assets", async () => {
      const page = await send(server().url, "/api/docs");
      expect(page.status).toBe(200);
      expect(page.headers["content-type"]).toMatch(/^text\/html/);
      expect(page.text).toContain("/api/openapi.json");
      const css = await send(server().url, "/api/docs/swagger-ui.css");
      expect([css.status, css.headers["content-type"]]).toEqual([200, "text/css"]);
    });
  });
});
