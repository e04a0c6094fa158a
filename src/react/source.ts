/**
 * What the hooks read from: a `Kv` (embedded, or the remote client `openKv("http://…")`), or a
 * client store (`createClientKv`), told apart by its synchronous `peek`. Only the client
 * store's contract (`offline/types.ts`) is named here, never its implementation, so the hooks
 * build on the contract alone.
 */
import type { KvKey } from "../codec/key.js";
import type { Kv } from "../core/kv.js";
import type {
  ClientEntry,
  ClientEvent,
  ClientListOptions,
  KvListSelector,
  KvPattern,
  SyncStatus,
} from "../offline/types.js";

/**
 * The synchronous side of a client store the hooks use: its view read at once, and told of each
 * change of it. `peek` returns the same object until that key's view changes.
 */
export interface ClientStoreView {
  peek<T = unknown>(key: KvKey): ClientEntry<T>;
  peekList<T = unknown>(
    selector: KvListSelector,
    options?: ClientListOptions,
  ): readonly ClientEntry<T>[];
  /** Increments at each change of the view. */
  readonly revision: number;
  subscribe(pattern: KvPattern, listener: (event: ClientEvent) => void): () => void;
  readonly status: SyncStatus;
  onStatus(listener: (status: SyncStatus) => void): () => void;
}

/** What a `KvProvider` holds: a database, or a client store. */
export type KvSource = Kv | ClientStoreView;

/**
 * Whether `source` is a client store (it reads its replica synchronously) rather than a `Kv`.
 *
 * @example
 * if (isClientStore(kv)) console.log(kv.status.state);
 */
export function isClientStore(source: unknown): source is ClientStoreView {
  return (
    typeof source === "object" &&
    source !== null &&
    typeof (source as { peek?: unknown }).peek === "function" &&
    typeof (source as { peekList?: unknown }).peekList === "function"
  );
}
