/**
 * Queues over HTTP, in the request's namespace: enqueue, poll (dequeue with a lock token), ack,
 * nack, extend, stats, the dead-letter queue, and a Server-Sent Events `listen` stream that keeps
 * up to `concurrency` messages leased to its consumer, who settles them with the POST routes.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { KvQueue, KvQueueMessage } from "../../core/queue.js";
import { KvError } from "../../errors.js";
import { requireAccess, type ServerEnv } from "../../http/auth.js";
import type { StreamRegistry } from "../../http/streams.js";
import { keyFromJson, valueFromJson, valueToJson } from "../../wire/json.js";
import { Key, query, Value, Versionstamp } from "../schemas.js";
import { body, errors, json } from "./keys.js";

const Name = z.object({
  name: z
    .string()
    .min(1)
    .max(256)
    .openapi({ param: { name: "name", in: "path" }, example: "emails" }),
});
const Token = z.string().min(1).max(128);
const Message = z
  .object({
    id: z.string(),
    value: Value,
    token: z.string(),
    priority: z.number(),
    attempts: z.number(),
    maxAttempts: z.number(),
    enqueuedAt: z.number(),
    lockedUntil: z.number(),
  })
  .openapi("QueueMessage");
const DeadMessage = z
  .object({
    id: z.string(),
    value: Value,
    priority: z.number(),
    attempts: z.number(),
    enqueuedAt: z.number(),
    failedAt: z.number(),
    error: z.string().nullable(),
  })
  .openapi("DeadMessage");
const Stats = z
  .object({
    pending: z.number(),
    delayed: z.number(),
    inFlight: z.number(),
    dead: z.number(),
    nextAt: z.number().nullable(),
  })
  .openapi("QueueStats");
const Ok = z.object({ ok: z.literal(true) });

const messageJson = (m: KvQueueMessage) => ({ ...m, value: valueToJson(m.value) });
const deadJson = (m: { value: unknown }) =>
  ({ ...m, value: valueToJson(m.value) }) as z.infer<typeof DeadMessage>;

/** Leases taken by listen streams, so a settle through the POST routes frees a stream's slot. */
class Leases {
  readonly #byToken = new Map<string, { release: () => void; extend: (until: number) => void }>();

  hold(token: string, hooks: { release: () => void; extend: (until: number) => void }): void {
    this.#byToken.set(token, hooks);
  }

  settled(token: string): void {
    const hooks = this.#byToken.get(token);
    this.#byToken.delete(token);
    hooks?.release();
  }

  extended(token: string, until: number): void {
    this.#byToken.get(token)?.extend(until);
  }

  drop(token: string): void {
    this.#byToken.delete(token);
  }
}

export function queueRoutes(
  app: OpenAPIHono<ServerEnv>,
  streams: StreamRegistry,
  pingInterval: number,
): void {
  const leases = new Leases();
  const queueOf = (c: Context<ServerEnv>, name: string): KvQueue => c.get("kv").queue(name);
  const route = <R extends Parameters<typeof createRoute>[0]>(r: R) =>
    createRoute({ ...r, tags: ["queues"] });

  app.openapi(
    route({
      method: "post",
      path: "/api/queues/{name}/messages",
      summary: "Enqueue a message",
      request: {
        params: Name,
        ...body(
          z.strictObject({
            value: Value,
            delay: z.number().int().min(0).optional(),
            priority: z.number().int().optional(),
            backoffSchedule: z.array(z.number().int().min(0)).max(20).optional(),
            keysIfUndelivered: z.array(Key).max(100).optional(),
            dedupKey: z.string().min(1).max(256).optional(),
            dedupWindow: z.number().int().positive().optional(),
          }),
        ),
      },
      responses: {
        200: json(
          z.object({
            ok: z.literal(true),
            id: z.string(),
            deduplicated: z.boolean(),
            versionstamp: Versionstamp,
          }),
        ),
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "write");
      const { value, keysIfUndelivered, ...options } = c.req.valid("json");
      const result = await queueOf(c, c.req.valid("param").name).enqueue(valueFromJson(value), {
        ...options,
        ...(keysIfUndelivered && { keysIfUndelivered: keysIfUndelivered.map(keyFromJson) }),
      });
      return c.json(result, 200);
    },
  );

  app.openapi(
    route({
      method: "post",
      path: "/api/queues/{name}/dequeue",
      summary: "Lease ready messages (poll); with `wait`, waits up to that many ms for one",
      request: {
        params: Name,
        ...body(
          z.strictObject({
            visibilityTimeout: z.number().int().positive().optional(),
            limit: z.number().int().min(1).max(1000).optional(),
            wait: z.number().int().min(0).max(60_000).optional(),
          }),
          // Every field has a default: no body is a poll for one message.
          false,
        ),
      },
      responses: { 200: json(z.object({ messages: z.array(Message) })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      const { visibilityTimeout, limit, wait } = c.req.valid("json");
      const queue = queueOf(c, c.req.valid("param").name);
      const options = visibilityTimeout === undefined ? {} : { visibilityTimeout };
      const deadline = Date.now() + (wait ?? 0);
      // A waiting poll holds a stream slot, so shutdown answers it at once (with no messages).
      let ended = false;
      let wake = () => {};
      const shutdown = new Promise<void>((resolve) => {
        wake = resolve;
      });
      const release =
        (wait ?? 0) > 0
          ? streams.add(() => {
              ended = true;
              wake();
            })
          : () => {};
      try {
        for (;;) {
          const messages = ended ? [] : await queue.dequeueMany(limit ?? 1, options);
          if (messages.length > 0 || ended || Date.now() >= deadline)
            return c.json({ messages: messages.map(messageJson) }, 200);
          await Promise.race([queue.waitForReady(Math.min(deadline - Date.now(), 1000)), shutdown]);
        }
      } finally {
        release();
      }
    },
  );

  const settleRoute = (action: "ack" | "nack" | "extend", extra: z.ZodRawShape, summary: string) =>
    app.openapi(
      route({
        method: "post",
        path: `/api/queues/{name}/${action}`,
        summary,
        request: { params: Name, ...body(z.strictObject({ token: Token, ...extra })) },
        responses: { 200: json(Ok), ...errors },
      }),
      async (c) => {
        requireAccess(c, "write");
        const input = c.req.valid("json") as {
          token: string;
          delay?: number;
          error?: string;
          ms?: number;
        };
        const queue = queueOf(c, c.req.valid("param").name);
        if (action === "ack") await queue.ack(input.token);
        else if (action === "extend") await queue.extend(input.token, input.ms!);
        else
          await queue.nack(input.token, {
            ...(input.delay !== undefined && { delay: input.delay }),
            ...(input.error && { error: input.error }),
          });
        if (action === "extend") leases.extended(input.token, Date.now() + input.ms!);
        else leases.settled(input.token);
        return c.json({ ok: true as const }, 200);
      },
    );
  settleRoute("ack", {}, "Acknowledge a leased message (409 INVALID_TOKEN if the lease is gone)");
  settleRoute(
    "nack",
    { delay: z.number().int().min(0).optional(), error: z.string().max(1000).optional() },
    "Fail a leased message: retried after `delay` or its backoff, or dead-lettered",
  );
  settleRoute("extend", { ms: z.number().int().positive() }, "Extend a lease by `ms` from now");

  app.openapi(
    route({
      method: "get",
      path: "/api/queues/{name}/stats",
      summary: "Pending, delayed, in-flight and dead counts",
      request: { params: Name },
      responses: { 200: json(Stats), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      return c.json(await queueOf(c, c.req.valid("param").name).stats(), 200);
    },
  );

  app.openapi(
    route({
      method: "get",
      path: "/api/queues/{name}/dlq",
      summary: "List dead messages",
      request: {
        params: Name,
        query: query({
          limit: z.coerce.number().int().min(1).max(1000).optional(),
          after: z.string().optional(),
        }),
      },
      responses: { 200: json(z.object({ messages: z.array(DeadMessage) })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const { limit, after } = c.req.valid("query");
      const messages = await queueOf(c, c.req.valid("param").name).dlq.list({
        ...(limit !== undefined && { limit }),
        ...(after !== undefined && { after }),
      });
      return c.json({ messages: messages.map(deadJson) }, 200);
    },
  );

  const DeadId = Name.extend({
    id: z
      .string()
      .min(1)
      .max(64)
      .openapi({ param: { name: "id", in: "path" } }),
  });

  app.openapi(
    route({
      method: "get",
      path: "/api/queues/{name}/dlq/{id}",
      summary: "One dead message",
      request: { params: DeadId },
      responses: { 200: json(DeadMessage), ...errors },
    }),
    async (c) => {
      requireAccess(c, "read");
      const { name, id } = c.req.valid("param");
      const message = await queueOf(c, name).dlq.get(id);
      if (!message) throw new KvError("NOT_FOUND", `no dead message ${id} in queue ${name}`);
      return c.json(deadJson(message), 200);
    },
  );

  app.openapi(
    route({
      method: "post",
      path: "/api/queues/{name}/dlq/{id}/requeue",
      summary: "Put one dead message back on its queue",
      request: { params: DeadId },
      responses: { 200: json(z.object({ count: z.number() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      const { name, id } = c.req.valid("param");
      const count = await queueOf(c, name).dlq.requeue(id);
      if (count === 0) throw new KvError("NOT_FOUND", `no dead message ${id} in queue ${name}`);
      return c.json({ count }, 200);
    },
  );

  app.openapi(
    route({
      method: "post",
      path: "/api/queues/{name}/dlq/requeue",
      summary: "Put every dead message back on its queue",
      request: { params: Name },
      responses: { 200: json(z.object({ count: z.number() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      return c.json({ count: await queueOf(c, c.req.valid("param").name).dlq.requeue() }, 200);
    },
  );

  app.openapi(
    route({
      method: "delete",
      path: "/api/queues/{name}/dlq/{id}",
      summary: "Delete one dead message",
      request: { params: DeadId },
      responses: { 200: json(z.object({ count: z.number() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      const { name, id } = c.req.valid("param");
      const count = await queueOf(c, name).dlq.delete(id);
      if (count === 0) throw new KvError("NOT_FOUND", `no dead message ${id} in queue ${name}`);
      return c.json({ count }, 200);
    },
  );

  app.openapi(
    route({
      method: "delete",
      path: "/api/queues/{name}/dlq",
      summary: "Purge the dead-letter queue",
      request: { params: Name },
      responses: { 200: json(z.object({ count: z.number() })), ...errors },
    }),
    async (c) => {
      requireAccess(c, "write");
      return c.json({ count: await queueOf(c, c.req.valid("param").name).dlq.purge() }, 200);
    },
  );

  app.openapi(
    route({
      method: "get",
      path: "/api/queues/{name}/listen",
      summary:
        "Receive messages as Server-Sent Events (`message` events); settle each with ack or nack",
      description:
        "Keeps up to `concurrency` messages leased to this stream. Messages still leased when the stream closes are nacked.",
      request: {
        params: Name,
        query: query({
          concurrency: z.coerce.number().int().min(1).max(100).optional(),
          visibilityTimeout: z.coerce.number().int().positive().optional(),
        }),
      },
      responses: {
        200: { description: "text/event-stream of `message` events (data: QueueMessage)" },
        ...errors,
      },
    }),
    (c) => {
      requireAccess(c, "write");
      const queue = queueOf(c, c.req.valid("param").name);
      const { concurrency = 1, visibilityTimeout = 30_000 } = c.req.valid("query");
      let stop = () => {};
      const release = streams.add(() => stop());
      return streamSSE(c, async (out) => {
        const held = new Map<string, number>();
        let ended = false;
        let wake: (() => void) | null = null;
        const nudge = () => wake?.();
        const end = () => {
          ended = true;
          nudge();
        };
        stop = () => {
          end();
          out.abort();
        };
        const unsubscribe = queue.onReady(nudge);
        const ping = setInterval(() => void out.write(": ping\n\n").catch(end), pingInterval);
        out.onAbort(end);
        try {
          while (!ended) {
            const now = Date.now();
            for (const [token, until] of held) {
              if (until > now) continue;
              held.delete(token);
              leases.drop(token);
            }
            const free = concurrency - held.size;
            const messages = free > 0 ? await queue.dequeueMany(free, { visibilityTimeout }) : [];
            for (const message of messages) {
              held.set(message.token, message.lockedUntil);
              leases.hold(message.token, {
                extend: (until) => held.set(message.token, until),
                release: () => {
                  held.delete(message.token);
                  nudge();
                },
              });
              await out.writeSSE({
                event: "message",
                id: message.id,
                data: JSON.stringify(messageJson(message)),
              });
            }
            if (messages.length > 0 && held.size < concurrency) continue;
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, 1000);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            });
            wake = null;
          }
        } finally {
          clearInterval(ping);
          unsubscribe();
          release();
          for (const token of held.keys()) {
            leases.drop(token);
            await queue.nack(token, { delay: 0, error: "listener disconnected" }).catch(() => {});
          }
        }
      });
    },
  );
}
