/**
 * The HTTP application: Hono routes over one database. `createApp` builds it without opening a
 * port (tests call `app.request`); `startServer` in `serve.ts` puts it on one.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { TrieRouter } from "hono/router/trie-router";
import type { Logger } from "pino";
import type { Kv } from "../core/kv.js";
import { coreOf } from "../core/surface.js";
import { KvError } from "../errors.js";
import {
  type AuthOptions,
  authenticate,
  createAuthenticator,
  type ServerEnv,
} from "../http/auth.js";
import { errorBody, onError } from "../http/errors.js";
import { StreamRegistry } from "../http/streams.js";
import { KV_CONNECT_MOUNT, kvConnectRoutes } from "../kv-connect/routes.js";
import { metricsRegistry, withMetrics } from "../observe/metrics.js";
import { DRIVER_SOCKET_PATH } from "../wire/driver-socket.js";
import { workspaceNamespace } from "../workspace/client.js";
import type { AnyWorkspace } from "../workspace/define.js";
import { Broadcaster } from "./broadcast.js";
import { docsRoutes } from "./docs.js";
import { driverSocketRoute } from "./driver-socket.js";
import { createFastPath, type FastPath } from "./fast-path.js";
import { observeRequests, RequestObserver } from "./requests.js";
import { atomicRoutes } from "./routes/atomic.js";
import { backupRoutes } from "./routes/backup.js";
import { DISCOVERY_ACROSS_NAMESPACES, discoveryRoutes } from "./routes/discovery.js";
import { driverRoutes } from "./routes/driver.js";
import { driverCalls } from "./routes/driver-calls.js";
import { eventRoutes } from "./routes/events.js";
import { healthRoutes } from "./routes/health.js";
import { indexRoutes } from "./routes/indexes.js";
import { keysRoutes } from "./routes/keys.js";
import { listRoutes } from "./routes/list.js";
import { metricsRoutes } from "./routes/metrics.js";
import { queueRoutes } from "./routes/queues.js";
import { seedCompatRoutes } from "./routes/seed-compat.js";
import { SESSION_ROUTE, sessionRoutes } from "./routes/session.js";
import { type TypedRouteOptions, typedRoutes } from "./routes/typed.js";
import { watchRoutes } from "./routes/watch.js";
import type { SyncOptions } from "./sync/apply.js";
import { syncRoute } from "./sync/route.js";
import { defaultUiDir, uiRoutes } from "./ui.js";
import type { EventSocketOptions, UpgradeRoute } from "./websocket.js";
import { Rooms } from "./workspaces/rooms.js";
import { workspaceRoutes } from "./workspaces/routes.js";
import { syncSockets } from "./workspaces/sync.js";

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

export interface AppOptions extends AuthOptions, Omit<TypedRouteOptions, "workspaces"> {
  /**
   * Collaborative workspaces (`defineWorkspace`): each served at `/workspaces/{id}/sync`
   * (y-protocols over WebSocket) and by REST routes, its document persisted in namespace
   * `workspace-{id}`. The older form, workspace id → KV definition (`defineKv` columns), serves
   * typed values stored as plain keys at `/workspaces/{id}/kv` (see `routes/typed.ts`).
   */
  readonly workspaces?: readonly AnyWorkspace[] | TypedRouteOptions["workspaces"];
  /** How long a workspace's document stays in memory with nobody using it, in ms (default 30 s). */
  readonly workspaceIdleMs?: number;
  /**
   * A folder where each workspace's document is kept mirrored in SQL tables (`<id>.sqlite`: a
   * `_kv` table and one per workspace table), for any SQLite tool to read while the server runs.
   */
  readonly workspaceMirror?: string;
  /**
   * How client stores (`createClientKv`) sync at `/api/sync`: conflict policies, schemas and
   * read-only prefixes (see `SyncOptions`); `false` turns the route off. Default: on, every
   * conflict rejected.
   */
  readonly sync?: Omit<SyncOptions, "stores"> | false;
  /** Largest request body in bytes (default: 4 × the value limit, at least 1 MiB). */
  readonly maxBodySize?: number;
  /** Largest page of list/paginate (default 1000). */
  readonly maxPageSize?: number;
  /** Keys one watch may name (default 100). */
  readonly maxWatchKeys?: number;
  /** Watch and event streams and long polls open at once across the server (default 10,000). */
  readonly maxStreams?: number;
  /** Milliseconds between SSE keep-alive comments and event progress messages (default 15000). */
  readonly pingInterval?: number;
  /**
   * Bytes an event stream may hold unsent for a slow client before it is closed, to resume from
   * its last event id (default 1 MiB).
   */
  readonly maxEventBuffer?: number;
  /**
   * Let remote clients' clocks decide expiry and timestamps (default false: the server's clock
   * does). Only for tests that move time by hand.
   */
  readonly trustClientClock?: boolean;
  /**
   * Origins whose pages may call the API from a browser (`"*"` for any); answers their CORS
   * preflights. Default: none, so only same-origin pages and non-browser clients get through.
   */
  readonly cors?: readonly string[];
  /** Where one line per request goes (a pino logger; see `requests.ts`). Default: none. */
  readonly logger?: Logger;
  /** Log each request's path, which holds its key (default false). */
  readonly logKeys?: boolean;
  /**
   * Serve the database's metrics at `GET /metrics` (Prometheus text) and `GET /api/metrics`
   * (JSON), with the server's HTTP request metrics: installs `withMetrics` on the database when
   * it has no metrics layer yet. Default true.
   */
  readonly metrics?: boolean;
  /**
   * The built admin UI (`dist/ui/`, which `npm run build` makes), served at `/`: its folder, or
   * `false` to serve none. Default: the package's own `dist/ui/`; without it, `/` answers a page
   * saying how to build it.
   */
  readonly ui?: string | false;
}

/** The request headers Cellar's clients send, which a preflight must allow. */
const CORS_HEADERS = ["Authorization", "Content-Type", "Last-Event-ID", "X-Cellar-Namespace"];

export interface CellarApp {
  readonly app: OpenAPIHono<ServerEnv>;
  /**
   * The hottest reads answered from node's request in front of `app` (see `fast-path.ts`);
   * `startServer` puts it on HTTP/1.1 connections.
   */
  readonly fastPath: FastPath;
  /** Ends every open stream (watch, SSE, WebSocket), as shutdown does. */
  readonly endStreams: () => void;
  /** What the WebSocket form of `GET /api/events` needs, which `startServer` serves on upgrades. */
  readonly eventSockets: EventSocketOptions;
  /** The other WebSocket routes (workspace sync), which `startServer` serves beside it. */
  readonly upgradeRoutes: readonly UpgradeRoute[];
  /**
   * Writes and closes what the app keeps open (workspace documents). Call it after the last
   * request and before closing the database.
   */
  readonly close: () => Promise<void>;
}

/**
 * @example
 * const { app } = createApp(await openKv());
 * const res = await app.request("/api/keys/greeting", { method: "PUT", body: JSON.stringify({ value: "hi" }) });
 */
export function createApp(kv: Kv, options: AppOptions = {}): CellarApp {
  const { core } = coreOf(kv);
  const streams = new StreamRegistry(options.maxStreams ?? 10_000);
  const pingInterval = options.pingInterval ?? 15_000;
  const broadcaster = new Broadcaster();
  const app = new OpenAPIHono<ServerEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const issues = result.error.issues
        .map((i) => `${i.path.join(".") || "body"}: ${i.message}`)
        .join("; ");
      return c.json(errorBody("INVALID_REQUEST", issues), 400);
    },
  });

  app.onError(onError);
  if (options.metrics !== false) withMetrics(kv);
  const registry = metricsRegistry(kv);
  const requests = new RequestObserver({
    ...(options.logger && { logger: options.logger }),
    logKeys: options.logKeys === true,
    ...(registry && options.metrics !== false && { registry }),
    openStreams: () => streams.size,
  });
  app.use("*", observeRequests(requests));
  const corsOrigins = options.cors ?? [];
  if (corsOrigins.length > 0) {
    app.use(
      "*",
      cors({
        origin: corsOrigins.includes("*") ? "*" : [...corsOrigins],
        allowMethods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        allowHeaders: CORS_HEADERS,
        maxAge: 600,
      }),
    );
  }
  let methodsOf: ((path: string) => string[]) | undefined;
  app.notFound((c) => {
    methodsOf ??= routeMethods(app);
    const allowed = methodsOf(c.req.path);
    if (allowed.length === 0 || allowed.includes(c.req.method)) {
      return c.json(errorBody("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`), 404);
    }
    c.header("Allow", allowed.join(", "));
    return c.json(
      errorBody(
        "METHOD_NOT_ALLOWED",
        `${c.req.path} does not take ${c.req.method}; it takes ${allowed.join(", ")}`,
      ),
      405,
    );
  });

  app.route("/", healthRoutes(kv));
  docsRoutes(app);

  const maxBody = options.maxBodySize ?? Math.max(1024 * 1024, 4 * core.limits.maxValueSize);
  const limitBody = bodyLimit({
    maxSize: maxBody,
    onError: () => {
      throw new KvError("PAYLOAD_TOO_LARGE", `the request body is larger than ${maxBody} bytes`);
    },
  });
  // Touching `body` makes the Node adapter build a full web Request, which costs more than the
  // rest of a small request: bodiless requests skip the check, and a declared Content-Length is
  // checked from the header; only streamed bodies go through the counting middleware.
  const checkBody: MiddlewareHandler<ServerEnv> = (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD") return next();
    const declared = c.req.header("content-length");
    const streamed = c.req.header("transfer-encoding") !== undefined;
    const type = c.req.header("content-type");
    if ((streamed || (declared !== undefined && declared !== "0")) && !JSON_TYPE.test(type ?? "")) {
      throw new KvError(
        "UNSUPPORTED_MEDIA_TYPE",
        `send the body as JSON with content-type: application/json, got ${type === undefined ? "no content type" : JSON.stringify(type)}`,
      );
    }
    if (declared === undefined || streamed) return limitBody(c, next);
    if (Number(declared) > maxBody) {
      throw new KvError("PAYLOAD_TOO_LARGE", `the request body is larger than ${maxBody} bytes`);
    }
    return next();
  };
  app.use("/api/*", checkBody);
  app.use("/workspaces/*", checkBody);
  const auth = createAuthenticator(kv, options);
  app.use(
    "/api/*",
    authenticate(auth, {
      acrossNamespaces: new Set([...DISCOVERY_ACROSS_NAMESPACES, SESSION_ROUTE]),
    }),
  );
  app.use("/workspaces/*", authenticate(auth, { pathNamespace: workspacePathNamespace }));
  if (registry && options.metrics !== false) metricsRoutes(app, registry, auth);

  // Before the single-key routes, whose GET /api/keys/{key} would take /api/keys/count.
  seedCompatRoutes(app);
  keysRoutes(app);
  listRoutes(app, { maxPageSize: options.maxPageSize ?? 1000 });
  indexRoutes(app);
  discoveryRoutes(app);
  backupRoutes(app);
  sessionRoutes(app);
  atomicRoutes(app);
  queueRoutes(app, streams, pingInterval);
  const events = {
    broadcaster,
    streams,
    pingInterval,
    maxBuffered: options.maxEventBuffer ?? 1024 * 1024,
  };
  eventRoutes(app, events);
  watchRoutes(
    app,
    {
      maxWatchKeys: options.maxWatchKeys ?? 100,
      maxStreams: options.maxStreams ?? 10_000,
      pingInterval,
    },
    streams,
    { broadcaster, maxBuffered: options.maxEventBuffer ?? 1024 * 1024 },
  );
  const otherNamespaces = (options.namespaceFrom ?? "token") === "token";
  const calls = driverCalls(core, {
    otherNamespaces,
    trustClientClock: options.trustClientClock === true,
    socket: { path: DRIVER_SOCKET_PATH, maxFrame: maxBody },
  });
  app.route("/", driverRoutes(core, calls, { otherNamespaces, streams, pingInterval }));
  app.route(
    KV_CONNECT_MOUNT,
    kvConnectRoutes(kv, {
      tokens: options.tokens,
      namespaceFrom: options.namespaceFrom,
      streams,
      pingInterval,
      maxBodySize: maxBody,
      maxWatchKeys: options.maxWatchKeys ?? 100,
    }),
  );
  const given = options.workspaces;
  const workspaces = isWorkspaceList(given) ? given : [];
  typedRoutes(app, kv, { ...options, workspaces: isWorkspaceList(given) ? undefined : given });
  const rooms = new Rooms(kv, workspaces, {
    idleMs: options.workspaceIdleMs,
    mirrorDir: options.workspaceMirror,
  });
  if (workspaces.length > 0) workspaceRoutes(app, rooms);
  if (options.ui !== false) uiRoutes(app, options.ui ?? defaultUiDir());

  // The fast path answers before Hono's middleware runs, so with CORS on every request goes
  // through Hono, where the CORS headers are added.
  const fastPath: FastPath = corsOrigins.length > 0 ? () => false : createFastPath(auth, requests);
  return {
    app,
    fastPath,
    endStreams: () => streams.endAll(),
    eventSockets: { ...events, authenticate: auth, cors: corsOrigins },
    upgradeRoutes: [
      driverSocketRoute({
        calls,
        authenticate: auth,
        cors: corsOrigins,
        streams,
        maxPayload: maxBody,
        maxBuffered: Math.max(options.maxEventBuffer ?? 1024 * 1024, 16 * 1024 * 1024),
        observer: requests,
      }),
      ...(options.sync === false
        ? []
        : [
            syncRoute({
              ...options.sync,
              ...(options.stores && { stores: options.stores }),
              ...(registry && options.metrics !== false && { registry }),
              authenticate: auth,
              cors: corsOrigins,
              streams,
              maxPayload: maxBody,
              maxBuffered: Math.max(options.maxEventBuffer ?? 1024 * 1024, 16 * 1024 * 1024),
            }),
          ]),
      ...(workspaces.length === 0
        ? []
        : [
            syncSockets({
              rooms,
              authenticate: auth,
              cors: corsOrigins,
              streams,
              maxPayload: maxBody,
              maxBuffered: Math.max(options.maxEventBuffer ?? 1024 * 1024, 16 * 1024 * 1024),
            }),
          ]),
    ],
    close: () => rooms.close(),
  };
}

function isWorkspaceList(
  workspaces: AppOptions["workspaces"],
): workspaces is readonly AnyWorkspace[] {
  return Array.isArray(workspaces);
}

/** `/workspaces/{id}/…` works in namespace `workspace-{id}`. */
function workspacePathNamespace(path: string): string | undefined {
  const id = /^\/workspaces\/([^/]+)/.exec(path)?.[1];
  if (id === undefined) return undefined;
  try {
    return workspaceNamespace(decodeURIComponent(id));
  } catch {
    return undefined;
  }
}

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;

/** The methods some route of `app` answers at a path, for a 405 and its Allow header. */
function routeMethods(app: OpenAPIHono<ServerEnv>): (path: string) => string[] {
  const router = new TrieRouter<string>();
  for (const route of app.routes) {
    // A trailing `*` matches an empty rest too, where the handler answers 404: require one.
    const path = route.path.replace(/\/\*$/, "/:rest{.+}");
    if (route.method !== "ALL") router.add(route.method, path, route.method);
  }
  return (path) => METHODS.filter((method) => router.match(method, path)[0].length > 0);
}
