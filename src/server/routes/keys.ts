/** Single keys and batches: get, set, delete, history. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { KvKey } from "../../codec/key.js";
import { KvError } from "../../errors.js";
import {
  type Authenticated,
  assertAccess,
  requireAccess,
  type ServerEnv,
} from "../../http/auth.js";
import { keyFromJson, keyFromPath, valueFromJson, valueToJson } from "../../wire/json.js";
import {
  CommitOk,
  Entry,
  ErrorBody,
  entryJson,
  isTrue,
  Key,
  MetadataQuery,
  query,
  SetBody,
  WriteInfo,
} from "../schemas.js";

/** The prefix of the single-key routes; the rest of the path is the key. */
export const KEYS_ROUTE = "/api/keys/";

/** Hono matches the rest of the path with a regex parameter; OpenAPI shows it as `{key}`. */
export const KEY_PATH = "{key{.+}}";

const KeyParam = z.object({
  key: z.string().openapi({
    param: { name: "key", in: "path" },
    description:
      "The key as a path: one segment per part; ~n:42 number, ~i:42 bigint, ~x:ff bytes, ~t/~f booleans, ~s:text string",
    example: "users/~n:42",
  }),
});

const errors = {
  400: { description: "Bad request", content: { "application/json": { schema: ErrorBody } } },
  401: {
    description: "Missing or invalid token",
    content: { "application/json": { schema: ErrorBody } },
  },
  403: {
    description: "Token lacks access",
    content: { "application/json": { schema: ErrorBody } },
  },
  413: {
    description: "Key, value or body too large",
    content: { "application/json": { schema: ErrorBody } },
  },
} as const;

export const json = <T extends z.ZodType>(schema: T, description = "OK") => ({
  description,
  content: { "application/json": { schema } },
});

/** A JSON request body; object bodies are strict (see `schemas.ts`), so unknown fields are refused. */
export const body = <T extends z.ZodType>(schema: T, required = true) => ({
  body: { content: { "application/json": { schema } }, required },
});

export { errors };

/**
 * The key of a `/api/<route>/{key}` request, from the raw (still percent-encoded) path: the
 * router's decoded parameter would turn `a%2Fb` into two segments.
 */
export function pathKey(c: Context, route: string): KvKey {
  return keyOfTarget(c.req.method, targetOf(c), route);
}

/** The request's path and query, as they came. */
function targetOf(c: Context): string {
  const url = c.req.url;
  return url.slice(url.indexOf("/", url.indexOf("//") + 2));
}

/** The key of a request target (`/api/keys/users/1?metadata=1`) under `route`. */
export function keyOfTarget(method: string, target: string, route: string): KvKey {
  const end = target.indexOf("?");
  const path = end < 0 ? target : target.slice(0, end);
  if (!path.startsWith(route) || path.length === route.length)
    throw new KvError("NOT_FOUND", `no route for ${method} ${path}`);
  return keyFromPath(path.slice(route.length));
}

const FLAGS = new Set(["true", "false", "1", "0"]);

/** The query parameters of a single-key read, from its schema (the route skips the validator). */
export const READ_PARAMS: ReadonlySet<string> = new Set(Object.keys(MetadataQuery.shape));

/**
 * `GET /api/keys/{key}` once routed and authenticated: the entry as JSON. Shared by the Hono
 * route and the node fast path (`fast-path.ts`), so both answer alike. A mistake in the request
 * throws at once; the fast path answers it without waiting for a promise.
 */
export function readKey(
  { scope, kv }: Authenticated,
  target: string,
  metadata: string | undefined,
): Promise<z.infer<typeof Entry>> {
  assertAccess(scope, "read");
  if (metadata !== undefined && !FLAGS.has(metadata)) {
    throw new KvError("INVALID_REQUEST", "metadata: expected true, false, 1 or 0");
  }
  const key = keyOfTarget("GET", target, KEYS_ROUTE);
  return kv.get(key, { metadata: isTrue(metadata) }).then(entryJson);
}

export function keysRoutes(app: OpenAPIHono<ServerEnv>): void {
  // The hottest route skips the schema validators (its only input is the path and one flag)
  // and is registered as a plain handler; the definition still documents it.
  app.openAPIRegistry.registerPath(
    createRoute({
      method: "get",
      path: `/api/keys/${KEY_PATH}`,
      tags: ["keys"],
      summary: "Read one key",
      request: { params: KeyParam, query: MetadataQuery },
      responses: { 200: json(Entry), ...errors },
    }),
  );
  app.get("/api/keys/*", async (c) => {
    const unknown = Object.keys(c.req.query()).filter((name) => !READ_PARAMS.has(name));
    if (unknown.length > 0) {
      throw new KvError(
        "INVALID_REQUEST",
        `${unknown.join(", ")}: unknown query parameter; this route takes ${[...READ_PARAMS].join(", ")}`,
      );
    }
    const entry = await readKey(
      { scope: c.get("scope"), kv: c.get("kv") },
      targetOf(c),
      c.req.query("metadata"),
    );
    return c.json(entry, 200);
  });

  app.openapi(
    createRoute({
      method: "put",
      path: `/api/keys/${KEY_PATH}`,
      tags: ["keys"],
      summary: "Write one key",
      request: { params: KeyParam, ...body(SetBody) },
      responses: { 200: json(CommitOk), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      const key = pathKey(c, KEYS_ROUTE);
      const { value, ...options } = c.req.valid("json");
      const result = await c.get("kv").set(key, valueFromJson(value), options);
      return c.json({ ok: true as const, versionstamp: result.versionstamp }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: `/api/keys/${KEY_PATH}`,
      tags: ["keys"],
      summary: "Change when a key expires, without sending its value",
      description:
        "`expireIn` ms from now, or `null` for never. A write: the entry gets a new versionstamp and keeps its value and tags. 404 when the key is absent.",
      request: {
        params: KeyParam,
        ...body(
          z.strictObject({
            expireIn: z.number().int().positive().nullable(),
            modifiedBy: z.string().max(256).optional(),
            comment: z.string().max(4096).optional(),
          }),
        ),
      },
      responses: { 200: json(CommitOk), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      const key = pathKey(c, KEYS_ROUTE);
      const { expireIn, ...info } = c.req.valid("json");
      const result = await c.get("kv").expire(key, expireIn, info);
      if (!result.ok)
        throw new KvError("NOT_FOUND", "no entry at this key to change the expiry of");
      return c.json({ ok: true as const, versionstamp: result.versionstamp }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: `/api/keys/${KEY_PATH}`,
      tags: ["keys"],
      summary: "Delete one key",
      request: {
        params: KeyParam,
        query: query({
          modifiedBy: z.string().max(256).optional(),
          comment: z.string().max(4096).optional(),
        }),
      },
      responses: { 200: json(z.object({ ok: z.literal(true) })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      await c.get("kv").delete(pathKey(c, KEYS_ROUTE), c.req.valid("query"));
      return c.json({ ok: true as const }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/get",
      tags: ["keys"],
      summary: "Read many keys from one snapshot",
      request: body(
        z.strictObject({ keys: z.array(Key).min(1), metadata: z.boolean().optional() }),
      ),
      responses: { 200: json(z.object({ entries: z.array(Entry) })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const { keys, metadata } = c.req.valid("json");
      const entries = await c
        .get("kv")
        .getMany(keys.map(keyFromJson), { metadata: metadata === true });
      return c.json({ entries: entries.map(entryJson) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/delete",
      tags: ["keys"],
      summary: "Delete many keys in one atomic commit",
      request: body(z.strictObject({ keys: z.array(Key).min(1), ...WriteInfo })),
      responses: { 200: json(CommitOk), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      const { keys, ...info } = c.req.valid("json");
      const op = c.get("kv").atomic();
      for (const key of keys) op.delete(keyFromJson(key), info);
      const result = await op.commit();
      if (!result.ok) throw new KvError("CONFLICT", "the batch delete did not commit");
      return c.json({ ok: true as const, versionstamp: result.versionstamp }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: `/api/history/${KEY_PATH}`,
      tags: ["keys"],
      summary: "Revisions of one key, newest first",
      request: {
        params: KeyParam,
        query: query({ limit: z.coerce.number().int().min(1).max(10_000).optional() }),
      },
      responses: {
        200: json(
          z.object({
            revisions: z.array(
              z.object({
                version: z.number(),
                versionstamp: z.string(),
                timestamp: z.number(),
                modifiedBy: z.string().nullable(),
                comment: z.string().nullable(),
                dataHash: z.string().nullable(),
                value: z.unknown().optional(),
              }),
            ),
          }),
        ),
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "read");
      const { limit } = c.req.valid("query");
      const revisions = await c
        .get("kv")
        .history(pathKey(c, "/api/history/"), limit === undefined ? {} : { limit });
      return c.json(
        {
          revisions: revisions.map((r) =>
            "value" in r ? { ...r, value: valueToJson(r.value) } : r,
          ),
        },
        200,
      );
    },
  );
}
