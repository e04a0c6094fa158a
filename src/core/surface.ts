/**
 * The core's internal surface: what faces (the HTTP server, KV Connect, the CLI) and extensions
 * (typed stores, and those to come) use beyond the public `Kv` API. Nothing here reaches a
 * driver: every write goes through the one commit pipeline (`KvCore.commit`), every read through
 * the one scoped read path (`KvCore.read`, `count`, `history`), each checked against a
 * {@link Scope} — the view's own namespace, or the namespaces a caller may use.
 *
 * A face's job is to parse its wire format into stored keys and encoded values and hand them
 * here; limits, namespaces, history and the clock are decided in the core, once.
 *
 * @example
 * const { core, keyspace } = coreOf(kv);
 * await core.commit({ checks: [], mutations: [{ type: "delete", key: keyspace.encode(["a"]) }] }, keyspace);
 */
import type { Database } from "./database.js";
import { Keyspace } from "./keyspace.js";
import { Kv, viewOf } from "./kv.js";
import type { WatchHub } from "./watch.js";

export {
  assertCounts,
  assertKeySize,
  assertReadKeySize,
  assertValueSize,
  MAX_BACKOFF_STEPS,
  MAX_DATE,
  MAX_DELAY,
  MAX_UNDELIVERED_KEYS,
  type WriteRequest,
} from "./commit.js";
export {
  countNamespace,
  listNamespaces,
  type NamespaceUsage,
  namespaceUsage,
} from "./discovery.js";
export { assertNamespaceName } from "./keyspace.js";
export { MAX_QUEUE_PAGE, type QueueHandle } from "./queue-handle.js";
export { NamespaceScope, namespaceOf, type Scope, WHOLE_DATABASE } from "./scope.js";
export { Keyspace };

/** The state one database's views share, as faces see it: see `database.ts` for each method. */
export type KvCore = Pick<
  Database,
  | "limits"
  | "now"
  | "assertOpen"
  | "closed"
  | "watch"
  | "events"
  | "commit"
  | "read"
  | "count"
  | "history"
  | "changes"
  | "onChange"
  | "onCommitGroup"
  | "queue"
  | "listQueues"
  | "sweep"
  | "deleteExpired"
  | "purgeNamespace"
  | "backup"
  | "keepsValues"
  | "encodeValue"
  | "indexService"
>;

/** The database behind `kv` and the keyspace of `kv`'s namespace. */
export function coreOf(kv: Kv): { core: KvCore; keyspace: Keyspace } {
  const { db, keyspace } = viewOf(kv);
  return { core: db, keyspace };
}

/** A view of namespace `name` of `core`'s database; the caller has checked that its scope may use it. */
export function namespaceView(core: KvCore, name: string): Kv {
  return new Kv(core as Database, name);
}

/** A view of one of Cellar's own namespaces (named `$…`), which `kv.namespace()` refuses. */
export function reservedView(kv: Kv, name: `$${string}`): Kv {
  return new Kv(viewOf(kv).db, name);
}

/**
 * What the database's watch hub holds now (see `WatchHub.counts`) and its open event
 * subscriptions (`events`: pattern subscriptions, prefix watches, and each server broadcast,
 * which serves any number of connections), for metrics.
 */
export function watchCounts(kv: Kv): WatchHub["counts"] & { events: number } {
  const { db } = viewOf(kv);
  return { ...db.hub.counts, events: db.events.size };
}

/** Whether two views (or a view and a core) belong to the same database. */
export function sameDatabase(a: Kv, b: Kv | KvCore): boolean {
  return viewOf(a).db === (b instanceof Kv ? viewOf(b).db : b);
}
