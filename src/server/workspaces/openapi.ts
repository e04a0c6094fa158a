/**
 * The OpenAPI description of a workspace's REST routes, with JSON Schemas from its columns and
 * its actions' input schemas.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import * as Y from "yjs";
import type { ServerEnv } from "../../http/auth.js";
import { type JsonSchema, jsonSchemaOf } from "../../typed/schemas.js";
import type { ValueColumn } from "../../workspace/columns.js";
import type { AnyWorkspace } from "../../workspace/define.js";
import { bindWorkspace } from "../../workspace/doc.js";
import type { TableSchema } from "../../workspace/tables.js";

const json = (schema: JsonSchema, description = "OK") => ({
  description,
  content: { "application/json": { schema: schema as never } },
});

const ISSUES = {
  type: "object",
  properties: {
    error: {
      type: "object",
      properties: {
        code: { type: "string" },
        message: { type: "string" },
        issues: {
          type: "array",
          items: {
            type: "object",
            properties: {
              path: { type: "array", items: { type: ["string", "number"] } },
              message: { type: "string" },
            },
          },
        },
      },
      required: ["code", "message"],
    },
  },
};

const ERRORS = {
  400: json(ISSUES, "Invalid value: nothing was written"),
  401: json(ISSUES, "Missing or invalid token"),
  403: json(ISSUES, "Token lacks access to namespace workspace-{id}"),
  404: json(ISSUES, "No such workspace, key, table, row or action"),
};

const SYNC_DESCRIPTION = [
  "An HTTP/1.1 upgrade to a WebSocket carrying y-protocols' sync (steps 1 and 2, updates) and",
  "awareness in y-websocket's framing: connect a y-websocket WebsocketProvider (or",
  "connectDoc from cellar/workspace) to `{server}/workspaces` with room `{id}/sync`. Refusals",
  "close the socket with 4400 (malformed message), 4401 (no or bad token), 4403 (no access to",
  "namespace workspace-{id}, or a write with a read token), 4404 (unknown workspace); 1009 a",
  "message over the body limit; 1001, 1011 and 1013 ask the client to reconnect later.",
].join(" ");

const data = (schema: JsonSchema) =>
  json({ type: "object", properties: { data: schema }, required: ["data"] });

const body = (schema: JsonSchema, field = "value") => ({
  required: true,
  content: {
    "application/json": {
      schema: { type: "object", properties: { [field]: schema }, required: [field] } as never,
    },
  },
});

/**
 * Registers the paths of `definition`'s KV keys, tables and actions.
 *
 * @example
 * documentWorkspace(app, appWorkspace);
 */
export function documentWorkspace(app: OpenAPIHono<ServerEnv>, definition: AnyWorkspace): void {
  const registry = app.openAPIRegistry;
  const base = `/workspaces/${definition.id}`;
  const tags = [`workspace ${definition.id}`];
  const kv = Object.entries(definition.kv as Record<string, ValueColumn>);
  registry.registerPath({
    method: "get",
    path: `${base}/sync`,
    tags,
    summary: "Sync the workspace's document over WebSocket",
    description: SYNC_DESCRIPTION,
    parameters: [
      {
        name: "token",
        in: "query",
        required: false,
        description: "the bearer token, for browsers, whose WebSocket cannot send headers",
        schema: { type: "string" },
      },
    ],
    responses: {
      101: { description: "Switching Protocols: y-websocket's binary messages follow" },
      400: json(ISSUES, "Not a WebSocket handshake"),
    },
  });
  registry.registerPath({
    method: "get",
    path: `${base}/kv`,
    tags,
    summary: "Every KV value",
    responses: {
      200: data({
        type: "object",
        properties: Object.fromEntries(kv.map(([name, column]) => [name, column.jsonSchema])),
      }),
      ...ERRORS,
    },
  });
  for (const [name, column] of kv) {
    const path = `${base}/kv/${name}`;
    const responses = { 200: data(column.jsonSchema), ...ERRORS };
    registry.registerPath({ method: "get", path, tags, summary: `Read ${name}`, responses });
    registry.registerPath({
      method: "put",
      path,
      tags,
      summary: `Write ${name}`,
      request: { body: body(column.jsonSchema) },
      responses,
    });
    registry.registerPath({
      method: "delete",
      path,
      tags,
      summary: `Reset ${name} to its default`,
      responses,
    });
  }
  for (const [table, schema] of Object.entries(definition.tables as Record<string, TableSchema>)) {
    documentTable(app, `${base}/tables/${table}`, table, schema, tags);
  }
  documentActions(app, definition, `${base}/actions`, tags);
}

function rowSchema(schema: TableSchema): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const [field, column] of Object.entries(schema)) {
    properties[field] = column.kind === "id" ? { type: "string" } : column.jsonSchema;
  }
  return { type: "object", properties };
}

function documentTable(
  app: OpenAPIHono<ServerEnv>,
  path: string,
  table: string,
  schema: TableSchema,
  tags: string[],
): void {
  const registry = app.openAPIRegistry;
  const row = rowSchema(schema);
  const rowPath = `${path}/{rowId}`;
  const rowParam = [
    { name: "rowId", in: "path" as const, required: true, schema: { type: "string" as const } },
  ];
  registry.registerPath({
    method: "get",
    path,
    tags,
    summary: `Every row of ${table}`,
    responses: { 200: data({ type: "array", items: row }), ...ERRORS },
  });
  registry.registerPath({
    method: "get",
    path: rowPath,
    tags,
    summary: `Read a row of ${table}`,
    parameters: rowParam,
    responses: { 200: data(row), ...ERRORS },
  });
  registry.registerPath({
    method: "put",
    path: rowPath,
    tags,
    summary: `Insert or update a row of ${table} (its id is the path's)`,
    parameters: rowParam,
    request: { body: body(row) },
    responses: { 200: data(row), ...ERRORS },
  });
  registry.registerPath({
    method: "delete",
    path: rowPath,
    tags,
    summary: `Delete a row of ${table}`,
    parameters: rowParam,
    responses: {
      200: data({ type: "object", properties: { deleted: { type: "boolean" } } }),
      ...ERRORS,
    },
  });
}

function documentActions(
  app: OpenAPIHono<ServerEnv>,
  definition: AnyWorkspace,
  base: string,
  tags: string[],
): void {
  // Binding writes nothing: a scratch doc only lets the factory name its actions.
  const scratch = new Y.Doc();
  const { actions } = bindWorkspace(definition, scratch);
  scratch.destroy();
  for (const [name, action] of Object.entries(actions)) {
    const input = action.input ? jsonSchemaOf(action.input, "input") : undefined;
    const summary =
      action.description ?? `${action.kind === "query" ? "Query" : "Mutation"} ${name}`;
    app.openAPIRegistry.registerPath({
      method: "post",
      path: `${base}/${name}`,
      tags,
      summary,
      ...(input && { request: { body: body(input, "input") } }),
      responses: { 200: data({}), ...ERRORS },
    });
    if (action.kind === "query") {
      app.openAPIRegistry.registerPath({
        method: "get",
        path: `${base}/${name}`,
        tags,
        summary,
        parameters: [
          {
            name: "input",
            in: "query",
            required: false,
            description: "the input, as JSON",
            schema: { type: "string" },
          },
        ],
        responses: { 200: data({}), ...ERRORS },
      });
    }
  }
}
