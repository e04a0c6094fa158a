/**
 * The hottest route answered straight from node's request, in front of Hono. Hono over the Node
 * adapter builds a URL, a Headers object and a Response for each request, which costs more than
 * reading a key; `GET /api/keys/{key}` needs none of them. The fast path takes only requests
 * whose answer cannot differ from Hono's (a plain GET whose target the adapter would keep as it
 * is) and runs the same authenticator, key decoding and JSON encoding; everything else falls
 * through to Hono. Its requests are logged and counted as Hono's are (see `requests.ts`), under
 * the same route.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { type Authenticator, type Credentials, NAMESPACE_HEADER } from "../http/auth.js";
import { errorResponse } from "../http/errors.js";
import { REQUEST_ID_HEADER, type RequestObserver } from "./requests.js";
import { KEYS_ROUTE, READ_PARAMS, readKey } from "./routes/keys.js";
import { SEED_KEY_ROUTES } from "./routes/seed-compat.js";

/** Answers `req` and returns true, or returns false and leaves it to the next listener. */
export type FastPath = (req: IncomingMessage, res: ServerResponse) => boolean;

// The Node adapter keeps a request target as it is when it is made of these characters, has no
// dot segment and its Host header matches VALID_HOST; otherwise it normalizes the target
// through `URL` or refuses the request. `URL` keeps a percent sign as it is too, except in an
// encoded dot segment; a `#` is left to Hono.
const VERBATIM_TARGET = /^\/[!$%&-;=?-[\]_a-z~]*$/;
const DOT_SEGMENT = /\/(?:\.|%2e){1,2}(?:[/?]|$)/i;
const VALID_HOST = /^[a-z0-9._-]+(?::(?:[1-5]\d{3,4}|[6-9]\d{3}))?$/;
// A query Hono would read without decoding anything.
const PLAIN_QUERY = /^[^%+]*$/;

const JSON_TYPE = "application/json";
/** The route's pattern, as Hono's requests of the same route are logged. */
const ROUTE = "/api/keys/{key}";

/**
 * @example
 * const fast = createFastPath(auth, new RequestObserver({}));
 * createServer((req, res) => fast(req, res) || honoListener(req, res));
 */
export function createFastPath(auth: Authenticator, requests: RequestObserver): FastPath {
  return (req, res) => {
    const target = req.url ?? "";
    const host = req.headers.host;
    if (
      req.method !== "GET" ||
      !target.startsWith(KEYS_ROUTE) ||
      target.length === KEYS_ROUTE.length ||
      host === undefined ||
      !VALID_HOST.test(host) ||
      !VERBATIM_TARGET.test(target) ||
      DOT_SEGMENT.test(target) ||
      repeatsCredentials(req.rawHeaders)
    ) {
      return false;
    }
    const q = target.indexOf("?");
    const query = q < 0 ? null : target.slice(q + 1);
    if (query !== null && (!PLAIN_QUERY.test(query) || !onlyKnownParams(query))) return false;
    const path = q < 0 ? target : target.slice(0, q);
    if (SEED_KEY_ROUTES.has(path)) return false;
    const request = requests.begin(req.headers[REQUEST_ID_HEADER]);
    res.setHeader("X-Request-Id", request.requestId);
    let token: string | undefined;
    const end = (status: number) =>
      requests.end(request, { method: "GET", route: ROUTE, path, status, token });
    let entry: Promise<unknown>;
    try {
      const metadata = query === null ? undefined : queryParam(query, "metadata");
      const authenticated = auth(new NodeCredentials(req.headers, host, query));
      token = authenticated.scope.grant?.name;
      entry = requests.within(request, () => readKey(authenticated, target, metadata));
    } catch (error) {
      end(sendError(res, error));
      return true;
    }
    entry.then(
      (body) => end(sendEntry(res, body)),
      (error) => end(sendError(res, error)),
    );
    return true;
  };
}

/** The credentials of a node request; the query is searched for a token only when asked. */
class NodeCredentials implements Credentials {
  readonly authorization: string | undefined;
  readonly namespace: string | undefined;
  readonly host: string;
  readonly #query: string | null;

  constructor(headers: IncomingHttpHeaders, host: string, query: string | null) {
    this.authorization = headers.authorization;
    this.namespace = headers[NAMESPACE_HEADER] as string | undefined;
    this.host = host;
    this.#query = query;
  }

  queryToken(): string | undefined {
    return this.#query === null ? undefined : queryParam(this.#query, "token");
  }
}

/** Sends the entry; returns the status sent. */
function sendEntry(res: ServerResponse, body: unknown): number {
  let text: string;
  try {
    text = JSON.stringify(body);
  } catch (error) {
    return sendError(res, error);
  }
  send(res, 200, text);
  return 200;
}

/**
 * Whether Authorization or Host comes more than once: node keeps the first, Hono joins them
 * (and then refuses the request).
 */
function repeatsCredentials(raw: readonly string[]): boolean {
  let authorization = 0;
  let host = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === "host") host++;
    else if (name.length === 13 && name.toLowerCase() === "authorization") authorization++;
  }
  return authorization > 1 || host > 1;
}

function send(
  res: ServerResponse,
  status: number,
  text: string,
  headers?: Record<string, string>,
): void {
  res.writeHead(status, {
    ...headers,
    "Content-Type": JSON_TYPE,
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** Sends the error's answer; returns the status sent. */
function sendError(res: ServerResponse, error: unknown): number {
  const { status, body, headers } = errorResponse(error);
  send(res, status, JSON.stringify(body), headers);
  return status;
}

/** Whether a query names only what this route takes: anything else is Hono's to refuse. */
function onlyKnownParams(query: string): boolean {
  for (const part of query.split("&")) {
    const name = part.split("=", 1)[0]!;
    if (name !== "" && !READ_PARAMS.has(name)) return false;
  }
  return true;
}

/**
 * The first value of `name` in a query that needs no decoding, as Hono's `c.req.query(name)`
 * reads it: `""` for a bare name, `undefined` when absent.
 */
function queryParam(query: string, name: string): string | undefined {
  for (const part of query.split("&")) {
    const eq = part.indexOf("=");
    if ((eq < 0 ? part : part.slice(0, eq)) === name) return eq < 0 ? "" : part.slice(eq + 1);
  }
  return undefined;
}
