/**
 * Hooks for a collaborative workspace's `$kv` (`createClient(app, …).$kv`, `bindWorkspace`).
 * A workspace is a Y.js document: its edits merge as CRDTs and apply synchronously, so there
 * are no versions to reconcile and no optimistic state — a `set()` is shown at once, and edits
 * from other clients as they arrive. Text and tags are shown as their JSON form (a string, an
 * array), since their live `Y.Text` / `Y.Array` stays the same object while it changes.
 */
import { useSyncExternalStore } from "react";
import type {
  ValueColumn,
  WorkspaceJson,
  WorkspaceValue,
  YTextColumn,
} from "../workspace/columns.js";
import type { KvHelper, KvHelpers, KvSchema } from "../workspace/kv.js";

/** What a workspace key shows: its value, or for `ytext` and `tags` their JSON form. */
export type WorkspaceSnapshot<C extends ValueColumn> = C extends YTextColumn
  ? WorkspaceJson<C>
  : C extends { readonly kind: "tags" }
    ? WorkspaceJson<C>
    : WorkspaceValue<C>;

/** Every key of a workspace's `$kv`, as `useWorkspaceKv` shows them. */
export type WorkspaceKvSnapshot<K extends KvSchema> = {
  readonly [N in keyof K & string]: WorkspaceSnapshot<K[N]>;
};

function read<C extends ValueColumn>(helper: KvHelper<C>): WorkspaceSnapshot<C> {
  const kind = (helper.schema as { kind?: string }).kind;
  return (
    kind === "ytext" || kind === "tags" ? helper.toJSON() : helper.get()
  ) as WorkspaceSnapshot<C>;
}

/** A snapshot kept current by an observer of the document, made once per helper. */
class Followed<S> {
  readonly #listeners = new Set<() => void>();
  #snapshot: S;

  constructor(initial: S, observe: (changed: (next: (current: S) => S) => void) => void) {
    this.#snapshot = initial;
    observe((next) => {
      this.#snapshot = next(this.#snapshot);
      for (const listener of [...this.#listeners]) listener();
    });
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  readonly getSnapshot = (): S => this.#snapshot;
}

const followed = new WeakMap<object, Followed<unknown>>();

function follow<S>(owner: object, make: () => Followed<S>): Followed<S> {
  let cell = followed.get(owner) as Followed<S> | undefined;
  if (!cell) {
    cell = make();
    followed.set(owner, cell as Followed<unknown>);
  }
  return cell;
}

/**
 * One key of a workspace's `$kv`, re-rendered after every transaction that changes it, local or
 * from another client.
 *
 * @example
 * const theme = useWorkspaceValue(client.$kv.theme); // "light"
 * const draft = useWorkspaceValue(client.$kv.currentDraft); // the text, as a string
 */
export function useWorkspaceValue<C extends ValueColumn>(
  helper: KvHelper<C>,
): WorkspaceSnapshot<C> {
  const cell = follow(
    helper,
    () =>
      new Followed(read(helper), (changed) => helper.observe(() => changed(() => read(helper)))),
  );
  return useSyncExternalStore(cell.subscribe, cell.getSnapshot, cell.getSnapshot);
}

/**
 * Every key of a workspace's `$kv` as one object, re-rendered after every transaction that
 * changes any of them; keys a transaction did not change keep their values' identity.
 *
 * @example
 * const { theme, lastSyncAt } = useWorkspaceKv(client.$kv);
 */
export function useWorkspaceKv<K extends KvSchema>(kv: KvHelpers<K>): WorkspaceKvSnapshot<K> {
  const cell = follow(kv, () => {
    const helpers = kv.$all() as KvHelper[];
    const all = () =>
      Object.fromEntries(
        helpers.map((helper) => [helper.name, read(helper)]),
      ) as WorkspaceKvSnapshot<K>;
    return new Followed(all(), (changed) =>
      kv.$observe(({ keys }) =>
        changed((current) => {
          const next: Record<string, unknown> = { ...current };
          for (const helper of helpers)
            if (keys.includes(helper.name)) next[helper.name] = read(helper);
          return next as WorkspaceKvSnapshot<K>;
        }),
      ),
    );
  });
  return useSyncExternalStore(cell.subscribe, cell.getSnapshot, cell.getSnapshot);
}
