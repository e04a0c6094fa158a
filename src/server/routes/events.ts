/**
 * Events over Server-Sent Events: `GET /api/events?pattern=users/%2B/settings&since=…` (the
 * WebSocket form of the same route is `websocket.ts`).
 *
 * The pattern is a key path whose segment `+` matches one part and a last `#` zero or more
 * (MQTT's wildcards); a literal `+` or `#` part is written `~s:+`, `~s:#`. In the query string
 * `+` may stand bare (the pattern parameter is read without form decoding, so `+` is not a
 * space: write a space `%20`) and `#` must be `%23`, since it would start the URL's fragment. Each event is an SSE
 * message named by its type (`set`, `delete`, `expire`) whose data is
 * `{ type, key, versionstamp, entry, previous }`; the last event of each commit carries the
 * commit's versionstamp as its id, so a client that reconnects with `Last-Event-ID` (or
 * `since=`) resumes after the last whole commit it received. `progress` messages (id and data:
 * the versionstamp every event up to which was sent) arrive after `pingInterval` ms of quiet.
 * A resume point the change log no longer holds gets an `error` message (`COMPACTED`, with
 * `oldest`) and the stream ends; so does a connection that falls too far behind (it resumes).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { assertVersionstamp } from "../../codec/versionstamp.js";
import type { EventHub, SharedBatch, SharedEvent } from "../../core/events/hub.js";
import { type KvEvent, kvEventOf } from "../../core/events/index.js";
import {
  ANY,
  type CompiledPattern,
  compilePattern,
  type KvPattern,
  REST,
} from "../../core/events/pattern.js";
import type { Kv } from "../../core/kv.js";
import { coreOf } from "../../core/surface.js";
import { KvError } from "../../errors.js";
import { requireAccess, type ServerEnv } from "../../http/auth.js";
import { errorBody } from "../../http/errors.js";
import type { StreamRegistry } from "../../http/streams.js";
import { keyFromPath } from "../../wire/json.js";
import type { Broadcaster, Framing, Outlet } from "../broadcast.js";
import { entryJson, keyJson, query, Versionstamp } from "../schemas.js";
import { errors } from "./keys.js";

export interface EventRouteOptions {
  readonly broadcaster: Broadcaster;
  readonly streams: StreamRegistry;
  /** Milliseconds of quiet before a progress message. */
  readonly pingInterval: number;
  /** Unsent bytes past which a slow connection is closed. */
  readonly maxBuffered: number;
}

/**
 * The `pattern` query parameter of `url`, percent-decoded but not form-decoded: a bare `+` is
 * the one-part wildcard, as in MQTT, not a space. `undefined` when absent.
 */
export function patternParam(url: string): string | undefined {
  const query = url.indexOf("?");
  if (query < 0) return undefined;
  const hash = url.indexOf("#", query);
  for (const pair of url.slice(query + 1, hash < 0 ? undefined : hash).split("&")) {
    if (!pair.startsWith("pattern=")) continue;
    try {
      return decodeURIComponent(pair.slice("pattern=".length));
    } catch {
      throw new KvError("INVALID_PATTERN", "the pattern is not valid percent-encoding");
    }
  }
  return undefined;
}

/**
 * A pattern from its path form. Throws `INVALID_PATTERN` naming the segment.
 *
 * @example
 * patternFromPath("users/+/settings"); // ["users", ANY, "settings"]
 */
export function patternFromPath(path: string): KvPattern {
  if (path === "")
    throw new KvError("INVALID_PATTERN", "the pattern is empty; `#` matches every key");
  return path.split("/").map((segment, i) => {
    if (segment === "+") return ANY;
    if (segment === "#") return REST;
    try {
      return keyFromPath(segment)[0]!;
    } catch (error) {
      const reason = error instanceof KvError ? error.message.replace(/^.*?segment 0:? ?/, "") : "";
      throw new KvError("INVALID_PATTERN", `pattern segment ${i} is not a key part: ${reason}`);
    }
  });
}

/** An event as JSON text, made once per event and shared by every stream that sends it. */
export function eventJson(shared: SharedEvent): string {
  const event = shared.as(kvEventOf) as KvEvent;
  return JSON.stringify({
    type: event.type,
    key: keyJson(event.key),
    versionstamp: event.versionstamp,
    entry: event.entry && entryJson(event.entry),
    previous: event.previous && entryJson(event.previous),
  });
}

const encoder = new TextEncoder();

/** What every SSE framing ends with on an error, and how it joins a flush's items. */
export const SSE_ENDINGS: Pick<Framing, "error" | "join"> = {
  error: (error) =>
    `event: error\ndata: ${JSON.stringify(errorBody(error.code, error.message, error.details))}\n\n`,
  join: (items) => encoder.encode(items.join("")),
};

/** Events as SSE messages; only a commit's last event carries the id a client resumes from. */
export const SSE_EVENTS: Framing = {
  batch: (batch: SharedBatch) => {
    const last = batch.events.length - 1;
    return batch.events
      .map(
        (event, i) =>
          `event: ${event.change.type}\n${i === last ? `id: ${batch.versionstamp}\n` : ""}data: ${event.as(eventJson)}\n\n`,
      )
      .join("");
  },
  progress: (versionstamp) =>
    `event: progress\nid: ${versionstamp}\ndata: {"versionstamp":"${versionstamp}"}\n\n`,
  ...SSE_ENDINGS,
};

/** An SSE response fed by `connect`, which gets the outlet and returns the disconnect function. */
export function sseResponse(
  c: Context<ServerEnv>,
  streams: StreamRegistry,
  maxBuffered: number,
  connect: (outlet: Outlet) => () => void,
): Response {
  let disconnect = () => {};
  let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    disconnect();
    release();
    try {
      controller?.close();
    } catch {
      // Already closed or cancelled by the client.
    }
  };
  // Take the slot first, so a full server answers 429 and leaves nothing subscribed behind.
  const release = streams.add(end);
  const body = new ReadableStream<Uint8Array>(
    {
      start(stream) {
        controller = stream;
        stream.enqueue(encoder.encode("retry: 1000\n: connected\n\n"));
        disconnect = connect({
          write(chunk) {
            if (ended) return 0;
            stream.enqueue(chunk);
            return maxBuffered - (stream.desiredSize ?? 0);
          },
          close: end,
        });
      },
      cancel: end,
    },
    new ByteLengthQueuingStrategy({ highWaterMark: maxBuffered }),
  );
  return c.body(body, 200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
  });
}

/**
 * Where an events request's stream comes from: the hub of `kv`'s database and `pattern` (path
 * form) compiled in `kv`'s namespace. Throws `INVALID_PATTERN` or `INVALID_VERSIONSTAMP`.
 *
 * @example
 * const { hub, pattern } = eventSource(kv.namespace("a"), "users/#", undefined);
 */
export function eventSource(
  kv: Kv,
  pattern: string,
  since: string | undefined,
): { readonly hub: EventHub; readonly pattern: CompiledPattern } {
  if (since !== undefined) assertVersionstamp(since);
  const { core, keyspace } = coreOf(kv);
  return { hub: core.events, pattern: compilePattern(patternFromPath(pattern), keyspace.prefix) };
}

/** The query of `GET /api/events`, in both its forms (SSE and WebSocket). */
export const EventsQuery = query({
  pattern: z
    .string({ error: "name the keys with ?pattern=<path>, e.g. users/+/settings or users/#" })
    .openapi({
      description:
        "Key path; `+` matches one part, a last `#` zero or more (in a URL %2B and %23; write a literal + or # as ~s:+, ~s:#)",
      example: "users/+/settings",
    }),
  since: Versionstamp.optional().openapi({
    description: "Replay the events after this versionstamp first (as Last-Event-ID does)",
  }),
});

export function eventRoutes(app: OpenAPIHono<ServerEnv>, options: EventRouteOptions): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/events",
      tags: ["events"],
      summary:
        "Events of the keys a pattern matches (Server-Sent Events: `set`, `delete`, `expire`, `progress`, `error`)",
      description:
        "With `Upgrade: websocket`, the same events over a WebSocket instead: each message a JSON array of events and `{ type: progress, versionstamp }` markers, an error as `[{ type: error, error }]` before close code 1008 or 1011, a slow client closed with 1013 (`SLOW_CONSUMER: resume after <versionstamp>`). A refused request is answered with its 4xx before the upgrade.",
      request: { query: EventsQuery },
      responses: {
        200: {
          description:
            "text/event-stream; data: { type, key, versionstamp, entry, previous }, id: the commit's versionstamp on its last event",
        },
        ...errors,
      },
    }),
    (c) => {
      requireAccess(c, "read");
      const { pattern: decoded, since: sinceQuery } = c.req.valid("query");
      const pattern = patternParam(c.req.url) ?? decoded;
      const since = sinceQuery ?? c.req.header("last-event-id");
      const source = eventSource(c.get("kv"), pattern, since);
      return sseResponse(c, options.streams, options.maxBuffered, (outlet) =>
        options.broadcaster.open(source.hub, source.pattern, SSE_EVENTS, outlet, {
          progressInterval: options.pingInterval,
          maxBuffered: options.maxBuffered,
          ...(since !== undefined && { since }),
        }),
      );
    },
  );
}
