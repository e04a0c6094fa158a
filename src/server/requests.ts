/**
 * One log line and a few metrics per HTTP request, for requests Hono answers (a middleware) and
 * for those the fast path answers (it calls {@link RequestObserver.end} itself). Each request
 * gets an id: its `X-Request-Id` when that is a plausible one, else a new UUID, sent back in the
 * response's `X-Request-Id`. While operation lines are logged (`debug`), the request's handling
 * runs in a request context (see `observe/context.ts`), so those lines carry the id too.
 *
 * A line (`info`; a 5xx at `error`): `method`, `route` (the route's pattern, `{key}` for a key),
 * `status`, `durationMs` (to the response's start: for a stream, its opening), `requestId`,
 * `token` (the token's name in the tokens file, never the token), and `path` (without its query,
 * where `?token=` may sit) only with `logKeys`, since a path holds a key.
 */
import { randomUUID } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import type { RequestScope, ServerEnv } from "../http/auth.js";
import { runInRequest } from "../observe/context.js";
import { TallyCounter, TallyHistogram } from "../observe/tally.js";

export const REQUEST_ID_HEADER = "x-request-id";
/** An id a client may choose: printable ASCII without spaces, at most 128 characters. */
const PLAUSIBLE_ID = /^[\x21-\x7e]{1,128}$/;
/** The route of requests no route answers (404, 405), so they cannot grow the label set. */
const UNMATCHED = "unmatched";
/** Seconds: a key read answers in well under a millisecond, a long poll in up to a minute. */
const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
  30, 60,
];

/** A request under way. */
export interface ObservedRequest {
  readonly requestId: string;
  readonly started: number;
}

/** How a request ended. */
export interface RequestEnd {
  readonly method: string;
  readonly route: string;
  readonly path: string;
  readonly status: number;
  readonly token: string | undefined;
}

export interface RequestObserverOptions {
  /** Where request lines go; none: no lines. */
  readonly logger?: Logger;
  /** Log the request's path, which holds its key (default false). */
  readonly logKeys?: boolean;
  /** The registry that gets the HTTP metrics; none: no metrics. */
  readonly registry?: Registry;
  /** Streams the server holds open, for `cellar_http_open_streams`. */
  readonly openStreams?: () => number;
}

interface HttpMetrics {
  readonly requests: TallyCounter;
  readonly durations: TallyHistogram;
}

/** Two applications over one database share its registry, and so these metrics. */
const httpMetrics = new WeakMap<Registry, HttpMetrics>();

function httpMetricsOf(registry: Registry, openStreams?: () => number): HttpMetrics {
  let metrics = httpMetrics.get(registry);
  if (metrics) return metrics;
  metrics = {
    requests: new TallyCounter(registry, {
      name: "cellar_http_requests_total",
      help: "HTTP requests answered, by method, route and status",
      labelNames: ["method", "route", "status"],
    }),
    durations: new TallyHistogram(registry, {
      name: "cellar_http_request_duration_seconds",
      help: "Time from a request's arrival to its response's start (a stream's opening), by method and route",
      labelNames: ["method", "route"],
      buckets: DURATION_BUCKETS,
    }),
  };
  httpMetrics.set(registry, metrics);
  if (openStreams) {
    new Gauge({
      name: "cellar_http_open_streams",
      help: "Watch streams, long polls, queue listens and change feeds the server holds open",
      registers: [registry],
      collect() {
        this.set(openStreams());
      },
    });
  }
  return metrics;
}

export class RequestObserver {
  readonly #logger: Logger | undefined;
  readonly #logKeys: boolean;
  readonly #metrics: HttpMetrics | undefined;

  constructor(options: RequestObserverOptions) {
    this.#logger = options.logger;
    this.#logKeys = options.logKeys === true;
    if (options.registry) this.#metrics = httpMetricsOf(options.registry, options.openStreams);
  }

  /** Starts observing a request that came with `header` as its `X-Request-Id`. */
  begin(header: string | string[] | undefined): ObservedRequest {
    const requestId =
      typeof header === "string" && PLAUSIBLE_ID.test(header) ? header : randomUUID();
    return { requestId, started: performance.now() };
  }

  /** Whether operation lines are logged, so a request's handling runs in its context. */
  get tracesOperations(): boolean {
    return this.#logger?.isLevelEnabled("debug") === true;
  }

  /** Runs `fn` in the request's context while operation lines are logged; else just runs it. */
  within<T>(request: ObservedRequest, fn: () => T): T {
    return this.tracesOperations ? runInRequest({ requestId: request.requestId }, fn) : fn();
  }

  /** Logs and counts a request that ended. */
  end(request: ObservedRequest, end: RequestEnd): void {
    const durationMs = performance.now() - request.started;
    this.#metrics?.requests.inc([end.method, end.route, end.status]);
    this.#metrics?.durations.observe([end.method, end.route], durationMs / 1000);
    const logger = this.#logger;
    const level = end.status >= 500 ? "error" : "info";
    if (!logger?.isLevelEnabled(level)) return;
    const line: Record<string, unknown> = {
      method: end.method,
      route: end.route,
      status: end.status,
      durationMs: Math.round(durationMs * 1000) / 1000,
      requestId: request.requestId,
    };
    if (end.token !== undefined) line.token = end.token;
    if (this.#logKeys) line.path = end.path;
    logger[level](line, "request");
  }
}

/**
 * The Hono middleware over `observer`, first of the application's: every request Hono answers,
 * errors included (Hono's error handler has answered by the time `next` resolves).
 */
export function observeRequests(observer: RequestObserver): MiddlewareHandler<ServerEnv> {
  return async function observeRequests(c, next) {
    const request = observer.begin(c.req.header(REQUEST_ID_HEADER));
    c.header("X-Request-Id", request.requestId);
    await observer.within(request, next);
    // A handler that returned its own Response did not get the header set above.
    if (!c.res.headers.has(REQUEST_ID_HEADER)) c.header("X-Request-Id", request.requestId);
    const scope = c.get("scope") as RequestScope | undefined;
    observer.end(request, {
      method: c.req.method,
      route: routeOf(c),
      path: c.req.path,
      status: c.res.status,
      token: scope?.grant?.name,
    });
  };
}

/**
 * The pattern of the route that answered, as the OpenAPI document writes it
 * (`/api/keys/{key}`): the handler Hono ran last, or for a request a middleware refused (a 401),
 * the first route after it that would have answered.
 */
function routeOf(c: Context): string {
  const routes = matchedRoutes(c);
  for (let i = c.req.routeIndex; i < routes.length; i++) {
    const route = routes[i]!;
    if (route.method !== "ALL") return openApiPath(route.path);
  }
  return UNMATCHED;
}

/**
 * `/api/keys/:key{.+}` → `/api/keys/{key}`; a handler's trailing `*` (the single-key read, which
 * takes the rest of the path) is its key too.
 */
export function openApiPath(path: string): string {
  return path.replace(/:(\w+)(?:\{(?:[^{}]|\{[^{}]*\})*\})?/g, "{$1}").replace(/\/\*$/, "/{key}");
}
