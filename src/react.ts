/**
 * `cellar/react`: React hooks over a Cellar database (embedded or remote `Kv`), a client store,
 * typed values and stores, and workspaces' `$kv`. React (19) is a peer dependency: only this
 * entry imports it. README "React" describes the hooks.
 */
export type { ClientEntry, SyncStatus } from "./offline/types.js";
export type { TypedSnapshot } from "./react/decoded-cell.js";
export {
  type ListOptions,
  type ReadOptions,
  type StoreRefs,
  useList,
  useStoreEntry,
  useTyped,
  useValue,
} from "./react/hooks.js";
export type { ListSnapshot, ValueSnapshot } from "./react/kv-cells.js";
export {
  type Mutation,
  type MutationOptions,
  type MutationStatus,
  useMutation,
} from "./react/mutation.js";
export type { OptimisticWrite } from "./react/overlays.js";
export { KvProvider, type KvProviderProps, useKv } from "./react/provider.js";
export type { LiveEntry } from "./react/reconcile.js";
export { type ClientStoreView, isClientStore, type KvSource } from "./react/source.js";
export { useSyncStatus } from "./react/status.js";
export {
  useWorkspaceKv,
  useWorkspaceValue,
  type WorkspaceKvSnapshot,
  type WorkspaceSnapshot,
} from "./react/workspace.js";
