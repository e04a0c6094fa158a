/**
 * Who a KV Connect request is and which namespace it may open. The bearer token is one of the
 * server's tokens (see `server/auth.ts`); without a tokens file every request is an admin and
 * any token is accepted (Deno's client always sends one). The metadata exchange hands the same
 * token back for the data path, so each data-path request is authenticated the same way.
 */
import { timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { assertNamespaceName } from "../core/keyspace.js";
import { KvError } from "../errors.js";
import {
  type Access,
  NAMESPACE_HEADER,
  type NamespaceSource,
  type TokenGrant,
} from "../server/auth.js";

const RANK: Record<Access, number> = { read: 0, write: 1, admin: 2 };

export interface ConnectCaller {
  /** The token as presented, handed back by the metadata exchange. */
  readonly token: string;
  /** `null` when the server has no tokens file. */
  readonly grant: TokenGrant | null;
}

export interface AccessOptions {
  readonly tokens: readonly TokenGrant[];
  readonly namespaceFrom: NamespaceSource;
}

function bearerOf(c: Context): string | undefined {
  const match = /^Bearer\s+(\S*)$/i.exec(c.req.header("authorization") ?? "");
  return match?.[1];
}

function findGrant(tokens: readonly TokenGrant[], presented: string): TokenGrant | null {
  const given = Buffer.from(presented);
  for (const grant of tokens) {
    const expected = Buffer.from(grant.token);
    if (expected.length === given.length && timingSafeEqual(expected, given)) return grant;
  }
  return null;
}

/** Authenticates the request; throws `UNAUTHORIZED` when a tokens file is in force and the token is not in it. */
export function callerOf(c: Context, options: AccessOptions): ConnectCaller {
  const token = bearerOf(c);
  if (options.tokens.length === 0) return { token: token ?? "", grant: null };
  if (!token)
    throw new KvError("UNAUTHORIZED", "a bearer token is required (Authorization: Bearer <token>)");
  const grant = findGrant(options.tokens, token);
  if (!grant) throw new KvError("UNAUTHORIZED", "the bearer token is not valid");
  return { token, grant };
}

function hostNamespace(c: Context): string {
  const name = (c.req.header("host") ?? new URL(c.req.url).host).replace(/:\d+$/, "").toLowerCase();
  if (name === "")
    throw new KvError("INVALID_REQUEST", "the Host header is required to choose a namespace");
  return name;
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
  if (options.namespaceFrom === "host") return hostNamespace(c);
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
  if (options.namespaceFrom === "host" && namespace !== hostNamespace(c)) {
    throw new KvError(
      "FORBIDDEN",
      `this server chooses the namespace from the host name: ${JSON.stringify(hostNamespace(c))}`,
    );
  }
  const grant = caller.grant;
  if (grant && !grant.namespaces.includes("*") && !grant.namespaces.includes(namespace)) {
    throw new KvError("FORBIDDEN", `this token may not use namespace ${JSON.stringify(namespace)}`);
  }
}

/** Refuses the request unless the caller's token has at least `access`. */
export function assertAccess(caller: ConnectCaller, access: Access): void {
  const held = caller.grant?.access ?? "admin";
  if (RANK[held] < RANK[access]) {
    throw new KvError("FORBIDDEN", `this token has ${held} access; the request needs ${access}`);
  }
}
