/**
 * Bearer tokens scoped to namespaces and to an access level, and the rule that gives every
 * request exactly one namespace. A request never reads or writes outside it.
 */

import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import type { Kv } from "../core/kv.js";
import { assertNamespaceName } from "../core/surface.js";
import { KvError } from "../errors.js";

export type Access = "read" | "write" | "admin";

export interface TokenGrant {
  readonly token: string;
  /** Namespaces the token may use; `"*"` for all, `""` for the default namespace. */
  readonly namespaces: readonly string[];
  readonly access: Access;
  /** A label for logs. */
  readonly name?: string;
}

/**
 * Where a request's namespace comes from:
 * - `"token"`: the token's only namespace, or the `X-Cellar-Namespace` header among several;
 * - `"header"`: the `X-Cellar-Namespace` header (default namespace when absent);
 * - `"host"`: the request's host name (`tenant-a.example.com` → namespace `tenant-a.example.com`).
 */
export type NamespaceSource = "token" | "header" | "host";

export interface AuthOptions {
  /** Without tokens every request is an admin; the server then refuses non-loopback hosts. */
  readonly tokens?: readonly TokenGrant[];
  readonly namespaceFrom?: NamespaceSource;
}

export interface RequestScope {
  readonly namespace: string;
  readonly access: Access;
  readonly grant: TokenGrant | null;
  /** The namespaces this request may name in a driver-level key (see the driver routes). */
  readonly allows: (namespace: string) => boolean;
}

export type ServerEnv = { Variables: { scope: RequestScope; kv: Kv } };

const RANK: Record<Access, number> = { read: 0, write: 1, admin: 2 };
export const NAMESPACE_HEADER = "x-cellar-namespace";

const tokensFile = z.strictObject({
  tokens: z
    .array(
      z.strictObject({
        token: z.string().min(16, "tokens must be at least 16 characters"),
        namespaces: z.array(z.string()).min(1),
        access: z.enum(["read", "write", "admin"]),
        name: z.string().optional(),
      }),
    )
    .min(1),
});

/**
 * Reads a tokens file:
 * `{ "tokens": [{ "token": "…", "namespaces": ["tenant-a"], "access": "write", "name": "api" }] }`.
 */
export function loadTokens(path: string): TokenGrant[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new KvError(
      "INVALID_ARGUMENT",
      `cannot read tokens file ${path}: ${(error as Error).message}`,
    );
  }
  const parsed = tokensFile.safeParse(json);
  if (!parsed.success) {
    throw new KvError(
      "INVALID_ARGUMENT",
      `tokens file ${path}: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
  for (const grant of parsed.data.tokens) {
    for (const ns of grant.namespaces) if (ns !== "*" && ns !== "") assertNamespaceName(ns);
  }
  assertDistinct(parsed.data.tokens, `tokens file ${path}`);
  return parsed.data.tokens;
}

/** Refuses a token listed twice: which grant would win is not something to leave to order. */
function assertDistinct(tokens: readonly TokenGrant[], where: string): void {
  const seen = new Map<string, number>();
  tokens.forEach((grant, i) => {
    const first = seen.get(grant.token);
    if (first !== undefined) {
      const name = (index: number) => tokens[index]?.name ?? `#${index + 1}`;
      throw new KvError(
        "INVALID_ARGUMENT",
        `${where}: token ${name(i)} is the same token as ${name(first)}; give each grant its own token`,
      );
    }
    seen.set(grant.token, i);
  });
}

/** What authentication reads from a request, whatever the framework that received it. */
export interface Credentials {
  readonly authorization: string | undefined;
  readonly namespace: string | undefined;
  readonly host: string | undefined;
  /** The `token` query parameter, read only when there is no bearer header. */
  readonly queryToken: () => string | undefined;
  /**
   * The route works across the token's namespaces (discovery): a token of several namespaces
   * needs not name one, and gets the view of its first.
   */
  readonly acrossNamespaces?: boolean;
}

/** A request's scope and the namespace view it reads and writes. */
export interface Authenticated {
  readonly scope: RequestScope;
  readonly kv: Kv;
}

/** Authenticates one request; throws `UNAUTHORIZED`, `FORBIDDEN` or `INVALID_REQUEST`. */
export type Authenticator = (credentials: Credentials) => Authenticated;

const allowsAll = () => true;

/**
 * Builds the one authenticator of a server, shared by the Hono middleware and the node fast
 * path. Token bytes and namespace views are prepared once; without tokens the result of each
 * namespace is cached, so an open server authenticates a request with a map lookup.
 *
 * @example
 * const auth = createAuthenticator(kv, { tokens });
 * const { scope, kv: view } = auth({
 *   authorization: `Bearer ${token}`,
 *   namespace: undefined,
 *   host: "localhost",
 *   queryToken: () => undefined,
 * });
 */
export function createAuthenticator(root: Kv, options: AuthOptions): Authenticator {
  const tokens = options.tokens ?? [];
  const findGrant = grantFinder(tokens);
  const source = options.namespaceFrom ?? "token";
  const open = new Map<string, Authenticated>();
  const views = new Map<string, Kv>();
  const viewOf = (namespace: string): Kv => {
    let view = views.get(namespace);
    if (!view) {
      view = namespace === "" ? root : root.namespace(namespace);
      if (views.size < 10_000) views.set(namespace, view);
    }
    return view;
  };
  // What each grant was allowed, by namespace: a token's requests share one scope per namespace.
  const granted = new Map<TokenGrant, Map<string, Authenticated>>();
  const withGrant = (grant: TokenGrant, namespace: string): Authenticated => {
    let known = granted.get(grant);
    if (!known) {
      known = new Map();
      granted.set(grant, known);
    }
    let authenticated = known.get(namespace);
    if (!authenticated) {
      authenticated = grantScope(grant, namespace);
      if (known.size < 10_000) known.set(namespace, authenticated);
    }
    return authenticated;
  };
  const grantScope = (grant: TokenGrant, namespace: string): Authenticated => {
    if (namespace !== "") assertNamespaceName(namespace);
    const allows = (ns: string) => grant.namespaces.includes("*") || grant.namespaces.includes(ns);
    if (!allows(namespace)) {
      throw new KvError(
        "FORBIDDEN",
        namespace === ""
          ? `this token may not use the default namespace; name one of ${grant.namespaces.map((ns) => JSON.stringify(ns)).join(", ")} with the ${NAMESPACE_HEADER} header (openKv: the namespace option)`
          : `this token may not use namespace ${JSON.stringify(namespace)}`,
      );
    }
    return { scope: { namespace, access: grant.access, grant, allows }, kv: viewOf(namespace) };
  };
  const withoutGrant = (namespace: string): Authenticated => {
    let known = open.get(namespace);
    if (!known) {
      if (namespace !== "") assertNamespaceName(namespace);
      const scope = { namespace, access: "admin", grant: null, allows: allowsAll } as const;
      known = { scope, kv: viewOf(namespace) };
      if (open.size < 10_000) open.set(namespace, known);
    }
    return known;
  };
  return (credentials) => {
    if (tokens.length === 0) {
      return withoutGrant(requestedNamespace(source, credentials, null));
    }
    const presented = bearerToken(credentials.authorization) ?? credentials.queryToken();
    if (!presented)
      throw new KvError(
        "UNAUTHORIZED",
        "a bearer token is required (Authorization: Bearer <token>)",
      );
    const grant = findGrant(presented);
    if (!grant) throw new KvError("UNAUTHORIZED", "the bearer token is not valid");
    const namespace = requestedNamespace(source, credentials, grant);
    const first = grant.namespaces[0];
    const across =
      credentials.acrossNamespaces === true &&
      credentials.namespace === undefined &&
      namespace === "" &&
      first !== undefined &&
      !grant.namespaces.includes("*") &&
      !grant.namespaces.includes("");
    return withGrant(grant, across ? first : namespace);
  };
}

/** The token of an `Authorization: Bearer <token>` header, if that is what it holds. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(authorization ?? "")?.[1];
}

/** Looks a presented token up among `tokens`, in time independent of where they differ. */
export function grantFinder(
  tokens: readonly TokenGrant[],
): (presented: string) => TokenGrant | null {
  assertDistinct(tokens, "tokens");
  const grants = tokens.map((grant) => ({ grant, bytes: Buffer.from(grant.token) }));
  return (presented) => {
    const given = Buffer.from(presented);
    for (const { grant, bytes } of grants) {
      if (bytes.length === given.length && timingSafeEqual(bytes, given)) return grant;
    }
    return null;
  };
}

// A DNS name or an IPv4 address, or an IPv6 literal in brackets, with an optional port.
const HOST = /^(?:[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;

/**
 * The namespace a Host header names: the host name without its port, in lower case. Refuses a
 * missing header and anything that is not one host name (two Host headers arrive joined by a
 * comma).
 */
export function hostNamespace(host: string | undefined): string {
  if (host === undefined || host === "")
    throw new KvError("INVALID_REQUEST", "the Host header is required to choose a namespace");
  const name = host.toLowerCase();
  if (!HOST.test(name))
    throw new KvError(
      "INVALID_REQUEST",
      `the Host header ${JSON.stringify(host)} is not one host name`,
    );
  return name.replace(/:\d+$/, "");
}

function requestedNamespace(
  source: NamespaceSource,
  { namespace, host }: Credentials,
  grant: TokenGrant | null,
): string {
  if (source === "host") return hostNamespace(host);
  if (namespace !== undefined) return namespace;
  if (source === "token" && grant && grant.namespaces.length === 1 && grant.namespaces[0] !== "*") {
    return grant.namespaces[0]!;
  }
  return "";
}

/**
 * The Hono middleware over `auth`: sets `scope` and `kv` (the request's namespace view).
 * `acrossNamespaces` names the routes that work across the token's namespaces (see
 * {@link Credentials.acrossNamespaces}); `pathNamespace` reads the namespace from routes whose
 * path names one (`/workspaces/{id}/…` is namespace `workspace-{id}`).
 */
export function authenticate(
  auth: Authenticator,
  options: {
    acrossNamespaces?: ReadonlySet<string>;
    /** The namespace a request's path names, taken when it has no `X-Cellar-Namespace` header. */
    pathNamespace?: (path: string) => string | undefined;
  } = {},
): MiddlewareHandler<ServerEnv> {
  return async function authenticate(c, next) {
    const { scope, kv } = auth({
      authorization: c.req.header("authorization"),
      namespace: c.req.header(NAMESPACE_HEADER) ?? options.pathNamespace?.(c.req.path),
      host: c.req.header("host"),
      queryToken: () => c.req.query("token"),
      acrossNamespaces: options.acrossNamespaces?.has(c.req.path) === true,
    });
    c.set("scope", scope);
    c.set("kv", kv);
    await next();
  };
}

/** Refuses the request unless its token has at least `access`. */
export function requireAccess(c: { get(key: "scope"): RequestScope }, access: Access): void {
  assertAccess(c.get("scope"), access);
}

/** Throws `FORBIDDEN` unless `scope` has at least `access`. */
export function assertAccess(scope: { readonly access: Access }, access: Access): void {
  if (RANK[scope.access] < RANK[access]) {
    throw new KvError(
      "FORBIDDEN",
      `this token has ${scope.access} access; the request needs ${access}`,
    );
  }
}
