/**
 * Typed values and stores over HTTP. The server learns them from its options: `stores` (served
 * at `/api/stores/{name}` in each request's namespace) and `workspaces` (a workspace id → a KV
 * definition, served at `/workspaces/{id}/kv` in namespace `workspace-<id>`). Bodies are
 * validated by the same schemas as the library's writes: an invalid one answers 400 with the
 * issues and writes nothing. Their JSON Schemas are in the OpenAPI document.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Kv } from "../../core/kv.js";
import { KvError } from "../../errors.js";
import { requireAccess, type ServerEnv } from "../../http/auth.js";
import { errorBody } from "../../http/errors.js";
import {
  assertDefinition,
  defineKv,
  type KvDefinition,
  type TypedKv,
  type TypedValue,
} from "../../typed/define-kv.js";
import { type JsonSchema, ValidationError } from "../../typed/schemas.js";
import type { AnyStore, StoreEntry, TypedStore } from "../../typed/store.js";
import { query } from "../schemas.js";

export interface TypedRouteOptions {
  /** Typed stores, served at `/api/stores/{name}` on the namespace of each request. */
  readonly stores?: readonly AnyStore[];
  /**
   * Workspace id → KV definition, served at `/workspaces/{id}/kv` on namespace `workspace-<id>`
   * (the token must allow that namespace). The id `"*"` serves every other id.
   */
  readonly workspaces?: Readonly<Record<string, KvDefinition>>;
}

const ANY_WORKSPACE = "*";
const WORKSPACE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const MAX_CACHED = 1000;

/**
 * The namespace that holds workspace `id`'s values.
 *
 * @example
 * workspaceNamespace("app"); // "workspace-app"
 */
export const workspaceNamespace = (id: string): string => `workspace-${id}`;

const IssueList = z.array(
  z.object({ path: z.array(z.union([z.string(), z.number()])), message: z.string() }),
);
const InvalidBody = z
  .object({
    error: z.object({ code: z.string(), message: z.string(), issues: IssueList.optional() }),
  })
  .openapi("TypedError", {
    example: {
      error: {
        code: "INVALID_VALUE",
        message: "…",
        issues: [{ path: ["theme"], message: "expected a string" }],
      },
    },
  });

/**
 * Registers the store and workspace routes and their OpenAPI descriptions; refuses invalid
 * workspace ids and definitions, and two stores with one name, before serving anything.
 *
 * @example
 * typedRoutes(app, kv, { stores: [prefs], workspaces: { app: { theme: text({ default: "light" }) } } });
 */
export function typedRoutes(
  app: OpenAPIHono<ServerEnv>,
  root: Kv,
  options: TypedRouteOptions,
): void {
  const stores = storeMap(options.stores ?? []);
  const workspaces = options.workspaces ?? {};
  for (const [id, definition] of Object.entries(workspaces)) {
    if (id !== ANY_WORKSPACE && !WORKSPACE_ID.test(id)) {
      throw new KvError(
        "INVALID_ARGUMENT",
        `workspace id ${JSON.stringify(id)} must match ${WORKSPACE_ID}`,
      );
    }
    assertDefinition(definition);
  }
  if (stores.size > 0) storeRoutes(app, stores);
  if (Object.keys(workspaces).length > 0) workspaceRoutes(app, root, workspaces);
}

function storeMap(stores: readonly AnyStore[]): Map<string, AnyStore> {
  const map = new Map<string, AnyStore>();
  for (const store of stores) {
    if (map.has(store.name)) {
      throw new KvError("INVALID_ARGUMENT", `two stores are named ${JSON.stringify(store.name)}`);
    }
    map.set(store.name, store);
  }
  return map;
}

/** `{ value, … }`: the one shape typed writes take. */
async function bodyOf(c: Context): Promise<Record<string, unknown> & { value: unknown }> {
  const body: unknown = await c.req.json();
  if (typeof body !== "object" || body === null || Array.isArray(body) || !("value" in body)) {
    throw new KvError("INVALID_REQUEST", 'the body is { "value": … }');
  }
  return body as Record<string, unknown> & { value: unknown };
}

/** 400 with the issues for a refused value; anything else goes to the app's error handler. */
export async function validating(c: Context, write: () => Promise<Response>): Promise<Response> {
  try {
    return await write();
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const { error: body } = errorBody(error.code, error.message);
    return c.json({ error: { ...body, issues: error.issues } }, 400);
  }
}

/** Values as plain JSON: what their JSON Schemas describe (bigints as decimal strings). */
export function plain(value: unknown): unknown {
  return value === undefined
    ? null
    : JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
}

const entryJson = (entry: StoreEntry<unknown>) => ({
  id: entry.id,
  value: plain(entry.value),
  versionstamp: entry.versionstamp,
});

function storeRoutes(app: OpenAPIHono<ServerEnv>, stores: Map<string, AnyStore>): void {
  const storeOf = (c: Context<ServerEnv>): TypedStore<unknown, unknown> => {
    const store = stores.get(c.req.param("name") ?? "");
    if (!store) {
      throw new KvError("NOT_FOUND", `no store named ${JSON.stringify(c.req.param("name"))}`);
    }
    return store.bind(c.get("kv"));
  };

  app.get("/api/stores/:name", async (c) => {
    requireAccess(c, "read");
    const limit = c.req.query("limit");
    if (limit !== undefined && !/^\d{1,4}$/.test(limit)) {
      throw new KvError("INVALID_REQUEST", "limit must be a positive integer");
    }
    const cursor = c.req.query("cursor");
    const prefix = c.req.query("prefix");
    const page = await storeOf(c).list({
      ...(prefix !== undefined && { prefix }),
      ...(limit !== undefined && { limit: Number(limit) }),
      ...(cursor !== undefined && { cursor }),
    });
    return c.json({ entries: page.entries.map(entryJson), cursor: page.cursor }, 200);
  });

  app.get("/api/stores/:name/:id", async (c) => {
    requireAccess(c, "read");
    const id = c.req.param("id");
    const entry = await storeOf(c).getEntry(id);
    return c.json(entry ? entryJson(entry) : { id, value: null, versionstamp: null }, 200);
  });

  app.put("/api/stores/:name/:id", async (c) => {
    requireAccess(c, "write");
    const store = storeOf(c);
    const { value, expireIn } = await bodyOf(c);
    return validating(c, async () => {
      const entry = await store.set(
        c.req.param("id"),
        value,
        expireIn === undefined ? {} : { expireIn: expireIn as number },
      );
      return c.json(entryJson(entry), 200);
    });
  });

  app.delete("/api/stores/:name/:id", async (c) => {
    requireAccess(c, "write");
    await storeOf(c).delete(c.req.param("id"));
    return c.json({ ok: true as const }, 200);
  });

  for (const store of stores.values()) documentStore(app, store);
}

function workspaceRoutes(
  app: OpenAPIHono<ServerEnv>,
  root: Kv,
  workspaces: Readonly<Record<string, KvDefinition>>,
): void {
  const bound = new Map<string, TypedKv<KvDefinition>>();
  const workspaceOf = (c: Context<ServerEnv>): TypedKv<KvDefinition> => {
    const id = c.req.param("id") ?? "";
    const definition =
      Object.hasOwn(workspaces, id) && id !== ANY_WORKSPACE
        ? workspaces[id]
        : WORKSPACE_ID.test(id)
          ? workspaces[ANY_WORKSPACE]
          : undefined;
    if (!definition) throw new KvError("NOT_FOUND", `no workspace ${JSON.stringify(id)}`);
    const namespace = workspaceNamespace(id);
    if (!c.get("scope").allows(namespace)) {
      throw new KvError(
        "FORBIDDEN",
        `this token may not use namespace ${JSON.stringify(namespace)}`,
      );
    }
    let typed = bound.get(id);
    if (!typed) {
      typed = defineKv(root.namespace(namespace), definition);
      if (bound.size < MAX_CACHED) bound.set(id, typed);
    }
    return typed;
  };
  const typedValueOf = (c: Context<ServerEnv>): TypedValue => {
    const typed = workspaceOf(c);
    const name = c.req.param("key") ?? "";
    if (!Object.hasOwn(typed.$definition, name)) {
      throw new KvError("NOT_FOUND", `workspace has no key ${JSON.stringify(name)}`);
    }
    return (typed as unknown as Record<string, TypedValue>)[name]!;
  };

  app.get("/workspaces/:id/kv", async (c) => {
    requireAccess(c, "read");
    return c.json({ data: plain(await workspaceOf(c).$toJSON()) }, 200);
  });

  app.get("/workspaces/:id/kv/:key", async (c) => {
    requireAccess(c, "read");
    const value = typedValueOf(c);
    return c.json({ data: plain(value.toJSON(await value.get())) }, 200);
  });

  app.put("/workspaces/:id/kv/:key", async (c) => {
    requireAccess(c, "write");
    const value = typedValueOf(c);
    const body = await bodyOf(c);
    return validating(c, async () => {
      const stored = await value.set(value.column.fromJSON(body.value));
      return c.json({ data: plain(value.toJSON(stored)) }, 200);
    });
  });

  app.delete("/workspaces/:id/kv/:key", async (c) => {
    requireAccess(c, "write");
    const value = typedValueOf(c);
    return c.json({ data: plain(value.toJSON(await value.reset())) }, 200);
  });

  for (const [id, definition] of Object.entries(workspaces)) documentWorkspace(app, id, definition);
}

const json = (schema: unknown, description = "OK") => ({
  description,
  content: { "application/json": { schema: schema as z.ZodType } },
});

const errorResponses = {
  400: json(InvalidBody, "Invalid value: nothing was written"),
  401: json(InvalidBody, "Missing or invalid token"),
  403: json(InvalidBody, "Token lacks access"),
  404: json(InvalidBody, "No such store, workspace or key"),
};

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const nullable = (schema: JsonSchema) => ({ anyOf: [schema, { type: "null" }] });

function documentStore(app: OpenAPIHono<ServerEnv>, store: AnyStore): void {
  const output = `store_${store.name}`;
  const input = `store_${store.name}_input`;
  app.openAPIRegistry.registerComponent("schemas", output, {
    ...store.jsonSchema,
    description: `Store ${store.name}, schema version ${store.version}, hash ${store.schemaHash}`,
  } as never);
  app.openAPIRegistry.registerComponent("schemas", input, store.inputJsonSchema as never);
  const entry = {
    type: "object",
    properties: {
      id: { type: "string" },
      value: nullable(ref(output)),
      versionstamp: { type: ["string", "null"] },
    },
    required: ["id", "value", "versionstamp"],
  };
  const path = `/api/stores/${store.name}`;
  const id = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });
  const tags = [`store ${store.name}`];
  app.openAPIRegistry.registerPath({
    method: "get",
    path,
    tags,
    summary: `List ${store.name} entries`,
    request: {
      query: query({
        prefix: z.string().optional(),
        limit: z.string().optional(),
        cursor: z.string().optional(),
      }),
    },
    responses: {
      200: json({
        type: "object",
        properties: {
          entries: { type: "array", items: entry },
          cursor: { type: ["string", "null"] },
        },
      }),
      ...errorResponses,
    },
  });
  app.openAPIRegistry.registerPath({
    method: "get",
    path: `${path}/{id}`,
    tags,
    summary: `Read one ${store.name} entry`,
    request: { params: id },
    responses: { 200: json(entry), ...errorResponses },
  });
  app.openAPIRegistry.registerPath({
    method: "put",
    path: `${path}/{id}`,
    tags,
    summary: `Write one ${store.name} entry`,
    request: {
      params: id,
      body: {
        required: true,
        content: {
          "application/json": {
            schema: {
              type: "object",
              properties: { value: ref(input), expireIn: { type: "integer", minimum: 1 } },
              required: ["value"],
            } as never,
          },
        },
      },
    },
    responses: { 200: json(entry), ...errorResponses },
  });
  app.openAPIRegistry.registerPath({
    method: "delete",
    path: `${path}/{id}`,
    tags,
    summary: `Delete one ${store.name} entry`,
    request: { params: id },
    responses: {
      200: json({ type: "object", properties: { ok: { const: true } } }),
      ...errorResponses,
    },
  });
}

function documentWorkspace(
  app: OpenAPIHono<ServerEnv>,
  id: string,
  definition: KvDefinition,
): void {
  const base = id === ANY_WORKSPACE ? "/workspaces/{id}/kv" : `/workspaces/${id}/kv`;
  const params =
    id === ANY_WORKSPACE
      ? { params: z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) }) }
      : {};
  const tags = [id === ANY_WORKSPACE ? "workspaces" : `workspace ${id}`];
  const data = (schema: JsonSchema) =>
    json({ type: "object", properties: { data: schema }, required: ["data"] });
  const all = Object.fromEntries(
    Object.entries(definition).map(([name, column]) => [name, column.jsonSchema]),
  );
  app.openAPIRegistry.registerPath({
    method: "get",
    path: base,
    tags,
    summary: "Every typed value, read in one snapshot",
    request: params,
    responses: { 200: data({ type: "object", properties: all }), ...errorResponses },
  });
  for (const [name, column] of Object.entries(definition)) {
    const path = `${base}/${name}`;
    const response = { 200: data(column.jsonSchema), ...errorResponses };
    app.openAPIRegistry.registerPath({
      method: "get",
      path,
      tags,
      summary: `Read ${name}`,
      request: params,
      responses: response,
    });
    app.openAPIRegistry.registerPath({
      method: "put",
      path,
      tags,
      summary: `Write ${name}`,
      request: {
        ...params,
        body: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                properties: { value: column.jsonSchema },
                required: ["value"],
              } as never,
            },
          },
        },
      },
      responses: response,
    });
    app.openAPIRegistry.registerPath({
      method: "delete",
      path,
      tags,
      summary: `Reset ${name} to its default`,
      request: params,
      responses: response,
    });
  }
}
