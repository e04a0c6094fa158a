/**
 * A workspace bound to a `Y.Doc`: `$kv`, `$tables` and the actions, typed from the definition.
 * The document is the whole state: anything that syncs, persists or mirrors it (a provider, the
 * server) works on the same `Y.Doc`, and every change reaches every helper's observers.
 */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import type * as Y from "yjs";
import { describe, fail } from "../errors.js";
import { ValidationError, validateWith } from "../typed/schemas.js";
import {
  type ActionContext,
  type ActionDefinition,
  type Actions,
  type AnyAction,
  type AnyWorkspace,
  assertName,
} from "./define.js";
import { createKvHelpers, type KvHelpers } from "./kv.js";
import { createTableHelpers, type Tables } from "./tables.js";

export { checkUpdate, REPAIR_ORIGIN, type UpdateCheck } from "./check-update.js";
export { GENESIS_ORIGIN } from "./slots.js";

/** An action as clients call it: validates the input, runs the handler, resolves to its result. */
export type ActionCaller<A extends AnyAction> = (A extends ActionDefinition<
  "mutation" | "query",
  infer S,
  infer R
>
  ? S extends StandardSchemaV1
    ? (input: StandardSchemaV1.InferInput<S>) => Promise<Awaited<R>>
    : () => Promise<Awaited<R>>
  : never) & {
  readonly kind: A["kind"];
  /** The input's Standard Schema, when the action takes one. */
  readonly input: A["input"];
  readonly description: string | undefined;
};

/** The actions of a bound workspace, by name. */
export type ActionCallers<A extends Actions> = {
  readonly [N in keyof A & string]: ActionCaller<A[N]>;
};

type ActionsOf<D extends AnyWorkspace> = D extends {
  actions: ((context: never) => infer A) | undefined;
}
  ? A extends Actions
    ? A
    : Record<never, never>
  : Record<never, never>;

/** A workspace bound to a document. */
export interface BoundWorkspace<D extends AnyWorkspace = AnyWorkspace> {
  readonly definition: D;
  readonly doc: Y.Doc;
  readonly $kv: KvHelpers<D["kv"]>;
  readonly $tables: Tables<D["tables"]>;
  readonly actions: ActionCallers<ActionsOf<D>>;
}

/** Options of {@link bindWorkspace}. */
export interface BindOptions {
  /** The origin of the transactions the helpers and mutations make (default `null`). */
  readonly origin?: unknown;
}

/**
 * Binds `definition` to `doc`: typed helpers over the document's root maps `"kv"` and
 * `"tables"`, and the actions made by the definition's factory. Binding writes nothing; Y types
 * are created on first use.
 *
 * @example
 * const doc = new Y.Doc();
 * const { $kv, $tables, actions } = bindWorkspace(app, doc);
 * $kv.theme.set("dark");
 * await actions.setTheme({ theme: "light" });
 */
export function bindWorkspace<D extends AnyWorkspace>(
  definition: D,
  doc: Y.Doc,
  options: BindOptions = {},
): BoundWorkspace<D> {
  const origin = options.origin ?? null;
  const $kv = createKvHelpers(doc, definition.kv, origin) as KvHelpers<D["kv"]>;
  const $tables = createTableHelpers(doc, definition.tables, origin) as Tables<D["tables"]>;
  const context: ActionContext<D["tables"], D["kv"]> = { tables: $tables, kv: $kv, doc };
  const made = definition.actions?.(context) ?? {};
  if (typeof made !== "object" || made === null) {
    fail(
      "INVALID_ARGUMENT",
      `the actions factory of workspace ${JSON.stringify(definition.id)} must return an object, got ${describe(made)}`,
    );
  }
  const actions = Object.fromEntries(
    Object.entries(made).map(([name, action]) => [name, caller(doc, origin, name, action)]),
  );
  return Object.freeze({
    definition,
    doc,
    $kv,
    $tables,
    actions: Object.freeze(actions) as ActionCallers<ActionsOf<D>>,
  });
}

function caller(doc: Y.Doc, origin: unknown, name: string, action: unknown): unknown {
  assertName(name, "action");
  const candidate = action as Partial<AnyAction> | null;
  if (
    (candidate?.kind !== "mutation" && candidate?.kind !== "query") ||
    typeof candidate.handler !== "function"
  ) {
    fail(
      "INVALID_ARGUMENT",
      `action ${JSON.stringify(name)} must come from defineMutation or defineQuery, got ${describe(action)}`,
    );
  }
  const { kind, input, handler, description } = candidate as AnyAction;
  const call = async (given?: unknown) => {
    let value: unknown;
    if (input !== undefined) {
      const checked = await validateWith(input, given);
      if (!checked.ok)
        throw new ValidationError(`input of action ${JSON.stringify(name)}`, checked.issues);
      value = checked.value;
    }
    if (kind === "query") return await handler(value);
    // A synchronous mutation is one transaction: observers, providers and peers see it whole.
    let result: unknown;
    doc.transact(() => {
      result = handler(value);
    }, origin);
    return await result;
  };
  return Object.assign(call, { kind, input, description });
}
