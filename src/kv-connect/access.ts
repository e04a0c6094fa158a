/**
 * Who a KV Connect request is and which namespace it may open. The bearer token is one of the
 * server's tokens (see `server/auth.ts`); without a tokens file every request is an admin and
 * any token is accepted (Deno's client always sends one). The metadata exchange hands the same
 * token back for the data path, so each data-path request is authenticated the same way.
 */
import type { Context } from "hono";
import { assertNamespaceName } from "../core/surface.js";
import { KvError } from "../errors.js";
import {
  type Access,
  assertAccess as assertScope,
  bearerToken,
  hostNamespace,
  NAMESPACE_HEADER,
  type NamespaceSource,
  type TokenGrant,
} from "../http/auth.js";

export interface ConnectCaller {
  /** The token as presented, handed back by the metadata exchange. */
  readonly token: string;
  /** `null` when the server has no tokens file. */
  readonly grant: TokenGrant | null;
}

export interface AccessOptions {
  readonly tokens: readonly TokenGrant[];
  /** `grantFinder(tokens)`, built once. */
  readonly findGrant: (presented: string) => TokenGrant | null;
  readonly namespaceFrom: NamespaceSource;
}

/** Authenticates the request; throws `UNAUTHORIZED` when a tokens file is in force and the token is not in it. */
export function callerOf(c: Context, options: AccessOptions): ConnectCaller {
  const token = bearerToken(c.req.header("authorization"));
  if (options.tokens.length === 0) return { token: token ?? "", grant: null };
  if (!token)
    throw new KvError("UNAUTHORIZED", "a bearer token is required (Authorization: Bearer <token>)");
  const grant = options.findGrant(token);
  if (!grant) throw new KvError("UNAUTHORIZED", "the bearer token is not valid");
  return { token, grant };
}

function hostOf(c: Context): string {
  return hostNamespace(c.req.header("host") ?? new URL(c.req.url).host);
}

/**
 * The namespace `…/kv` opens: the one the server's `--namespace-from` rule gives the request
 * (for `token`: the token's only namespace, else the default one).
 */
export function defaultNamespace(
  c: Context,
  caller: ConnectCaller,
  options: AccessOptions,
): string {
  if (options.namespaceFrom === "host") return hostOf(c);
  const header = c.req.header(NAMESPACE_HEADER);
  if (header !== undefined) return header;
  const only = caller.grant?.namespaces.length === 1 ? caller.grant.namespaces[0] : undefined;
  return options.namespaceFrom === "token" && only !== undefined && only !== "*" ? only : "";
}

/**
 * Refuses a namespace the caller may not open (`FORBIDDEN`), or one the request may not name:
 * with `--namespace-from host` the host name is the only namespace a request can use.
 */
export function assertMayOpen(
  c: Context,
  caller: ConnectCaller,
  namespace: string,
  options: AccessOptions,
): void {
  if (namespace !== "") assertNamespaceName(namespace);
  if (options.namespaceFrom === "host" && namespace !== hostOf(c)) {
    throw new KvError(
      "FORBIDDEN",
      `this server chooses the namespace from the host name: ${JSON.stringify(hostOf(c))}`,
    );
  }
  const grant = caller.grant;
  if (grant && !grant.namespaces.includes("*") && !grant.namespaces.includes(namespace)) {
    throw new KvError("FORBIDDEN", `this token may not use namespace ${JSON.stringify(namespace)}`);
  }
}

/** Refuses the request unless the caller's token has at least `access`. */
export function assertAccess(caller: ConnectCaller, access: Access): void {
  assertScope({ access: caller.grant?.access ?? "admin" }, access);
}
