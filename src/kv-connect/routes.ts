/**
 * KV Connect over HTTP, so that `Deno.openKv("http://host:port/kv")` (and `@deno/kv`) use a
 * Cellar server. Each namespace is one KV Connect database:
 *
 * | route                                        | does                                       |
 * |----------------------------------------------|--------------------------------------------|
 * | `POST /kv`                                   | metadata exchange for the token's namespace |
 * | `POST /kv/{namespace}`                       | metadata exchange for a named namespace    |
 * | `POST /kv/data[/{namespace}]/snapshot_read`  | data path (protobuf)                       |
 * | `POST /kv/data[/{namespace}]/atomic_write`   | data path (protobuf)                       |
 * | `POST /kv/data[/{namespace}]/watch`          | data path (length-prefixed frames)         |
 *
 * Errors answer a 4xx (or 5xx) status with a plain-text message, as the protocol asks.
 */
import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { Kv } from "../core/kv.js";
import { coreOf, type KvCore } from "../core/surface.js";
import { bareMessage, KvError } from "../errors.js";
import {
  grantFinder,
  type NamespaceSource,
  type ServerEnv,
  type TokenGrant,
} from "../http/auth.js";
import { statusOf } from "../http/errors.js";
import type { StreamRegistry } from "../http/streams.js";
import {
  type AccessOptions,
  assertAccess,
  assertMayOpen,
  type ConnectCaller,
  callerOf,
  defaultNamespace,
} from "./access.js";
import { databaseMetadata, negotiateVersion } from "./metadata.js";
import { ConnectSpace } from "./namespace.js";
import {
  AtomicWriteOutputSchema,
  AtomicWriteSchema,
  SnapshotReadOutputSchema,
  SnapshotReadSchema,
  WatchSchema,
} from "./proto/datapath_pb.js";
import { snapshotRead } from "./read.js";
import { watchBody } from "./watch.js";
import { atomicWrite } from "./write.js";

export interface KvConnectOptions {
  readonly tokens?: readonly TokenGrant[];
  readonly namespaceFrom?: NamespaceSource;
  /** Ends with the server's other streams at shutdown. */
  readonly streams: StreamRegistry;
  /** Milliseconds between watch keep-alive frames. */
  readonly pingInterval: number;
  /** Largest request body in bytes. */
  readonly maxBodySize: number;
  /** Keys one watch may name. */
  readonly maxWatchKeys: number;
}

/** Where the server mounts KV Connect; the metadata exchange advertises paths under it. */
export const KV_CONNECT_MOUNT = "/kv";
const MOUNT = KV_CONNECT_MOUNT;
const DATA = "data";
const PROTOBUF = { "content-type": "application/x-protobuf" };

function textError(error: Error, c: Context): Response {
  if (error instanceof KvError) return c.text(bareMessage(error), statusOf(error.code));
  if (error instanceof HTTPException && error.status < 500)
    return c.text(error.message || "bad request", error.status);
  console.error(error);
  return c.text("internal error", 500);
}

function protobuf<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Response {
  return new Response(toBinary(schema, message), { headers: PROTOBUF });
}

async function decodeBody<Desc extends DescMessage>(
  c: Context,
  schema: Desc,
): Promise<MessageShape<Desc>> {
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  try {
    return fromBinary(schema, bytes);
  } catch (error) {
    throw new KvError(
      "INVALID_REQUEST",
      `the body is not a ${schema.typeName} message: ${(error as Error).message}`,
    );
  }
}

/** The data path of a namespace, as the metadata exchange advertises it. */
function endpointPath(namespace: string): string {
  return namespace === ""
    ? `${MOUNT}/${DATA}`
    : `${MOUNT}/${DATA}/${encodeURIComponent(namespace)}`;
}

/**
 * Checks a data-path request: a valid token that may open the namespace, a protocol version
 * this server speaks, and the database id the metadata exchange gave for that namespace.
 */
function dataPathScope(
  c: Context,
  core: KvCore,
  access: AccessOptions,
): { caller: ConnectCaller; space: ConnectSpace } {
  const caller = callerOf(c, access);
  const namespace = c.req.param("namespace") ?? "";
  assertMayOpen(c, caller, namespace, access);
  const version = c.req.header("x-denokv-version");
  if (version !== undefined && version !== "2" && version !== "3") {
    throw new KvError(
      "INVALID_REQUEST",
      `protocol version ${version} is not served here; this server speaks 1, 2 and 3`,
    );
  }
  const space = new ConnectSpace(namespace, core.limits);
  const id = c.req.header("x-denokv-database-id") ?? c.req.header("x-transaction-domain-id");
  if (id !== space.databaseId) {
    throw new KvError(
      "INVALID_REQUEST",
      `this endpoint serves database ${space.databaseId}, not ${id ?? "(none given)"}`,
    );
  }
  return { caller, space };
}

/** The KV Connect routes, as a sub-app the server mounts at {@link KV_CONNECT_MOUNT}. */
export function kvConnectRoutes(kv: Kv, options: KvConnectOptions): Hono<ServerEnv> {
  const { core } = coreOf(kv);
  const tokens = options.tokens ?? [];
  const access: AccessOptions = {
    tokens,
    findGrant: grantFinder(tokens),
    namespaceFrom: options.namespaceFrom ?? "token",
  };
  const connect = new Hono<ServerEnv>();
  connect.onError(textError);
  connect.use(
    "*",
    bodyLimit({
      maxSize: options.maxBodySize,
      onError: () => {
        throw new KvError(
          "PAYLOAD_TOO_LARGE",
          `the request body is larger than ${options.maxBodySize} bytes`,
        );
      },
    }),
  );

  const metadata = async (c: Context, named: string | undefined) => {
    const caller = callerOf(c, access);
    const version = negotiateVersion(await c.req.text());
    const namespace = named ?? defaultNamespace(c, caller, access);
    assertMayOpen(c, caller, namespace, access);
    const body = databaseMetadata({
      version,
      databaseId: new ConnectSpace(namespace, core.limits).databaseId,
      endpointPath: endpointPath(namespace),
      requestUrl: c.req.url,
      token: caller.token,
      now: Date.now(),
    });
    return new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } });
  };
  connect.post("/", (c) => metadata(c, undefined));
  connect.post("/:namespace", (c) => metadata(c, c.req.param("namespace")));

  for (const path of [`/${DATA}`, `/${DATA}/:namespace`]) {
    connect.post(`${path}/snapshot_read`, async (c) => {
      const { caller, space } = dataPathScope(c, core, access);
      assertAccess(caller, "read");
      core.assertOpen();
      return protobuf(
        SnapshotReadOutputSchema,
        await snapshotRead(core, space, await decodeBody(c, SnapshotReadSchema)),
      );
    });
    connect.post(`${path}/atomic_write`, async (c) => {
      const { caller, space } = dataPathScope(c, core, access);
      assertAccess(caller, "write");
      core.assertOpen();
      return protobuf(
        AtomicWriteOutputSchema,
        await atomicWrite(core, space, await decodeBody(c, AtomicWriteSchema)),
      );
    });
    connect.post(`${path}/watch`, async (c) => {
      const { caller, space } = dataPathScope(c, core, access);
      assertAccess(caller, "read");
      core.assertOpen();
      const request = await decodeBody(c, WatchSchema);
      let end = () => {};
      const release = options.streams.add(() => end());
      try {
        const watch = watchBody(core, space, request, {
          maxKeys: options.maxWatchKeys,
          pingInterval: options.pingInterval,
          onClose: release,
        });
        end = watch.end;
        return new Response(watch.body, {
          headers: { "content-type": "application/octet-stream" },
        });
      } catch (error) {
        release();
        throw error;
      }
    });
  }

  return connect;
}
