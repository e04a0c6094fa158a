/**
 * The reading hooks: each finds its cell in the registry and reads it with
 * `useSyncExternalStore`. With `suspense: true` a hook that has nothing to show yet suspends
 * until its first read arrives (and throws its error to the nearest error boundary).
 */
import { use, useSyncExternalStore } from "react";
import type { KvKey } from "../codec/key.js";
import type { KvListSelector } from "../core/types.js";
import type { KeyRef } from "../typed/compose.js";
import type { Cell } from "./cell.js";
import type { TypedSnapshot } from "./decoded-cell.js";
import type { ListSnapshot, ValueSnapshot } from "./kv-cells.js";
import { useRegistry } from "./provider.js";
import type { KvSource } from "./source.js";

export interface ReadOptions {
  /** Read this source instead of the provider's. */
  readonly kv?: KvSource;
  /** Suspend while loading instead of returning `loading: true`. */
  readonly suspense?: boolean;
}

export interface ListOptions extends ReadOptions {
  /** At most this many entries, the first in list order. */
  readonly limit?: number;
  readonly reverse?: boolean;
}

/** A snapshot once loaded, as Suspense mode returns it. */
type Loaded<S> = S & { readonly loading: false };

function useCell<S extends { readonly loading: boolean }>(cell: Cell<S>, suspense: boolean): S {
  const snapshot = useSyncExternalStore(cell.subscribe, cell.getSnapshot, cell.getServerSnapshot);
  if (!suspense || !snapshot.loading) return snapshot;
  use(cell.load());
  return cell.getSnapshot();
}

/**
 * One key's entry, kept current: `{ key, value, versionstamp, pending, loading, error }`. It
 * re-renders when that key changes, never for another key, and never shows an older version
 * of the entry after a newer one.
 *
 * @example
 * const { value: theme = "light", loading } = useValue<string>(["prefs", "theme"]);
 */
export function useValue<T = unknown>(
  key: KvKey,
  options: ReadOptions & { readonly suspense: true },
): Loaded<ValueSnapshot<T>>;
export function useValue<T = unknown>(key: KvKey, options?: ReadOptions): ValueSnapshot<T>;
export function useValue<T = unknown>(key: KvKey, options: ReadOptions = {}): ValueSnapshot<T> {
  const cell = useRegistry(options.kv, "useValue").value<T>(key);
  return useCell(cell, options.suspense === true);
}

/**
 * A range's entries (a `list` selector), kept current: `{ entries, loading, error }`. It
 * re-renders when a key in the range (within `limit`) changes, appears or goes, never for a
 * key outside it; entries that did not change keep their identity.
 *
 * @example
 * const { entries } = useList<Todo>({ prefix: ["todos"] }, { limit: 50 });
 */
export function useList<T = unknown>(
  selector: KvListSelector,
  options: ListOptions & { readonly suspense: true },
): Loaded<ListSnapshot<T>>;
export function useList<T = unknown>(
  selector: KvListSelector,
  options?: ListOptions,
): ListSnapshot<T>;
export function useList<T = unknown>(
  selector: KvListSelector,
  options: ListOptions = {},
): ListSnapshot<T> {
  const shape = {
    ...(options.limit !== undefined && { limit: options.limit }),
    ...(options.reverse === true && { reverse: true }),
  };
  const cell = useRegistry(options.kv, "useList").list<T>(selector, shape);
  return useCell(cell, options.suspense === true);
}

/**
 * A typed value of `defineKv`, decoded as its `get()` decodes (the default when unset):
 * `{ value, versionstamp, pending, loading, error }`. It reads the `Kv` the value was defined
 * on (through the provider's registry when that is the provider's source).
 *
 * @example
 * const { value: theme } = useTyped(settings.theme, { suspense: true }); // "light" | "dark"
 */
export function useTyped<T>(
  ref: KeyRef<T>,
  options: { readonly suspense: true },
): Extract<TypedSnapshot<T>, { loading: false }>;
export function useTyped<T>(
  ref: KeyRef<T>,
  options?: { readonly suspense?: boolean },
): TypedSnapshot<T>;
export function useTyped<T>(
  ref: KeyRef<T>,
  options: { readonly suspense?: boolean } = {},
): TypedSnapshot<T> {
  const cell = useRegistry(ref.kv, "useTyped").decoded(ref, ref);
  return useCell(cell, options.suspense === true);
}

/** The part of a typed store (`defineStore`'s result) the hook needs. */
export interface StoreRefs<T> {
  readonly kv: KeyRef<unknown>["kv"];
  ref(id: string): KeyRef<T | null>;
}

/**
 * Entry `id` of a typed store (`defineStore`), decoded and migrated as `store.get(id)` does:
 * `value` is `null` when absent or invalid.
 *
 * @example
 * const { value: prefs } = useStoreEntry(userPrefs, "ada");
 */
export function useStoreEntry<T>(
  store: StoreRefs<T>,
  id: string,
  options: { readonly suspense: true },
): Extract<TypedSnapshot<T | null>, { loading: false }>;
export function useStoreEntry<T>(
  store: StoreRefs<T>,
  id: string,
  options?: { readonly suspense?: boolean },
): TypedSnapshot<T | null>;
export function useStoreEntry<T>(
  store: StoreRefs<T>,
  id: string,
  options: { readonly suspense?: boolean } = {},
): TypedSnapshot<T | null> {
  const cell = useRegistry(store.kv, "useStoreEntry").decoded(store, store.ref(id));
  return useCell(cell, options.suspense === true);
}
