/**
 * The routes of the key-value API Cellar grew from (seed 001's route table), as thin aliases of
 * Cellar's own calls, so a client written against that API works unchanged: its request and
 * response shapes are translated here, its semantics are Cellar's. Tagged `seed-compat` in the
 * OpenAPI document.
 *
 * Where it differs: errors keep Cellar's body `{ error: { code, message } }`; a queue message's
 * `id` from `poll` is its lease token (Cellar settles a message only with the token of its lease,
 * so no caller can ack another's message); `where` filters are refused (`UNSUPPORTED`).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { KvKey } from "../../codec/key.js";
import type { Kv } from "../../core/kv.js";
import type { KvQueue } from "../../core/queue.js";
import type { KvListSelector } from "../../core/types.js";
import { KvError } from "../../errors.js";
import { requireAccess, type ServerEnv } from "../../http/auth.js";
import { keyFromJson, keyFromPath, valueFromJson, valueToJson } from "../../wire/json.js";
import { Entry, entryJson, Key, query, Value } from "../schemas.js";
import { body, errors, json } from "./keys.js";

const TAG = ["seed-compat"];

/** GET paths under `/api/keys/` that these aliases take: the fast path must leave them to Hono. */
export const SEED_KEY_ROUTES: ReadonlySet<string> = new Set([
  "/api/keys/count",
  "/api/keys/paginate",
]);

const flag = z.enum(["true", "false", "1", "0"]).optional();
const yes = (value: string | undefined) => value === "true" || value === "1";
const Limit = z.coerce.number().int().min(1).max(1000).optional();
const PathQuery = query({
  prefix: z.string().optional().openapi({ description: "key path, e.g. users" }),
  start: z.string().optional(),
  end: z.string().optional(),
  limit: Limit,
  reverse: flag,
});
const Where = z.unknown().optional().openapi({ description: "not supported: refused" });

const fromPath = (path: string | undefined): KvKey | undefined =>
  path === undefined || path === "" ? undefined : keyFromPath(path);

/** The seed's selector: a prefix (default everything) narrowed by start and end. */
function selector(prefix?: KvKey, start?: KvKey, end?: KvKey): KvListSelector {
  if (start && end && !prefix) return { start, end };
  return {
    prefix: prefix ?? [],
    ...(start && { start }),
    ...(end && { end }),
  } as KvListSelector;
}

function refuseWhere(where: unknown): void {
  if (where !== undefined)
    throw new KvError("UNSUPPORTED", "where filters are not supported; filter the entries listed");
}

async function listEntries(
  kv: Kv,
  sel: KvListSelector,
  options: { limit?: number | undefined; reverse?: boolean | undefined },
) {
  const entries = [];
  for await (const entry of kv.list(sel, {
    limit: options.limit ?? 100,
    reverse: options.reverse === true,
  })) {
    entries.push(entryJson(entry));
  }
  return entries;
}

const DeadMessage = z
  .object({
    id: z.string(),
    originalId: z.string(),
    value: Value,
    attempts: z.number(),
    errorMessage: z.string().nullable(),
    originalCreatedAt: z.number(),
    failedAt: z.number(),
  })
  .openapi("SeedDeadMessage");

const deadJson = (m: {
  id: string;
  value: unknown;
  attempts: number;
  error: string | null;
  enqueuedAt: number;
  failedAt: number;
}) => ({
  id: m.id,
  originalId: m.id,
  value: valueToJson(m.value),
  attempts: m.attempts,
  errorMessage: m.error,
  originalCreatedAt: m.enqueuedAt,
  failedAt: m.failedAt,
});

/** The seed's single queue is the request namespace's default queue. */
const queueOf = (c: Context<ServerEnv>): KvQueue => c.get("kv").queue("default");

const Id = z.strictObject({ id: z.string().min(1).max(128) });
const Ok = z.object({ ok: z.literal(true) });
const DeadId = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" } }),
});

export function seedCompatRoutes(app: OpenAPIHono<ServerEnv>): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/keys",
      tags: TAG,
      summary: "List entries by prefix (an array); Cellar's own: GET /api/list",
      request: { query: PathQuery },
      responses: { 200: json(z.array(Entry)), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const q = c.req.valid("query");
      const sel = selector(fromPath(q.prefix), fromPath(q.start), fromPath(q.end));
      return c.json(
        await listEntries(c.get("kv"), sel, { limit: q.limit, reverse: yes(q.reverse) }),
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/keys/list",
      tags: TAG,
      summary: "List entries given JSON keys (an array); Cellar's own: POST /api/list",
      request: body(
        z.strictObject({
          prefix: Key.optional(),
          start: Key.optional(),
          end: Key.optional(),
          limit: z.number().int().min(1).max(1000).optional(),
          reverse: z.boolean().optional(),
          where: Where,
        }),
      ),
      responses: { 200: json(z.array(Entry)), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const b = c.req.valid("json");
      refuseWhere(b.where);
      const key = (k: unknown) => (k === undefined ? undefined : keyFromJson(k));
      const sel = selector(key(b.prefix), key(b.start), key(b.end));
      return c.json(await listEntries(c.get("kv"), sel, b), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/keys/count",
      tags: TAG,
      summary: "Count entries by prefix; Cellar's own: GET /api/count",
      description: "A key named `count` is read with GET /api/keys/~s:count.",
      request: { query: query({ prefix: z.string().optional() }) },
      responses: { 200: json(z.object({ count: z.number() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const prefix = fromPath(c.req.valid("query").prefix) ?? [];
      return c.json({ count: await c.get("kv").count({ prefix }) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/keys/paginate",
      tags: TAG,
      summary: "One page of entries and a cursor; Cellar's own: GET /api/list",
      description: "A key named `paginate` is read with GET /api/keys/~s:paginate.",
      request: {
        query: query({
          prefix: z.string().optional(),
          cursor: z.string().optional(),
          limit: Limit,
          reverse: flag,
        }),
      },
      responses: {
        200: json(
          z.object({
            entries: z.array(Entry),
            cursor: z.string().nullable(),
            hasMore: z.boolean(),
          }),
        ),
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "read");
      const q = c.req.valid("query");
      const page = await c.get("kv").paginate(
        { prefix: fromPath(q.prefix) ?? [] },
        {
          limit: q.limit ?? 100,
          reverse: yes(q.reverse),
          ...(q.cursor !== undefined && { cursor: q.cursor }),
        },
      );
      return c.json(
        { entries: page.entries.map(entryJson), cursor: page.cursor, hasMore: page.hasMore },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/keys/batch",
      tags: TAG,
      summary: "Read many keys from one snapshot (an array); Cellar's own: POST /api/get",
      request: body(z.strictObject({ keys: z.array(Key).min(1).max(1000) })),
      responses: { 200: json(z.array(Entry)), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const entries = await c.get("kv").getMany(c.req.valid("json").keys.map(keyFromJson));
      return c.json(entries.map(entryJson), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/keys/delete-batch",
      tags: TAG,
      summary:
        "Delete keys, with their sub-keys unless exact; Cellar's own: POST /api/delete and /api/delete-range",
      request: body(
        z.strictObject({
          keys: z.array(Key).min(1).max(1000),
          exact: z.boolean().optional(),
          where: Where,
        }),
      ),
      responses: { 200: json(z.object({ deletedCount: z.number() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      const b = c.req.valid("json");
      refuseWhere(b.where);
      const kv = c.get("kv");
      const keys = b.keys.map(keyFromJson);
      const present = (await kv.getMany(keys)).filter((e) => e.versionstamp !== null).length;
      const op = kv.atomic();
      for (const key of keys) op.delete(key);
      if (!(await op.commit()).ok) throw new KvError("CONFLICT", "the batch delete did not commit");
      let deletedCount = present;
      if (b.exact !== true) {
        for (const key of keys) deletedCount += await kv.deleteMany({ prefix: key });
      }
      return c.json({ deletedCount }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/queue/enqueue",
      tags: TAG,
      summary: "Enqueue on the default queue; Cellar's own: POST /api/queues/{name}/messages",
      request: body(
        z.strictObject({
          value: Value,
          options: z
            .strictObject({
              delay: z.number().int().min(0).optional(),
              backoffSchedule: z.array(z.number().int().min(0)).optional(),
              keysIfUndelivered: z.array(Key).optional(),
            })
            .optional(),
        }),
      ),
      responses: { 200: json(z.object({ ok: z.literal(true), id: z.string() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      const { value, options = {} } = c.req.valid("json");
      const result = await queueOf(c).enqueue(valueFromJson(value), {
        ...(options.delay !== undefined && { delay: options.delay }),
        ...(options.backoffSchedule && { backoffSchedule: options.backoffSchedule }),
        ...(options.keysIfUndelivered && {
          keysIfUndelivered: options.keysIfUndelivered.map(keyFromJson),
        }),
      });
      return c.json({ ok: true as const, id: result.id }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/queue/poll",
      tags: TAG,
      summary: "Lease one message of the default queue; its id is the lease token to ack or nack",
      responses: {
        200: json(
          z.object({
            message: z.object({ id: z.string(), value: Value, attempts: z.number() }).nullable(),
          }),
        ),
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "write");
      const message = await queueOf(c).dequeue();
      return c.json(
        {
          message: message && {
            id: message.token,
            value: valueToJson(message.value),
            attempts: message.attempts,
          },
        },
        200,
      );
    },
  );

  for (const action of ["ack", "nack"] as const) {
    app.openapi(
      createRoute({
        method: "post",
        path: `/api/queue/${action}`,
        tags: TAG,
        summary: `${action === "ack" ? "Acknowledge" : "Reject"} a polled message by the id poll gave`,
        request: body(Id),
        responses: { 200: json(Ok), ...errors },
      }),
      async (c) => {
        requireAccess(c, "write");
        const { id } = c.req.valid("json");
        if (action === "ack") await queueOf(c).ack(id);
        else await queueOf(c).nack(id);
        return c.json({ ok: true as const }, 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/queue/stats",
      tags: TAG,
      summary: "Default queue counts; Cellar's own: GET /api/queues/{name}/stats",
      responses: {
        200: json(
          z.object({
            pending: z.number(),
            processing: z.number(),
            dlq: z.number(),
            total: z.number(),
          }),
        ),
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "read");
      const s = await queueOf(c).stats();
      const pending = s.pending + s.delayed;
      return c.json(
        { pending, processing: s.inFlight, dlq: s.dead, total: pending + s.inFlight + s.dead },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/queue/dlq",
      tags: TAG,
      summary: "Dead messages of the default queue, oldest failure first",
      request: {
        query: query({
          limit: Limit,
          offset: z.coerce.number().int().min(0).max(10_000).optional(),
        }),
      },
      responses: { 200: json(z.array(DeadMessage)), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const { limit = 100, offset = 0 } = c.req.valid("query");
      const dlq = queueOf(c).dlq;
      // Cellar pages the dead-letter queue by id; an offset skips whole pages first.
      let after: string | undefined;
      let skipped = 0;
      while (skipped < offset) {
        const page = await dlq.list({
          limit: Math.min(1000, offset - skipped),
          ...(after && { after }),
        });
        if (page.length === 0) return c.json([], 200);
        skipped += page.length;
        after = page.at(-1)!.id;
      }
      const dead = await dlq.list({ limit, ...(after && { after }) });
      return c.json(dead.map(deadJson), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/queue/dlq/{id}",
      tags: TAG,
      summary: "One dead message of the default queue",
      request: { params: DeadId },
      responses: { 200: json(DeadMessage), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const dead = await queueOf(c).dlq.get(c.req.valid("param").id);
      if (!dead) throw new KvError("NOT_FOUND", "no message with this id in the dead-letter queue");
      return c.json(deadJson(dead), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/queue/dlq/{id}/requeue",
      tags: TAG,
      summary: "Put a dead message back on the default queue; it keeps its id",
      request: { params: DeadId },
      responses: { 200: json(z.object({ ok: z.literal(true), newId: z.string() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      const { id } = c.req.valid("param");
      if ((await queueOf(c).dlq.requeue(id)) === 0)
        throw new KvError("NOT_FOUND", "no message with this id in the dead-letter queue");
      return c.json({ ok: true as const, newId: id }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/queue/dlq/{id}",
      tags: TAG,
      summary: "Delete one dead message of the default queue",
      request: { params: DeadId },
      responses: { 200: json(Ok), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      await queueOf(c).dlq.delete(c.req.valid("param").id);
      return c.json({ ok: true as const }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/queue/dlq",
      tags: TAG,
      summary: "Delete every dead message of the default queue",
      responses: { 200: json(z.object({ deletedCount: z.number() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      return c.json({ deletedCount: await queueOf(c).dlq.purge() }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/metrics/prometheus",
      tags: TAG,
      summary: "Entry and default-queue gauges of the request's namespace, in Prometheus text",
      description:
        "The seed's gauges for the request's namespace; the database's own metrics (operations, latencies, queues, watchers) are at GET /metrics.",
      responses: {
        200: {
          description: "Prometheus text format 0.0.4",
          content: { "text/plain": { schema: z.string() } },
        },
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "read");
      const kv = c.get("kv");
      const [entries, s] = await Promise.all([kv.count({ prefix: [] }), queueOf(c).stats()]);
      const gauge = (name: string, help: string, value: number) =>
        `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${value}\n`;
      return c.text(
        [
          gauge("keyval_storage_entries", "Live entries in the namespace", entries),
          gauge("keyval_queue_pending", "Pending messages in queue", s.pending + s.delayed),
          gauge("keyval_queue_processing", "Messages being processed", s.inFlight),
          gauge("keyval_queue_dlq", "Messages in dead letter queue", s.dead),
        ].join("\n"),
        200,
        { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      );
    },
  );
}
