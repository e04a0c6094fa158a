/**
 * Events over WebSocket: `GET /api/events?pattern=…&since=…` with `Upgrade: websocket`, fed by
 * the same broadcasts as the SSE form (`routes/events.ts`), each event's JSON made once for both.
 *
 * Node hands upgrade requests to the server's `upgrade` event, past Hono, so this module does
 * what the route's middleware would: it authenticates, picks the namespace, checks the query
 * and takes a stream slot, all before accepting, and refuses with a plain HTTP 4xx and the usual
 * JSON body on the socket. Every other upgrade request (another path, `Upgrade: h2c`) is served
 * as an ordinary request, as it was before the server listened for upgrades.
 *
 * Each message is a JSON array of items: events `{ type, key, versionstamp, entry, previous }`
 * and progress markers `{ type: "progress", versionstamp }`. An error is sent as
 * `[{ type: "error", error: { code, message, … } }]`, then the socket closes with 1008 (a
 * client's resume point: `COMPACTED`) or 1011 (the server's fault). A reader that falls behind
 * is closed with 1013 and the reason `SLOW_CONSUMER: resume after <versionstamp>`; shutdown
 * closes with 1001. The client sends nothing: a message from it closes the socket (1008).
 */
import { type IncomingMessage, type Server, STATUS_CODES } from "node:http";
import type { Http2SecureServer } from "node:http2";
import type { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import { type WebSocket, WebSocketServer } from "ws";
import type { EventHub, SharedBatch } from "../core/events/hub.js";
import type { CompiledPattern } from "../core/events/pattern.js";
import { KvError } from "../errors.js";
import { type Authenticator, assertAccess, NAMESPACE_HEADER } from "../http/auth.js";
import { errorBody, errorResponse, statusOf } from "../http/errors.js";
import type { Framing } from "./broadcast.js";
import {
  type EventRouteOptions,
  EventsQuery,
  eventJson,
  eventSource,
  patternParam,
} from "./routes/events.js";

const PATH = "/api/events";
/** Control frames and a stray message at most: the client has nothing to send. */
const MAX_PAYLOAD = 1024;
/** How long a closing socket may take to answer the close frame at shutdown. */
const CLOSE_GRACE_MS = 1000;
const KEY = /^[+/0-9A-Za-z]{22}==$/;

export interface EventSocketOptions extends EventRouteOptions {
  readonly authenticate: Authenticator;
  /** The origins the server's CORS setting allows (`"*"`: any), whose pages may connect too. */
  readonly cors: readonly string[];
}

const encoder = new TextEncoder();

/** Events as WebSocket messages: each write one JSON array of items. */
export const WEBSOCKET_EVENTS: Framing = {
  batch: (batch: SharedBatch) => batch.events.map((event) => event.as(eventJson)).join(","),
  progress: (versionstamp) => `{"type":"progress","versionstamp":"${versionstamp}"}`,
  error: (error) =>
    JSON.stringify({ type: "error", ...errorBody(error.code, error.message, error.details) }),
  join: (items) => encoder.encode(`[${items.join(",")}]`),
};

/**
 * Another WebSocket route on the same upgrades (the workspaces' sync): takes a WebSocket
 * upgrade request whose path it serves and returns true, or returns false to pass it on.
 */
export type UpgradeRoute = (
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  url: URL,
) => boolean;

/**
 * An upgrade route that accepts WebSocket connections at the paths `match` takes (it returns
 * what the path names, or `null` to pass the request on). A request that is no handshake `ws`
 * can accept is answered with the HTTP 4xx every route gives; an accepted socket goes to
 * `open`, which authenticates and refuses with a close code, so that a browser can read why.
 *
 * @example
 * const route = socketRoute(maxPayload, (url) => (url.pathname === "/api/sync" ? true : null), (ws, req, url) => serve(ws));
 */
export function socketRoute<M>(
  maxPayload: number,
  match: (url: URL) => M | null,
  open: (ws: WebSocket, req: IncomingMessage, url: URL, matched: M) => void,
): UpgradeRoute {
  const sockets = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload,
    perMessageDeflate: false,
  });
  return (req, socket, head, url) => {
    const matched = match(url);
    if (matched === null) return false;
    socket.on("error", () => socket.destroy());
    try {
      assertWebSocketRequest(req);
    } catch (error) {
      refuse(socket, error);
      return true;
    }
    sockets.handleUpgrade(req, socket, head, (ws) => {
      ws.on("error", () => {});
      open(ws, req, url, matched);
    });
    return true;
  };
}

/**
 * Serves the WebSocket form of `GET /api/events` on `server`'s HTTP/1.1 upgrades (cleartext, or
 * TLS beside HTTP/2), and `routes` before it.
 *
 * @example
 * const { eventSockets } = createApp(kv);
 * acceptEventSockets(server, eventSockets);
 */
export function acceptEventSockets(
  server: Server | Http2SecureServer,
  options: EventSocketOptions,
  routes: readonly UpgradeRoute[] = [],
): void {
  const sockets = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: MAX_PAYLOAD,
    perMessageDeflate: false,
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const websocket = req.headers.upgrade?.toLowerCase() === "websocket";
    if (websocket && routes.some((route) => route(req, socket, head, url))) return;
    if (url.pathname !== PATH || !websocket) {
      serveAsRequest(server, req, socket, head);
      return;
    }
    socket.on("error", () => socket.destroy());
    let stream: EventStream;
    try {
      stream = openStream(socket, checkRequest(req, url, options), options);
    } catch (error) {
      refuse(socket, error);
      return;
    }
    // A handshake ws refuses (a bad Sec-WebSocket-Protocol) never opens: free the slot.
    socket.once("close", stream.abandon);
    sockets.handleUpgrade(req, socket, head, stream.open);
  });
}

/** What an accepted request streams. */
interface EventRequest {
  readonly hub: EventHub;
  readonly pattern: CompiledPattern;
  readonly since: string | undefined;
}

/** Checks an upgrade request as the SSE route's middleware and handler would. */
function checkRequest(req: IncomingMessage, url: URL, options: EventSocketOptions): EventRequest {
  assertHandshake(req, options.cors);
  const { kv, scope } = options.authenticate({
    authorization: req.headers.authorization,
    namespace: header(req, NAMESPACE_HEADER),
    host: req.headers.host,
    queryToken: () => url.searchParams.get("token") ?? undefined,
  });
  assertAccess(scope, "read");
  const parsed = EventsQuery.safeParse(Object.fromEntries(url.searchParams));
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new KvError("INVALID_REQUEST", issues.join("; "));
  }
  const { pattern: decoded, since } = parsed.data;
  const pattern = patternParam(url.href) ?? decoded;
  return { ...eventSource(kv, pattern, since), since };
}

interface EventStream {
  /** Streams to the socket once the upgrade accepted it. */
  readonly open: (ws: WebSocket) => void;
  /** Ends the stream, whether or not it opened; frees its slot. */
  readonly abandon: () => void;
}

/** Takes a stream slot for `request` (`LIMIT_EXCEEDED` when the server is full). */
function openStream(
  socket: Duplex,
  request: EventRequest,
  options: EventSocketOptions,
): EventStream {
  const { hub, pattern, since } = request;
  let ws: WebSocket | null = null;
  let disconnect = () => {};
  let ended = false;
  const end = (code: number, reason: string) => {
    if (ended) return;
    ended = true;
    disconnect();
    release();
    if (!ws) socket.destroy();
    else if (ws.readyState === ws.OPEN) ws.close(code, reason);
  };
  const release = options.streams.add(() => {
    end(1001, "the server is shutting down");
    setTimeout(() => ws?.terminate(), CLOSE_GRACE_MS).unref();
  });
  const open = (accepted: WebSocket) => {
    ws = accepted;
    accepted.on("error", () => {});
    accepted.on("close", () => end(1000, ""));
    accepted.on("message", () => end(1008, "this socket takes no messages"));
    disconnect = options.broadcaster.open(
      hub,
      pattern,
      WEBSOCKET_EVENTS,
      {
        write(chunk) {
          if (ended) return 0;
          accepted.send(chunk, { binary: false });
          return accepted.bufferedAmount;
        },
        close(reason) {
          end(closeCode(reason), closeReason(reason));
        },
      },
      {
        progressInterval: options.pingInterval,
        maxBuffered: options.maxBuffered,
        ...(since !== undefined && { since }),
      },
    );
  };
  return { open, abandon: () => end(1000, "") };
}

/** A request header as one string (repeated headers joined, as node joins most). */
export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

/** Refuses what ws would refuse in plain text, and pages of origins the server does not allow. */
function assertHandshake(req: IncomingMessage, cors: readonly string[]): void {
  assertWebSocketRequest(req);
  assertOrigin(req, cors, "open this server's events");
}

/** Refuses, before `ws` would, an upgrade that is not a WebSocket handshake `ws` can accept. */
export function assertWebSocketRequest(req: IncomingMessage): void {
  if (req.method !== "GET")
    throw new KvError("METHOD_NOT_ALLOWED", `a WebSocket opens with GET, not ${req.method}`);
  const version = req.headers["sec-websocket-version"];
  if (!KEY.test(req.headers["sec-websocket-key"] ?? "") || (version !== "13" && version !== "8"))
    throw new KvError(
      "INVALID_REQUEST",
      "a WebSocket handshake needs a Sec-WebSocket-Key and Sec-WebSocket-Version: 13",
    );
}

/**
 * Refuses a page whose origin is neither the server's own nor one `cors` allows: browsers let any
 * page open a WebSocket to any host, with no CORS check, so pages are held to the same origins
 * CORS lets read the HTTP routes.
 */
export function assertOrigin(req: IncomingMessage, cors: readonly string[], what: string): void {
  const origin = req.headers.origin;
  if (origin === undefined || cors.includes("*") || cors.includes(origin)) return;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    host = "";
  }
  if (host !== req.headers.host)
    throw new KvError("FORBIDDEN", `pages of origin ${origin} may not ${what}`);
}

/** Answers a refused upgrade with an HTTP response, as a route would, and closes the socket. */
export function refuse(socket: Duplex, error: unknown): void {
  const { status, body, headers } = errorResponse(error);
  const text = JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`,
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(text)}`,
    "Connection: close",
    ...Object.entries(headers ?? {}).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.end(`${lines.join("\r\n")}\r\n\r\n${text}`);
}

/** WebSocket close codes (RFC 6455 § 7.4.1) for the errors a stream ends on. */
function closeCode(error: KvError): number {
  if (error.code === "SLOW_CONSUMER") return 1013;
  if (error.code === "DATABASE_CLOSED") return 1001;
  return statusOf(error.code) < 500 ? 1008 : 1011;
}

function closeReason(error: KvError): string {
  const resume = error.details?.resume;
  return resume === undefined ? error.code : `${error.code}: resume after ${resume}`;
}

/**
 * Hands an upgrade request that is not for this module back to `server` as an ordinary
 * request: its head again without `Upgrade`, then the bytes that followed it, as a connection
 * of its own, so its body, keep-alive and pipelining are parsed as usual.
 */
function serveAsRequest(
  server: Server | Http2SecureServer,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): void {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === "upgrade") continue;
    if (lower === "connection") {
      const tokens = value.split(",").map((token) => token.trim());
      const kept = tokens.filter((token) => token !== "" && token.toLowerCase() !== "upgrade");
      if (kept.length > 0) lines.push(`${name}: ${kept.join(", ")}`);
      continue;
    }
    lines.push(`${name}: ${value}`);
  }
  socket.unshift(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), head]));
  server.emit(socket instanceof TLSSocket ? "secureConnection" : "connection", socket);
}
