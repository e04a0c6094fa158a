/**
 * Secondary indexes, search indexes and search over HTTP: `/api/indexes`,
 * `/api/search-indexes`, `/api/search`, `/api/explain`, index walks through `POST /api/list`,
 * and `runIndexCall`, the driver protocol's form of the same calls (`POST /api/driver/indexes`,
 * what the remote client sends). Every route calls the request namespace's `Kv`.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { compareBytes, type KvKey } from "../../codec/key.js";
import type { KvIndexInfo, KvSearchIndexInfo, KvSearchOptions } from "../../core/indexes/types.js";
import type { Kv } from "../../core/kv.js";
import { coreOf } from "../../core/surface.js";
import { compileWhere, type KvWhere } from "../../core/where/compile.js";
import { bareMessage, describe, fail, KvError } from "../../errors.js";
import { requireAccess, type ServerEnv } from "../../http/auth.js";
import { keyFromJson, keyToJson, valueFromJson, whereFromJson } from "../../wire/json.js";
import { b64, entryToWire, unb64 } from "../../wire/protocol.js";
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

const indexJson = (info: KvIndexInfo) =>
  ({ ...info, prefix: keyToJson(info.prefix) }) as z.infer<typeof IndexInfo>;
const searchIndexJson = (info: KvSearchIndexInfo) =>
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

const args = <T>(value: unknown): T => {
  if (typeof value !== "object" || value === null)
    throw new KvError("INVALID_REQUEST", "an index call's args is an object");
  return value as T;
};

/**
 * One call of the remote driver on the indexes of `kv`'s namespace (`POST /api/driver/indexes`);
 * the caller has checked the namespace against the token. Answers JSON.
 */
export async function runIndexCall(
  kv: Kv,
  op: unknown,
  raw: unknown,
  access: (level: "read" | "admin") => void,
): Promise<unknown> {
  switch (op) {
    case "listIndexes":
      access("read");
      return (await kv.listIndexes()).map(indexJson);
    case "listSearchIndexes":
      access("read");
      return (await kv.listSearchIndexes()).map(searchIndexJson);
    case "createIndex": {
      access("admin");
      const { name, prefix, ...rest } = args<{ name: string; prefix: unknown; fields: string[] }>(
        raw,
      );
      let indexed = 0;
      const info = await kv.createIndex(name, {
        ...rest,
        prefix: prefixOfJson(prefix),
        onProgress: (progress) => {
          indexed = progress.indexed;
        },
      });
      return { ...indexJson(info), indexed };
    }
    case "createSearchIndex": {
      access("admin");
      const { name, prefix, ...rest } = args<{ name: string; prefix: unknown; fields: string[] }>(
        raw,
      );
      let indexed = 0;
      const info = await kv.createSearchIndex(name, {
        ...rest,
        prefix: prefixOfJson(prefix),
        onProgress: (progress) => {
          indexed = progress.indexed;
        },
      });
      return { ...searchIndexJson(info), indexed };
    }
    case "dropIndex":
      access("admin");
      await kv.dropIndex(args<{ name: string }>(raw).name);
      return {};
    case "dropSearchIndex":
      access("admin");
      await kv.dropSearchIndex(args<{ name: string }>(raw).name);
      return {};
    case "search": {
      access("read");
      const { name, query, where, ...rest } = args<{
        name: string;
        query: string;
        where?: unknown;
      }>(raw);
      const { core, keyspace } = coreOf(kv);
      const page = await core.indexService.search(keyspace.namespace, name, query, {
        where: where === undefined ? undefined : compileUserWhere(kv, where),
        limit: (rest as { limit?: number }).limit ?? 20,
        cursor: (rest as { cursor?: string }).cursor,
        highlight: (rest as { highlight?: boolean | { start: string; end: string } }).highlight,
        metadata: (rest as { metadata?: boolean }).metadata === true,
      });
      return {
        hits: page.hits.map((hit) => ({ ...hit, entry: entryToWire(hit.entry) })),
        fields: page.fields,
        cursor: page.cursor,
      };
    }
    case "explain": {
      access("read");
      const { start, end, where } = args<{ start: unknown; end: unknown; where: unknown }>(raw);
      const { core, keyspace } = coreOf(kv);
      const range = { start: unb64(start, "start"), end: unb64(end, "end") };
      keyspace.assertRange(range.start, range.end);
      return core.indexService.explain({
        ...range,
        limit: 1,
        reverse: false,
        where: compileUserWhere(kv, where),
      });
    }
    case "walk": {
      access("read");
      const call = args<{
        selector: unknown;
        range?: { start: unknown; end: unknown };
        limit?: unknown;
        reverse?: unknown;
        where?: unknown;
        metadata?: unknown;
      }>(raw);
      const { core, keyspace } = coreOf(kv);
      const walk = await core.indexService.walk(
        keyspace.namespace,
        indexSelectorOfJson(call.selector),
      );
      if (!call.range)
        return {
          start: b64(walk.start),
          end: b64(walk.end),
          prefix: walk.prefix && b64(walk.prefix),
          common: b64(walk.common),
        };
      const range = { start: unb64(call.range.start, "start"), end: unb64(call.range.end, "end") };
      // The range must lie in the walk's own: a client never reads other index keys this way.
      if (compareBytes(range.start, walk.start) < 0 || compareBytes(range.end, walk.end) > 0)
        throw new KvError("INVALID_CURSOR", "the range lies outside the index selector");
      const limit = call.limit;
      if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > 1000)
        throw new KvError("INVALID_REQUEST", "limit is an integer in [1, 1000]");
      const found = await walk.pull(
        range,
        limit as number,
        call.reverse === true,
        call.where === undefined ? undefined : compileUserWhere(kv, call.where),
        call.metadata === true,
      );
      return {
        entries: found.map(({ entry, key }) => ({ entry: entryToWire(entry), key: b64(key) })),
      };
    }
    default:
      throw new KvError("INVALID_REQUEST", `unknown index call ${describe(op)}`);
  }
}

/** An index's prefix given as JSON; anything else is the caller's mistake with the definition. */
function prefixOfJson(json: unknown): KvKey {
  if (!Array.isArray(json))
    fail(
      "INVALID_ARGUMENT",
      `prefix is a key prefix (an array of key parts), got ${describe(json)}`,
    );
  try {
    return keyFromJson(json);
  } catch (error) {
    fail("INVALID_ARGUMENT", `prefix: ${bareMessage(error as Error)}`);
  }
}

function compileUserWhere(kv: Kv, where: unknown) {
  return compileWhere(whereFromJson(where), coreOf(kv).core.now());
}
