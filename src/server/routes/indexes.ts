/**
 * Secondary indexes, search indexes and search over HTTP: `/api/indexes`,
 * `/api/search-indexes`, `/api/search`, `/api/explain`, and the index selector of
 * `POST /api/list`. Every route calls the request namespace's `Kv`; the driver protocol's form
 * of the same calls is `index-calls.ts`.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { KvKey } from "../../codec/key.js";
import type { KvIndexInfo, KvSearchIndexInfo, KvSearchOptions } from "../../core/indexes/types.js";
import type { Kv } from "../../core/kv.js";
import type { KvWhere } from "../../core/where/compile.js";
import { describe, fail } from "../../errors.js";
import { requireAccess, type ServerEnv } from "../../http/auth.js";
import { keyFromJson, keyToJson, valueFromJson, whereFromJson } from "../../wire/json.js";
import { Entry, entryJson, isTrue, Key, query, Where } from "../schemas.js";
import { body, errors, json } from "./keys.js";

const Name = z
  .string()
  .openapi({ description: "1–64 letters, digits, '_', '.' or '-'", example: "byEmail" });

const IndexInfo = z
  .object({
    name: Name,
    prefix: Key,
    fields: z.array(z.string()),
    unique: z.boolean(),
    state: z.enum(["building", "ready"]),
    createdAt: z.number(),
  })
  .openapi("Index");

const SearchIndexInfo = z
  .object({
    name: Name,
    prefix: Key,
    fields: z.array(z.string()),
    tokenizer: z.enum(["word", "stemmed", "trigram"]),
    language: z.string(),
    state: z.enum(["building", "ready"]),
    createdAt: z.number(),
  })
  .openapi("SearchIndex");

const CreateIndex = z
  .strictObject({
    name: Name,
    prefix: Key,
    fields: z.array(z.string()).openapi({ example: ["email"] }),
    unique: z.boolean().optional(),
  })
  .openapi("CreateIndex", {
    example: { name: "byEmail", prefix: ["users"], fields: ["email"], unique: true },
  });

const CreateSearchIndex = z
  .strictObject({
    name: Name,
    prefix: Key,
    fields: z.array(z.string()),
    tokenizer: z.enum(["word", "stemmed", "trigram"]).optional(),
    language: z.string().optional(),
  })
  .openapi("CreateSearchIndex", {
    example: { name: "posts", prefix: ["posts"], fields: ["title", "body"], tokenizer: "stemmed" },
  });

const Highlight = z.union([z.boolean(), z.strictObject({ start: z.string(), end: z.string() })]);

const SearchBody = z
  .strictObject({
    index: Name,
    query: z.string().openapi({
      description:
        'Words (all must match), "a phrase", prefix*, -excluded, this OR that; case and accents do not matter',
    }),
    where: Where.optional(),
    limit: z.number().int().positive().optional(),
    cursor: z.string().optional(),
    highlight: Highlight.optional(),
    metadata: z.boolean().optional(),
  })
  .openapi("Search", {
    example: { index: "posts", query: 'sqlite "write ahead" -draft', limit: 10, highlight: true },
  });

const SearchQuery = query({
  index: Name,
  q: z.string().openapi({ example: "write ahead log" }),
  limit: z.coerce.number().int().positive().optional(),
  cursor: z.string().optional(),
  highlight: z.string().optional().openapi({ description: "1 or true: snippets with <mark>" }),
  metadata: z.string().optional(),
});

const Hit = Entry.extend({
  score: z.number(),
  highlights: z.record(z.string(), z.string().nullable()).optional(),
}).openapi("SearchHit");

const SearchResult = z
  .object({ hits: z.array(Hit), cursor: z.string().nullable() })
  .openapi("SearchResult");

const Explain = z
  .object({ index: z.string().nullable(), ordered: z.boolean(), ranges: z.number() })
  .openapi("Explain");

const ExplainBody = z
  .strictObject({
    prefix: Key.optional(),
    start: Key.optional(),
    end: Key.optional(),
    where: Where,
  })
  .openapi("ExplainRequest", {
    example: { prefix: ["users"], where: { email: "ada@example.com" } },
  });

export const indexJson = (info: KvIndexInfo) =>
  ({ ...info, prefix: keyToJson(info.prefix) }) as z.infer<typeof IndexInfo>;
export const searchIndexJson = (info: KvSearchIndexInfo) =>
  ({ ...info, prefix: keyToJson(info.prefix) }) as z.infer<typeof SearchIndexInfo>;

async function searchJson(kv: Kv, index: string, query: string, options: KvSearchOptions) {
  const { hits, cursor } = await kv.search(index, query, options);
  return {
    hits: hits.map(({ score, highlights, ...entry }) => ({
      ...entryJson(entry),
      score,
      ...(highlights && { highlights }),
    })),
    cursor,
  };
}

export function indexRoutes(app: OpenAPIHono<ServerEnv>): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/indexes",
      tags: ["indexes"],
      summary: "The secondary indexes of the request's namespace",
      responses: { 200: json(z.object({ indexes: z.array(IndexInfo) })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      return c.json({ indexes: (await c.get("kv").listIndexes()).map(indexJson) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/indexes",
      tags: ["indexes"],
      summary:
        "Create a secondary index (admin) on value fields of the entries under a prefix; answers once the existing entries are indexed",
      request: body(CreateIndex),
      responses: { 201: json(z.object({ index: IndexInfo }), "Created"), ...errors },
    }),
    async (c) => {
      requireAccess(c, "admin");
      const { name, prefix, ...rest } = c.req.valid("json");
      const info = await c.get("kv").createIndex(name, { ...rest, prefix: keyFromJson(prefix) });
      return c.json({ index: indexJson(info) }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/indexes/{name}",
      tags: ["indexes"],
      summary: "Drop a secondary index (admin)",
      request: { params: z.object({ name: Name }) },
      responses: { 200: json(z.object({ dropped: z.string() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "admin");
      const { name } = c.req.valid("param");
      await c.get("kv").dropIndex(name);
      return c.json({ dropped: name }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/search-indexes",
      tags: ["search"],
      summary: "The full-text search indexes of the request's namespace",
      responses: { 200: json(z.object({ indexes: z.array(SearchIndexInfo) })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      return c.json({ indexes: (await c.get("kv").listSearchIndexes()).map(searchIndexJson) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/search-indexes",
      tags: ["search"],
      summary:
        "Create a full-text search index (admin) on text fields of the entries under a prefix; answers once the existing entries are indexed",
      request: body(CreateSearchIndex),
      responses: { 201: json(z.object({ index: SearchIndexInfo }), "Created"), ...errors },
    }),
    async (c) => {
      requireAccess(c, "admin");
      const { name, prefix, ...rest } = c.req.valid("json");
      const info = await c
        .get("kv")
        .createSearchIndex(name, { ...rest, prefix: keyFromJson(prefix) });
      return c.json({ index: searchIndexJson(info) }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/search-indexes/{name}",
      tags: ["search"],
      summary: "Drop a full-text search index (admin)",
      request: { params: z.object({ name: Name }) },
      responses: { 200: json(z.object({ dropped: z.string() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "admin");
      const { name } = c.req.valid("param");
      await c.get("kv").dropSearchIndex(name);
      return c.json({ dropped: name }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/search",
      tags: ["search"],
      summary: "Search a full-text index; best matches first",
      request: { query: SearchQuery },
      responses: { 200: json(SearchResult), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const q = c.req.valid("query");
      const result = await searchJson(c.get("kv"), q.index, q.q, {
        ...(q.limit !== undefined && { limit: q.limit }),
        ...(q.cursor !== undefined && { cursor: q.cursor }),
        highlight: isTrue(q.highlight),
        metadata: isTrue(q.metadata),
      });
      return c.json(result as z.infer<typeof SearchResult>, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/search",
      tags: ["search"],
      summary: "Search a full-text index, filtering the hits by value (`where`)",
      request: body(SearchBody),
      responses: { 200: json(SearchResult), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const { index, query, where, ...rest } = c.req.valid("json");
      const result = await searchJson(c.get("kv"), index, query, {
        ...rest,
        ...(where !== undefined && { where: whereFromJson(where) as KvWhere }),
      });
      return c.json(result as z.infer<typeof SearchResult>, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/explain",
      tags: ["indexes"],
      summary: "Which index a list with this where filter reads (null: a scan of the range)",
      request: body(ExplainBody),
      responses: { 200: json(Explain), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const b = c.req.valid("json");
      const selector = selectorOfJson(b);
      return c.json(
        await c.get("kv").explain(selector, { where: whereFromJson(b.where) as KvWhere }),
        200,
      );
    },
  );
}

function selectorOfJson(b: { prefix?: unknown; start?: unknown; end?: unknown }) {
  if (b.prefix === undefined && b.start === undefined && b.end === undefined) return { prefix: [] };
  return {
    ...(b.prefix !== undefined && { prefix: keyFromJson(b.prefix) }),
    ...(b.start !== undefined && { start: keyFromJson(b.start) }),
    ...(b.end !== undefined && { end: keyFromJson(b.end) }),
  } as { prefix: KvKey };
}

/** Field values of an index selector, in the wire's tagged JSON. */
function fieldValues(json: unknown, what: string): unknown[] | undefined {
  if (json === undefined) return undefined;
  if (!Array.isArray(json))
    fail(
      "INVALID_SELECTOR",
      `an index selector's ${what} is an array of field values, got ${describe(json)}`,
    );
  return json.map((value) => valueFromJson(value));
}

/** An index selector given as JSON: `{ index, prefix?, start?, end? }`. */
export function indexSelectorOfJson(json: unknown) {
  if (
    typeof json !== "object" ||
    json === null ||
    typeof (json as { index?: unknown }).index !== "string"
  )
    fail(
      "INVALID_SELECTOR",
      `an index selector is { index, prefix?, start?, end? }, got ${describe(json)}`,
    );
  const raw = json as { index: string; prefix?: unknown; start?: unknown; end?: unknown };
  const prefix = fieldValues(raw.prefix, "prefix");
  const start = fieldValues(raw.start, "start");
  const end = fieldValues(raw.end, "end");
  return {
    index: raw.index,
    ...(prefix && { prefix }),
    ...(start && { start }),
    ...(end && { end }),
  };
}
