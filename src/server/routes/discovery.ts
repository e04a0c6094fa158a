/**
 * Discovery: which namespaces hold entries and how much, and which queues a namespace has. A
 * caller sees only the namespaces its token may use; an admin sees every one.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { decodeKey } from "../../codec/key.js";
import {
  coreOf,
  countNamespace,
  type KvCore,
  listNamespaces,
  type NamespaceUsage,
  namespaceUsage,
} from "../../core/surface.js";
import { type RequestScope, requireAccess, type ServerEnv } from "../../http/auth.js";
import { query } from "../schemas.js";
import { errors, json } from "./keys.js";

/** Queues one request lists at most. */
const MAX_QUEUES = 1000;

/** Namespaces one request lists at most; `after` pages on. */
const MAX_NAMESPACES = 1000;

const NamespaceInfo = z
  .object({
    name: z.string().openapi({ description: '`""` is the default namespace' }),
    entries: z.number(),
    reserved: z
      .boolean()
      .optional()
      .openapi({ description: "one of Cellar's own (`$…`), listed to admins only" }),
  })
  .openapi("NamespaceInfo");

const QueueInfo = z
  .object({
    name: z.string(),
    pending: z.number(),
    delayed: z.number(),
    inFlight: z.number(),
    dead: z.number(),
    nextAt: z.number().nullable(),
  })
  .openapi("QueueInfo");

const Usage = z.object({ entries: z.number(), bytes: z.number() });

/** What `scope` may see of the database's namespaces. */
function visible(scope: RequestScope): (name: string) => boolean {
  if (scope.access === "admin") return () => true;
  return (name) => !name.startsWith("$") && scope.allows(name);
}

/** The namespaces the request may see, from `after` on, up to `limit`. */
async function visibleNamespaces(
  core: KvCore,
  scope: RequestScope,
  limit: number,
  after?: string,
): Promise<{ names: string[]; more: boolean }> {
  const may = visible(scope);
  const names: string[] = [];
  let from = after;
  for (;;) {
    const batch = await listNamespaces(core, {
      limit: limit + 1,
      ...(from !== undefined && { after: from }),
    });
    names.push(...batch.filter(may));
    if (names.length > limit) return { names: names.slice(0, limit), more: true };
    if (batch.length <= limit) return { names, more: false };
    from = batch.at(-1);
  }
}

/** The discovery routes that list across a token's namespaces, so need none named. */
export const DISCOVERY_ACROSS_NAMESPACES: ReadonlySet<string> = new Set([
  "/api/namespaces",
  "/api/stats",
]);

export function discoveryRoutes(app: OpenAPIHono<ServerEnv>): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/namespaces",
      tags: ["discovery"],
      summary: "Namespaces that hold live entries, with their entry counts",
      description:
        "An admin token sees every namespace (Cellar's own `$…` ones marked `reserved`); another token only those it may use. Found by a skip-scan: one read per namespace. Page with `after` (the last name of the previous page).",
      request: {
        query: query({
          limit: z.coerce.number().int().min(1).max(MAX_NAMESPACES).optional(),
          after: z.string().optional(),
        }),
      },
      responses: {
        200: json(
          z.object({
            namespaces: z.array(NamespaceInfo),
            next: z.string().nullable().openapi({ description: "`after` for the next page" }),
          }),
        ),
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "read");
      const { limit = MAX_NAMESPACES, after } = c.req.valid("query");
      const { core } = coreOf(c.get("kv"));
      const { names, more } = await visibleNamespaces(core, c.get("scope"), limit, after);
      const namespaces = await Promise.all(
        names.map(async (name) => ({
          name,
          entries: await countNamespace(core, name),
          ...(name.startsWith("$") && { reserved: true }),
        })),
      );
      return c.json({ namespaces, next: more ? (names.at(-1) ?? null) : null }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/stats",
      tags: ["discovery"],
      summary: "Entries and approximate bytes, in total and per namespace",
      description:
        "Over the namespaces the token may see (every one for an admin). Bytes are the encoded keys and values of live entries, without storage overhead and history. Reads every live entry it counts: meant for administration, not for every request.",
      responses: {
        200: json(
          Usage.extend({
            namespaces: z.array(Usage.extend({ name: z.string() })),
          }),
        ),
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "read");
      const { core } = coreOf(c.get("kv"));
      const { names } = await visibleNamespaces(core, c.get("scope"), Number.MAX_SAFE_INTEGER);
      const namespaces: (NamespaceUsage & { name: string })[] = [];
      for (const name of names) namespaces.push({ name, ...(await namespaceUsage(core, name)) });
      const total = (field: "entries" | "bytes") =>
        namespaces.reduce((sum, usage) => sum + usage[field], 0);
      return c.json({ entries: total("entries"), bytes: total("bytes"), namespaces }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/queues",
      tags: ["discovery", "queues"],
      summary: "Queues of the request's namespace that hold messages, with their stats",
      description: `A queue is listed while it holds any message: ready, delayed, leased or dead. At most ${MAX_QUEUES}, by name.`,
      responses: { 200: json(z.object({ queues: z.array(QueueInfo) })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const kv = c.get("kv");
      const { core, keyspace } = coreOf(kv);
      const stored = await core.listQueues(
        { start: keyspace.prefix, end: keyspace.end },
        keyspace,
        MAX_QUEUES,
      );
      const queues = await Promise.all(
        stored.map(async (bytes) => {
          const name = String(decodeKey(bytes.subarray(keyspace.prefix.length))[0]);
          return { name, ...(await kv.queue(name).stats()) };
        }),
      );
      return c.json({ queues }, 200);
    },
  );
}
