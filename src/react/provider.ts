/**
 * `<KvProvider kv={…}>`: the source the hooks below it read, and the registry of their shared
 * cells. A hook given `{ kv }` of its own (or a typed value bound to another `Kv`) uses that
 * source's registry instead, one per source for the page.
 */
import { createContext, createElement, type ReactNode, useContext, useMemo } from "react";
import { fail } from "../errors.js";
import { Registry, type RegistryOptions } from "./registry.js";
import type { KvSource } from "./source.js";

const RegistryContext = createContext<Registry | null>(null);

/** Registries of sources used without a provider (or other than the provider's). */
const standalone = new WeakMap<object, Registry>();

export interface KvProviderProps extends RegistryOptions {
  /** The database (`openKv()`, `openKv("http://…")`) or client store the hooks read. */
  readonly kv: KvSource;
  readonly children?: ReactNode;
}

/**
 * Gives the hooks below it a database or a client store to read. `initial` entries (read on the
 * server) are shown before anything is read, by server rendering and hydration alike.
 *
 * @example
 * const kv = await openKv("https://kv.example.com", { token });
 * createRoot(element).render(createElement(KvProvider, { kv }, createElement(App)));
 */
export function KvProvider({ kv, children, keepAlive, initial }: KvProviderProps): ReactNode {
  // `initial` is read once, when the provider first renders with this source.
  // biome-ignore lint/correctness/useExhaustiveDependencies: a new `initial` array is not a new source
  const registry = useMemo(
    () =>
      new Registry(kv, {
        ...(keepAlive !== undefined && { keepAlive }),
        ...(initial !== undefined && { initial }),
      }),
    [kv, keepAlive],
  );
  return createElement(RegistryContext.Provider, { value: registry }, children);
}

/** The registry `source` is read through: the provider's when it is the provider's source. */
export function registryFor(source: KvSource, provided: Registry | null): Registry {
  if (provided?.source === source) return provided;
  let registry = standalone.get(source);
  if (!registry) {
    registry = new Registry(source);
    standalone.set(source, registry);
  }
  return registry;
}

/** The nearest provider's registry, or `null`. */
export function useProvidedRegistry(): Registry | null {
  return useContext(RegistryContext);
}

/** The registry a hook reads `source` (default: the provider's) through. */
export function useRegistry(source?: KvSource, hook = "this hook"): Registry {
  const provided = useContext(RegistryContext);
  if (source !== undefined) return registryFor(source, provided);
  if (!provided)
    fail("INVALID_ARGUMENT", `${hook} needs a <KvProvider kv={…}> above it, or { kv }`);
  return provided;
}

/**
 * The database or client store of the nearest `KvProvider`.
 *
 * @example
 * const kv = useKv();
 */
export function useKv(): KvSource {
  return useRegistry(undefined, "useKv").source;
}
