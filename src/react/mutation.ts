/**
 * `useMutation`: runs a write with the provider's source, tracks its state, and shows its
 * optimistic values at once. On a `Kv` (embedded or remote) an optimistic value shows until the
 * cells of its key have seen the write's commit versionstamp (the server's entry for that
 * write, or a later one), and goes away at once if the write throws or its checks fail. A
 * client store shows its own writes at once, so there the optimistic values are not needed.
 */
import { useCallback, useRef, useState } from "react";
import type { Kv } from "../core/kv.js";
import { type OptimisticWrite, Overlay } from "./overlays.js";
import { registryFor, useProvidedRegistry, useRegistry } from "./provider.js";
import type { Registry } from "./registry.js";
import { isClientStore, type KvSource } from "./source.js";

export interface MutationOptions<V> {
  /** Run with this source instead of the provider's. */
  readonly kv?: KvSource;
  /** The values to show at once, before the write resolves. */
  readonly optimistic?: (variables: V) => readonly OptimisticWrite[];
}

export type MutationStatus = "idle" | "pending" | "success" | "error";

export interface Mutation<V, R> {
  /** Runs the write; its outcome goes to `status`, `data` and `error`. */
  mutate(variables: V): void;
  /** Runs the write and resolves to its result (rejects with its error). */
  mutateAsync(variables: V): Promise<R>;
  /** The state of the latest call. */
  readonly status: MutationStatus;
  readonly pending: boolean;
  readonly data: R | undefined;
  readonly error: Error | null;
  /** Back to `idle`. */
  reset(): void;
}

interface State<R> {
  readonly status: MutationStatus;
  readonly data: R | undefined;
  readonly error: Error | null;
}

const IDLE: State<never> = { status: "idle", data: undefined, error: null };

/**
 * What a write's result says of its commit: `false` when it did not commit (`{ ok: false }`),
 * its versionstamp (the newest, for an array of results), or `undefined` when it does not say.
 */
function commitOf(result: unknown): string | false | undefined {
  if (Array.isArray(result)) {
    let newest: string | undefined;
    for (const item of result) {
      const commit = commitOf(item);
      if (commit === false) return false;
      if (commit !== undefined && (newest === undefined || commit > newest)) newest = commit;
    }
    return newest;
  }
  if (typeof result !== "object" || result === null) return undefined;
  if ((result as { ok?: unknown }).ok === false) return false;
  const { versionstamp } = result as { versionstamp?: unknown };
  return typeof versionstamp === "string" ? versionstamp : undefined;
}

/**
 * A write to run from an event handler, with its state and optimistic values.
 *
 * @example
 * const rename = useMutation((kv: Kv, name: string) => kv.set(["users", id, "name"], name), {
 *   optimistic: (name) => [{ key: ["users", id, "name"], value: name }],
 * });
 * rename.mutate("Ada L."); // every useValue(["users", id, "name"]) shows it at once
 */
export function useMutation<V = void, R = unknown, S extends KvSource = Kv>(
  write: (kv: S, variables: V) => R | Promise<R>,
  options: MutationOptions<V> = {},
): Mutation<V, R> {
  const registry = useRegistry(options.kv, "useMutation");
  const provided = useProvidedRegistry();
  const [state, setState] = useState<State<R>>(IDLE);
  const latest = useRef({ write, options });
  latest.current = { write, options };
  const calls = useRef(0);

  const mutateAsync = useCallback(
    async (variables: V): Promise<R> => {
      const { write, options } = latest.current;
      const call = ++calls.current;
      const settle = (next: State<R>) => {
        if (call === calls.current) setState(next);
      };
      settle({ status: "pending", data: undefined, error: null });
      const groups = overlaysOf(options.optimistic?.(variables) ?? [], registry, provided);
      for (const [owner, overlays] of groups) owner.show(overlays);
      try {
        const result = await write(registry.source as S, variables);
        const commit = commitOf(result);
        for (const [owner, overlays] of groups) {
          if (commit === false) owner.drop(overlays);
          else owner.committed(overlays, commit).catch(() => owner.drop(overlays));
        }
        settle({ status: "success", data: result, error: null });
        return result;
      } catch (error) {
        for (const [owner, overlays] of groups) owner.drop(overlays);
        const failed = error instanceof Error ? error : new Error(String(error));
        settle({ status: "error", data: undefined, error: failed });
        throw error;
      }
    },
    [registry, provided],
  );
  const mutate = useCallback(
    (variables: V) => {
      mutateAsync(variables).catch(() => {});
    },
    [mutateAsync],
  );
  const reset = useCallback(() => {
    calls.current++;
    setState(IDLE);
  }, []);
  return { ...state, pending: state.status === "pending", mutate, mutateAsync, reset };
}

/** The overlays of `writes`, by the registry whose cells show them (none on a client store). */
function overlaysOf(
  writes: readonly OptimisticWrite[],
  registry: Registry,
  provided: Registry | null,
): Map<Registry, Overlay[]> {
  const groups = new Map<Registry, Overlay[]>();
  for (const write of writes) {
    const owner = "ref" in write ? registryFor(write.ref.kv, provided) : registry;
    if (isClientStore(owner.source)) continue;
    const overlays = groups.get(owner) ?? [];
    overlays.push(new Overlay(write));
    groups.set(owner, overlays);
  }
  return groups;
}
