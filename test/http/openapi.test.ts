/** The OpenAPI document over a real port: every operation named once, the namespace header on /api. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineStore } from "../../src/index.js";
import { operationIdOf } from "../../src/server/docs.js";
import { send, serverFor } from "./helpers.js";

const METHODS = ["get", "put", "post", "patch", "delete", "head", "options"];

describe("GET /api/openapi.json", () => {
  const server = serverFor({
    stores: [defineStore("notes", z.object({ text: z.string() }))],
    workspaces: {},
  });

  it("gives every operation a unique operationId", async () => {
    const reply = await send(server().url, "/api/openapi.json");
    expect(reply.status).toBe(200);
    const ids: string[] = [];
    for (const [path, operations] of Object.entries(reply.json.paths as object)) {
      for (const [method, operation] of Object.entries(operations as object)) {
        if (!METHODS.includes(method)) continue;
        expect(operation.operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z0-9]+$/);
        ids.push(operation.operationId);
      }
    }
    expect(ids.length).toBeGreaterThan(30);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
    expect(ids).toContain("getKeysByKey");
    expect(ids).toContain("postQueuesByNameDlqByIdRequeue");
    expect(ids).toContain("getStoresNotesById");
  });

  it("documents the X-Cellar-Namespace header on every /api operation", async () => {
    const doc = (await send(server().url, "/api/openapi.json")).json;
    expect(doc.components.parameters.Namespace).toMatchObject({
      name: "X-Cellar-Namespace",
      in: "header",
      required: false,
    });
    for (const [path, operations] of Object.entries(doc.paths as object)) {
      if (!path.startsWith("/api/")) continue;
      for (const [method, operation] of Object.entries(operations as object)) {
        if (!METHODS.includes(method)) continue;
        expect(operation.parameters, `${method} ${path}`).toContainEqual({
          $ref: "#/components/parameters/Namespace",
        });
      }
    }
  });

  it("derives ids from the method and the path", () => {
    expect(operationIdOf("get", "/api/keys/{key}")).toBe("getKeysByKey");
    expect(operationIdOf("post", "/api/delete-range")).toBe("postDeleteRange");
    expect(operationIdOf("get", "/workspaces/{id}/kv")).toBe("getWorkspacesByIdKv");
  });
});
