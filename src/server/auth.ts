/**
 * Bearer tokens scoped to namespaces and to an access level, and the rule that gives every
 * request exactly one namespace. A request never reads or writes outside it.
 */

import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import { assertNamespaceName } from "../core/keyspace.js";
import type { Kv } from "../core/kv.js";
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

const tokensFile = z.object({
  tokens: z
    .array(
      z.object({
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
  return parsed.data.tokens;
}

function findGrant(tokens: readonly TokenGrant[], presented: string): TokenGrant | null {
  const given = Buffer.from(presented);
  for (const grant of tokens) {
    const expected = Buffer.from(grant.token);
    if (expected.length === given.length && timingSafeEqual(expected, given)) return grant;
  }
  return null;
}

function requestedNamespace(
  source: NamespaceSource,
  header: string | undefined,
  host: string | undefined,
  grant: TokenGrant | null,
): string {
  if (source === "host") {
    const name = (host ?? "").replace(/:\d+$/, "").toLowerCase();
    if (name === "")
      throw new KvError("INVALID_REQUEST", "the Host header is required to choose a namespace");
    return name;
  }
  if (header !== undefined) return header;
  if (source === "token" && grant && grant.namespaces.length === 1 && grant.namespaces[0] !== "*") {
    return grant.namespaces[0]!;
  }
  return "";
}

/** Authenticates the request and sets `scope` and `kv` (the request's namespace view). */
export function authenticate(root: Kv, options: AuthOptions): MiddlewareHandler<ServerEnv> {
  const tokens = options.tokens ?? [];
  const source = options.namespaceFrom ?? "token";
  const views = new Map<string, Kv>();
  const viewOf = (namespace: string): Kv => {
    let view = views.get(namespace);
    if (!view) {
      view = namespace === "" ? root : root.namespace(namespace);
      if (views.size < 10_000) views.set(namespace, view);
    }
    return view;
  };
  return async function auth(c, next) {
    let grant: TokenGrant | null = null;
    if (tokens.length > 0) {
      const header = c.req.header("authorization") ?? "";
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      const presented = match?.[1] ?? c.req.query("token");
      if (!presented)
        throw new KvError(
          "UNAUTHORIZED",
          "a bearer token is required (Authorization: Bearer <token>)",
        );
      grant = findGrant(tokens, presented);
      if (!grant) throw new KvError("UNAUTHORIZED", "the bearer token is not valid");
    }
    const namespace = requestedNamespace(
      source,
      c.req.header(NAMESPACE_HEADER),
      c.req.header("host"),
      grant,
    );
    if (namespace !== "") assertNamespaceName(namespace);
    const allows = (ns: string) =>
      grant === null || grant.namespaces.includes("*") || grant.namespaces.includes(ns);
    if (!allows(namespace)) {
      throw new KvError(
        "FORBIDDEN",
        `this token may not use namespace ${JSON.stringify(namespace)}`,
      );
    }
    c.set("scope", { namespace, access: grant?.access ?? "admin", grant, allows });
    c.set("kv", viewOf(namespace));
    await next();
  };
}

/** Refuses the request unless its token has at least `access`. */
export function requireAccess(c: { get(key: "scope"): RequestScope }, access: Access): void {
  const scope = c.get("scope");
  if (RANK[scope.access] < RANK[access]) {
    throw new KvError(
      "FORBIDDEN",
      `this token has ${scope.access} access; the request needs ${access}`,
    );
  }
}
