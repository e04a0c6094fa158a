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
import { type ObservedRequest, REQUEST_ID_HEADER, type RequestObserver } from "./requests.js";
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
  // A server sees few distinct Host headers: each is checked once.
  const hosts = new Map<string, boolean>();
  const validHost = (host: string): boolean => {
    let valid = hosts.get(host);
    if (valid === undefined) {
      valid = VALID_HOST.test(host);
      if (hosts.size < MAX_HOSTS) hosts.set(host, valid);
    }
    return valid;
  };
  return (req, res) => {
    const target = req.url ?? "";
    const host = req.headers.host;
    if (
      req.method !== "GET" ||
      !target.startsWith(KEYS_ROUTE) ||
      target.length === KEYS_ROUTE.length ||
      host === undefined ||
      !validHost(host) ||
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
    const answer = new Answer(res, requests, requests.begin(req.headers[REQUEST_ID_HEADER]), path);
    let entry: Promise<unknown>;
    try {
      const metadata = query === null ? undefined : queryParam(query, "metadata");
      const authenticated = auth(new NodeCredentials(req.headers, host, query));
      answer.token = authenticated.scope.grant?.name;
      entry = requests.tracesOperations
        ? requests.within(answer.request, () => readKey(authenticated, target, metadata))
        : readKey(authenticated, target, metadata);
    } catch (error) {
      answer.error(error);
      return true;
    }
    entry.then(
      (body) => answer.entry(body),
      (error) => answer.error(error),
    );
    return true;
  };
}

/** Host headers remembered as checked. */
const MAX_HOSTS = 256;

/**
 * One request's response: sent with its headers as one array, which node writes without
 * building a header object, and then logged and counted.
 */
class Answer {
  token: string | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly requests: RequestObserver,
    readonly request: ObservedRequest,
    private readonly path: string,
  ) {}

  /** Sends the entry as JSON. */
  entry(body: unknown): void {
    let text: string;
    try {
      text = JSON.stringify(body);
    } catch (error) {
      this.error(error);
      return;
    }
    this.#send(200, text, null);
  }

  /** Sends the error's answer. */
  error(error: unknown): void {
    const { status, body, headers } = errorResponse(error);
    this.#send(status, JSON.stringify(body), headers ?? null);
  }

  #send(status: number, text: string, headers: Record<string, string> | null): void {
    const fields: string[] = ["X-Request-Id", this.request.requestId];
    if (headers) for (const name in headers) fields.push(name, headers[name]!);
    fields.push("Content-Type", JSON_TYPE, "Content-Length", String(Buffer.byteLength(text)));
    this.res.writeHead(status, fields);
    this.res.end(text);
    this.requests.end(this.request, {
      method: "GET",
      route: ROUTE,
      path: this.path,
      status,
      token: this.token,
    });
  }
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
