/** Ranges: list, paginate, count, and deleting a whole namespace. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { KvKey } from "../../codec/key.js";
import type { Kv } from "../../core/kv.js";
import { coreOf } from "../../core/surface.js";
import type { KvListSelector } from "../../core/types.js";
import type { KvWhere } from "../../core/where/compile.js";
import { KvError } from "../../errors.js";
import { requireAccess, type ServerEnv } from "../../http/auth.js";
import { keyFromJson, keyFromPath, whereFromJson } from "../../wire/json.js";
import {
  Entry,
  entryJson,
  isTrue,
  KeyOnlyEntry,
  keyJson,
  ListBody,
  ListQuery,
  PathSelectorQuery,
} from "../schemas.js";
import { indexSelectorOfJson } from "./indexes.js";
import { body, errors, json } from "./keys.js";

export interface ListLimits {
  /** Largest page a list or paginate request may ask for (default 1000). */
  readonly maxPageSize: number;
}

type RawSelector = {
  prefix?: KvKey | undefined;
  start?: KvKey | undefined;
  end?: KvKey | undefined;
};

/** An absent selector means every key of the namespace. */
function selectorOf({ prefix, start, end }: RawSelector): KvListSelector {
  if (prefix === undefined && start === undefined && end === undefined) return { prefix: [] };
  return {
    ...(prefix && { prefix }),
    ...(start && { start }),
    ...(end && { end }),
  } as KvListSelector;
}

function fromPaths(query: {
  prefix?: string | undefined;
  start?: string | undefined;
  end?: string | undefined;
}) {
  return selectorOf({
    prefix: query.prefix === undefined ? undefined : keyFromPath(query.prefix),
    start: query.start === undefined ? undefined : keyFromPath(query.start),
    end: query.end === undefined ? undefined : keyFromPath(query.end),
  });
}

function fromJson(body: { prefix?: unknown; start?: unknown; end?: unknown }) {
  return selectorOf({
    prefix: body.prefix === undefined ? undefined : keyFromJson(body.prefix),
    start: body.start === undefined ? undefined : keyFromJson(body.start),
    end: body.end === undefined ? undefined : keyFromJson(body.end),
  });
}

const Page = z
  .object({
    entries: z.array(z.union([Entry, KeyOnlyEntry])),
    cursor: z.string().nullable(),
    hasMore: z.boolean(),
  })
  .openapi("Page");

export function listRoutes(app: OpenAPIHono<ServerEnv>, limits: ListLimits): void {
  const pageSize = (limit: number | undefined) => {
    if (limit !== undefined && limit > limits.maxPageSize) {
      throw new KvError(
        "INVALID_ARGUMENT",
        `limit must be at most ${limits.maxPageSize}, got ${limit}`,
      );
    }
    return limit ?? Math.min(100, limits.maxPageSize);
  };

  const page = async (
    c: { get(key: "kv"): Kv },
    selector: KvListSelector,
    options: {
      limit?: number | undefined;
      cursor?: string | undefined;
      reverse?: boolean;
      metadata?: boolean;
      keysOnly?: boolean | undefined;
      where?: unknown;
    },
  ) => {
    const result = await c.get("kv").paginate(selector, {
      ...(options.where !== undefined && { where: whereFromJson(options.where) as KvWhere }),
      limit: pageSize(options.limit),
      ...(options.cursor !== undefined && { cursor: options.cursor }),
      reverse: options.reverse === true,
      metadata: options.metadata === true,
    });
    return {
      entries: options.keysOnly
        ? result.entries.map((e) => ({ key: keyJson(e.key), versionstamp: e.versionstamp }))
        : result.entries.map(entryJson),
      cursor: result.cursor,
      hasMore: result.hasMore,
    };
  };

  /** One page of an index walk: `limit` entries, and the cursor after the last when more follow. */
  const indexPage = async (kv: Kv, b: z.infer<typeof ListBody>) => {
    if (b.prefix !== undefined || b.start !== undefined || b.end !== undefined)
      throw new KvError(
        "INVALID_SELECTOR",
        "a list takes a key range (prefix, start, end) or an index, not both",
      );
    const { name, ...bounds } = b.index!;
    const limit = pageSize(b.limit);
    const iterator = kv.list(indexSelectorOfJson({ index: name, ...bounds }), {
      limit: limit + 1,
      ...(b.cursor !== undefined && { cursor: b.cursor }),
      ...(b.where !== undefined && { where: whereFromJson(b.where) as KvWhere }),
      reverse: b.reverse === true,
      metadata: b.metadata === true,
    });
    const entries = [];
    let cursor: string | null = null;
    let hasMore = false;
    for await (const entry of iterator) {
      if (entries.length === limit) {
        hasMore = true;
        break;
      }
      entries.push(entry);
      cursor = iterator.cursor;
    }
    return {
      entries: b.keysOnly
        ? entries.map((e) => ({ key: keyJson(e.key), versionstamp: e.versionstamp }))
        : entries.map(entryJson),
      cursor: hasMore ? cursor : null,
      hasMore,
    };
  };

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/list",
      tags: ["ranges"],
      summary: "List a range (prefix, or start/end key paths); one page per request",
      description: "`keysOnly=1` answers each entry's key and versionstamp without its value.",
      request: { query: ListQuery },
      responses: { 200: json(Page), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const q = c.req.valid("query");
      return c.json(
        await page(c, fromPaths(q), {
          ...q,
          reverse: isTrue(q.reverse),
          metadata: isTrue(q.metadata),
          keysOnly: isTrue(q.keysOnly),
        }),
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/list",
      tags: ["ranges"],
      summary: "List a range given as JSON keys, optionally filtered by value (`where`)",
      request: body(ListBody),
      responses: { 200: json(Page), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const b = c.req.valid("json");
      if (b.index !== undefined) return c.json(await indexPage(c.get("kv"), b), 200);
      return c.json(await page(c, fromJson(b), b), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/count",
      tags: ["ranges"],
      summary: "Count the live entries of a range",
      request: { query: PathSelectorQuery },
      responses: { 200: json(z.object({ count: z.number() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      return c.json({ count: await c.get("kv").count(fromPaths(c.req.valid("query"))) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/count",
      tags: ["ranges"],
      summary:
        "Count the live entries of a range given as JSON keys, optionally filtered by value (`where`)",
      request: body(ListBody.pick({ prefix: true, start: true, end: true, where: true })),
      responses: { 200: json(z.object({ count: z.number() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const b = c.req.valid("json");
      const where = b.where === undefined ? {} : { where: whereFromJson(b.where) as KvWhere };
      return c.json({ count: await c.get("kv").count(fromJson(b), where) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/delete-range",
      tags: ["ranges"],
      summary: "Delete every entry of a range, in atomic batches of 500",
      request: body(ListBody.pick({ prefix: true, start: true, end: true })),
      responses: { 200: json(z.object({ deleted: z.number() })), ...errors },
    }),
    async (c) => {
      const b = c.req.valid("json");
      // Emptying a whole namespace is an admin's act, whichever route asks for it.
      requireAccess(c, Array.isArray(b.prefix) && b.prefix.length === 0 ? "admin" : "write");
      if (b.prefix === undefined && b.start === undefined) {
        throw new KvError(
          "INVALID_SELECTOR",
          "delete-range needs a prefix or start and end; to empty a namespace use DELETE /api/namespace",
        );
      }
      return c.json({ deleted: await c.get("kv").deleteMany(fromJson(b)) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/namespace",
      tags: ["ranges"],
      summary:
        "Drop the request's namespace (admin): its entries with their history, and its queues' messages and dedup keys; `deleted` counts the live entries",
      responses: { 200: json(z.object({ deleted: z.number() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "admin");
      const { core, keyspace } = coreOf(c.get("kv"));
      return c.json({ deleted: await core.purgeNamespace(keyspace.prefix, keyspace) }, 200);
    },
  );
}
