/**
 * Watch over Server-Sent Events, pushed from the commit path, and long-poll variants for
 * clients without SSE.
 *
 * - `GET /api/watch?key=…` emits `entries` events (the watched keys' current entries) on
 *   connect and on every change. Each event id is a digest of the versionstamps it carries: a
 *   client that reconnects with `Last-Event-ID` gets no event until something changed since.
 * - `GET /api/watch/prefix?prefix=…` emits one `change` event per commit under the prefix, with
 *   the commit's versionstamp as id; reconnecting with `Last-Event-ID` (or `after=`) replays the
 *   commits missed meanwhile from the change log. A `reset` event says the log no longer reaches
 *   back that far and the client must re-read.
 * - Comment lines (`: ping`) keep idle connections open.
 */
import { createHash } from "node:crypto";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { KvKey } from "../../codec/key.js";
import { assertVersionstamp } from "../../codec/versionstamp.js";
import type { SharedEvent } from "../../core/events/hub.js";
import { type KvEvent, kvEventOf } from "../../core/events/index.js";
import { ANY, compilePattern, REST } from "../../core/events/pattern.js";
import { coreOf } from "../../core/surface.js";
import type { KvEntryMaybe } from "../../core/types.js";
import type { ChangeBatch as Batch } from "../../core/watch.js";
import { KvError } from "../../errors.js";
import { requireAccess, type ServerEnv } from "../../http/auth.js";
import type { StreamRegistry } from "../../http/streams.js";
import { keyFromPath } from "../../wire/json.js";
import type { Broadcaster, Framing } from "../broadcast.js";
import { Entry, entryJson, query, Versionstamp } from "../schemas.js";
import { SSE_ENDINGS, sseResponse } from "./events.js";
import { errors, json } from "./keys.js";

export interface WatchOptions {
  readonly broadcaster: Broadcaster;
  /** Unsent bytes past which a slow prefix watch is closed (it resumes from its last id). */
  readonly maxBuffered: number;
}

export interface WatchLimits {
  /** Keys one watch may name (default 100). */
  readonly maxWatchKeys: number;
  /** Open streams across the server: watches, waiting polls and queue listens (default 1000). */
  readonly maxStreams: number;
  /** Milliseconds between keep-alive comments (default 15000). */
  readonly pingInterval: number;
}

const signatureOf = (entries: readonly KvEntryMaybe[]) =>
  createHash("sha256")
    .update(entries.map((e) => e.versionstamp ?? "-").join(","))
    .digest("hex")
    .slice(0, 20);

const KeysQuery = query({
  key: z
    .union([z.string(), z.array(z.string())], {
      error: "name the keys to watch with ?key=<path>, repeated for several",
    })
    .openapi({ description: "A key path; repeat for several keys", example: "config/theme" }),
});
const PrefixQuery = query({
  prefix: z
    .string({ error: "name the prefix with ?prefix=<path> (empty: the whole namespace)" })
    .openapi({
      description: "Key path of the prefix; empty for the whole namespace",
      example: "orders",
    }),
  after: Versionstamp.optional().openapi({
    description: "Resume after this versionstamp (as Last-Event-ID does)",
  }),
});
const timeout = z.coerce.number().int().min(0).max(60_000).optional();
const pollLimit = z.coerce
  .number()
  .int()
  .min(1)
  .max(1000)
  .optional()
  .openapi({ description: "Most commits one poll returns (default 100)" });
const ChangeBatch = z.object({
  versionstamp: Versionstamp,
  entries: z.array(Entry),
  reset: z.boolean().optional(),
});

function keysOf(raw: string | string[], max: number): KvKey[] {
  const paths = Array.isArray(raw) ? raw : [raw];
  if (paths.length > max)
    throw new KvError("INVALID_ARGUMENT", `a watch names at most ${max} keys, got ${paths.length}`);
  return paths.map(keyFromPath);
}

async function readWithin<T>(
  reader: ReadableStreamDefaultReader<T>,
  ms: number,
): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    const result = await Promise.race([reader.read(), expired]);
    return result && !result.done ? result.value : undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** A changed key's entry as a prefix watch reports it: without metadata, `null` once gone. */
function watchEntryJson(shared: SharedEvent): string {
  const { key, entry } = shared.as(kvEventOf) as KvEvent;
  return JSON.stringify(
    entryJson(
      entry
        ? { key, value: entry.value, versionstamp: entry.versionstamp }
        : { key, value: null, versionstamp: null },
    ),
  );
}

/** Prefix-watch batches as SSE `change` messages, one per commit, id its versionstamp. */
const SSE_CHANGES: Framing = {
  batch: (batch) =>
    `event: change\nid: ${batch.versionstamp}\ndata: {"versionstamp":"${batch.versionstamp}","entries":[${batch.events.map((e) => e.as(watchEntryJson)).join(",")}]}\n\n`,
  progress: () => ": ping\n\n",
  reset: (head) => `event: reset\nid: ${head}\ndata: {"versionstamp":"${head}","entries":[]}\n\n`,
  ...SSE_ENDINGS,
};

export function watchRoutes(
  app: OpenAPIHono<ServerEnv>,
  limits: WatchLimits,
  streams: StreamRegistry,
  options: WatchOptions,
): void {
  const sse = <T>(
    c: Context<ServerEnv>,
    open: () => ReadableStream<T>,
    toEvent: (item: T) => { event: string; id: string; data: string } | null,
  ) => {
    // Take the slot before opening the stream or sending a header, so a full server answers
    // 429 and leaves nothing subscribed behind.
    let end = () => {};
    const release = streams.add(() => end());
    const stream = open();
    return streamSSE(c, async (out) => {
      const reader = stream.getReader();
      let ended = false;
      end = () => {
        ended = true;
        void reader.cancel().catch(() => {});
        out.abort();
      };
      const ping = setInterval(() => void out.write(": ping\n\n").catch(end), limits.pingInterval);
      out.onAbort(end);
      try {
        while (!ended) {
          const { done, value } = await reader.read();
          if (done) break;
          const event = toEvent(value);
          if (event) await out.writeSSE(event);
        }
      } finally {
        clearInterval(ping);
        release();
        void reader.cancel().catch(() => {});
      }
    });
  };

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/watch",
      tags: ["watch"],
      summary: "Watch keys (Server-Sent Events: `entries` events)",
      request: { query: KeysQuery },
      responses: {
        200: { description: "text/event-stream of `entries` events (data: Entry[])" },
        ...errors,
      },
    }),
    (c) => {
      requireAccess(c, "read");
      const keys = keysOf(c.req.valid("query").key, limits.maxWatchKeys);
      let skip = c.req.header("last-event-id");
      return sse(
        c,
        () => c.get("kv").watch(keys),
        (entries) => {
          const id = signatureOf(entries);
          if (id === skip) return null;
          skip = undefined;
          return { event: "entries", id, data: JSON.stringify(entries.map(entryJson)) };
        },
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/watch/poll",
      tags: ["watch"],
      summary:
        "Long-poll keys: answers at once if they changed since `since`, else waits up to `timeout` ms",
      request: { query: KeysQuery.extend({ since: z.string().optional(), timeout }) },
      responses: {
        200: json(z.object({ id: z.string(), changed: z.boolean(), entries: z.array(Entry) })),
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "read");
      const query = c.req.valid("query");
      const keys = keysOf(query.key, limits.maxWatchKeys);
      let reader: ReadableStreamDefaultReader<KvEntryMaybe[]> | undefined;
      const release = streams.add(() => void reader?.cancel());
      reader = c.get("kv").watch(keys).getReader();
      try {
        let entries = (await reader.read()).value!;
        let changed = signatureOf(entries) !== query.since;
        if (!changed) {
          const next = await readWithin(reader, query.timeout ?? 25_000);
          if (next) [entries, changed] = [next, true];
        }
        return c.json({ id: signatureOf(entries), changed, entries: entries.map(entryJson) }, 200);
      } finally {
        release();
        await reader.cancel();
      }
    },
  );

  const resumePoint = (c: Context<ServerEnv>, after: string | undefined) => {
    const resume = after ?? c.req.header("last-event-id");
    if (resume !== undefined) assertVersionstamp(resume);
    return resume;
  };

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/watch/prefix",
      tags: ["watch"],
      summary:
        "Watch every commit under a prefix (Server-Sent Events: `change` and `reset` events)",
      request: { query: PrefixQuery },
      responses: {
        200: { description: "text/event-stream; `change` data: { versionstamp, entries }" },
        ...errors,
      },
    }),
    (c) => {
      requireAccess(c, "read");
      const query = c.req.valid("query");
      const after = resumePoint(c, query.after);
      const prefix = keyFromPath(query.prefix);
      const { core, keyspace } = coreOf(c.get("kv"));
      keyspace.encodeBound(prefix);
      const pattern = compilePattern([...prefix, ANY, REST], keyspace.prefix);
      return sseResponse(c, streams, options.maxBuffered, (outlet) =>
        options.broadcaster.open(core.events, pattern, SSE_CHANGES, outlet, {
          progressInterval: limits.pingInterval,
          maxBuffered: options.maxBuffered,
          // A watch that starts live starts at the head, so a reconnection's id means something.
          ...(after !== undefined && { since: after }),
        }),
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/watch/prefix/poll",
      tags: ["watch"],
      summary:
        "Long-poll commits under a prefix after `after`: waits for the first, then returns every commit already available, up to `limit`; without `after`, returns the current position",
      request: { query: PrefixQuery.extend({ timeout, limit: pollLimit }) },
      responses: {
        200: json(z.object({ changes: z.array(ChangeBatch), cursor: Versionstamp })),
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "read");
      const query = c.req.valid("query");
      const kv = c.get("kv");
      const prefix = keyFromPath(query.prefix);
      const after = resumePoint(c, query.after);
      if (after === undefined)
        return c.json({ changes: [], cursor: await kv.currentVersionstamp() }, 200);
      let reader: ReadableStreamDefaultReader<Batch<KvEntryMaybe>> | undefined;
      const release = streams.add(() => void reader?.cancel());
      reader = kv.watchPrefix(prefix, { after }).getReader();
      try {
        const batches: Batch<KvEntryMaybe>[] = [];
        const limit = query.limit ?? 100;
        for (let wait = query.timeout ?? 25_000; batches.length < limit; wait = 0) {
          const batch = await readWithin(reader, wait);
          if (!batch) break;
          batches.push(batch);
          // A reset is answered alone: the client re-reads before it asks for more.
          if (batch.reset) break;
        }
        const changes = batches.map((batch) => ({
          ...batch,
          entries: batch.entries.map(entryJson),
        }));
        return c.json({ changes, cursor: batches.at(-1)?.versionstamp ?? after }, 200);
      } finally {
        release();
        await reader.cancel();
      }
    },
  );
}
