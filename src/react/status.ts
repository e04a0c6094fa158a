/** `useSyncStatus`: what a client store's sync is doing, for an online badge or a pending count. */
import { useCallback, useSyncExternalStore } from "react";
import type { SyncStatus } from "../offline/types.js";
import { useRegistry } from "./provider.js";
import { isClientStore, type KvSource } from "./source.js";

/**
 * The client store's `status` (`{ state, pending, failed, lastSynced, conflicts, error }`),
 * re-rendering on each change of it; `null` when the source is a `Kv`, which has no sync.
 *
 * @example
 * const status = useSyncStatus();
 * if (status?.state === "offline") return createElement(Banner, { pending: status.pending });
 */
export function useSyncStatus(options: { readonly kv?: KvSource } = {}): SyncStatus | null {
  const source = useRegistry(options.kv, "useSyncStatus").source;
  const store = isClientStore(source) ? source : null;
  const subscribe = useCallback(
    (listener: () => void) => store?.onStatus(listener) ?? (() => {}),
    [store],
  );
  const snapshot = useCallback(() => store?.status ?? null, [store]);
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}
