/**
 * `defineWorkspace`: a workspace's id, tables, KV keys and actions, checked once and typed for
 * every client, server and provider that binds it to a document.
 */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import type * as Y from "yjs";
import { describe, fail } from "../errors.js";
import { assertStandardSchema } from "../typed/schemas.js";
import { type IdColumn, WORKSPACE_ID_PATTERN, WORKSPACE_NAME_PATTERN } from "./columns.js";
import type { KvHelpers, KvSchema } from "./kv.js";
import type { Tables, TablesSchema } from "./tables.js";

/** A mutation or a query: its input's Standard Schema (if any) and its handler. */
export interface ActionDefinition<
  Kind extends "mutation" | "query" = "mutation" | "query",
  S extends StandardSchemaV1 | undefined = StandardSchemaV1 | undefined,
  R = unknown,
> {
  readonly kind: Kind;
  readonly input: S;
  readonly description: string | undefined;
  readonly handler: (
    input: S extends StandardSchemaV1 ? StandardSchemaV1.InferOutput<S> : undefined,
  ) => R;
}

// biome-ignore lint/suspicious/noExplicitAny: a constraint must accept every action's input and result
export type AnyAction = ActionDefinition<"mutation" | "query", any, any>;

/** What an actions factory returns: action names to definitions. */
export type Actions = { readonly [name: string]: AnyAction };

/** What an actions factory is given: the helpers of the document the workspace is bound to. */
export interface ActionContext<T extends TablesSchema, K extends KvSchema> {
  readonly tables: Tables<T>;
  readonly kv: KvHelpers<K>;
  readonly doc: Y.Doc;
}

/** A workspace definition, as `defineWorkspace` returns it. */
export interface WorkspaceDefinition<
  Id extends string = string,
  T extends TablesSchema = TablesSchema,
  K extends KvSchema = KvSchema,
  A extends Actions = Actions,
> {
  readonly id: Id;
  readonly tables: T;
  readonly kv: K;
  readonly actions: ((context: ActionContext<T, K>) => A) | undefined;
}

/** Any workspace definition, for constraints. */
// biome-ignore lint/suspicious/noExplicitAny: a constraint must accept every definition
export type AnyWorkspace = WorkspaceDefinition<string, any, any, any>;

interface ActionOptions<S, R> {
  readonly input: S;
  readonly handler: (
    input: S extends StandardSchemaV1 ? StandardSchemaV1.InferOutput<S> : undefined,
  ) => R;
  readonly description?: string;
}

interface UntypedActionOptions {
  readonly input?: StandardSchemaV1;
  readonly handler: (input: never) => unknown;
  readonly description?: string;
}

/**
 * A mutation: an action that changes the workspace. Its input is validated by `input` (any
 * Standard Schema) before `handler` runs, inside one document transaction.
 *
 * @example
 * setTheme: defineMutation({
 *   input: z.object({ theme: z.enum(["light", "dark"]) }),
 *   handler: ({ theme }) => kv.theme.set(theme),
 * }),
 */
export function defineMutation<S extends StandardSchemaV1, R>(
  options: ActionOptions<S, R>,
): ActionDefinition<"mutation", S, R>;
export function defineMutation<R>(
  options: Omit<ActionOptions<undefined, R>, "input">,
): ActionDefinition<"mutation", undefined, R>;
export function defineMutation(options: UntypedActionOptions): AnyAction {
  return action("mutation", options);
}

/**
 * A query: an action that reads the workspace, with an optional validated input.
 *
 * @example
 * getTheme: defineQuery({ handler: () => kv.theme.get() }),
 */
export function defineQuery<S extends StandardSchemaV1, R>(
  options: ActionOptions<S, R>,
): ActionDefinition<"query", S, R>;
export function defineQuery<R>(
  options: Omit<ActionOptions<undefined, R>, "input">,
): ActionDefinition<"query", undefined, R>;
export function defineQuery(options: UntypedActionOptions): AnyAction {
  return action("query", options);
}

function action(kind: "mutation" | "query", options: Partial<UntypedActionOptions>): AnyAction {
  if (typeof options !== "object" || options === null) {
    fail(
      "INVALID_ARGUMENT",
      `define${kind === "query" ? "Query" : "Mutation"} takes { input?, handler }, got ${describe(options)}`,
    );
  }
  if (typeof options.handler !== "function") {
    fail(
      "INVALID_ARGUMENT",
      `an action's handler must be a function, got ${describe(options.handler)}`,
    );
  }
  if (options.input !== undefined) assertStandardSchema(options.input, "an action's input");
  if (options.description !== undefined && typeof options.description !== "string") {
    fail(
      "INVALID_ARGUMENT",
      `an action's description is a string, got ${describe(options.description)}`,
    );
  }
  return Object.freeze({
    kind,
    input: options.input,
    description: options.description,
    handler: options.handler as AnyAction["handler"],
  });
}

type Reserved = `$${string}` | keyof typeof Object.prototype;
type ReservedNames<D> = { readonly [K in keyof D as K extends Reserved ? K : never]: never };
type NoIdKeys<K> = { readonly [N in keyof K as K[N] extends IdColumn ? N : never]: never };
type TableNames<T> = ReservedNames<T> & { readonly [N in keyof T]: ReservedNames<T[N]> };

/**
 * Defines a workspace: `id` (lowercase letters, digits and `-`, the workspace's namespace is
 * `workspace-{id}`), `tables` (each with exactly one `id()` field), `kv` (any column but
 * `id()`, including `ytext()`) and `actions`, a factory given the bound helpers. Names are a
 * letter then letters, digits or `_` (camelCase works); names starting with `$` and those of
 * `Object.prototype` members are reserved. Throws `INVALID_ARGUMENT` on a broken definition.
 *
 * @example
 * const app = defineWorkspace({
 *   id: "app",
 *   tables: { posts: { id: id(), title: text(), content: ytext() } },
 *   kv: { theme: text({ default: "light" }), lastSyncAt: date({ nullable: true }) },
 *   actions: ({ kv }) => ({
 *     setTheme: defineMutation({
 *       input: z.object({ theme: z.enum(["light", "dark"]) }),
 *       handler: ({ theme }) => kv.theme.set(theme),
 *     }),
 *   }),
 * });
 */
export function defineWorkspace<
  const Id extends string,
  T extends TablesSchema = Record<never, never>,
  K extends KvSchema = Record<never, never>,
  A extends Actions = Record<never, never>,
>(config: {
  readonly id: Id;
  readonly tables?: T & TableNames<T>;
  readonly kv?: K & ReservedNames<K> & NoIdKeys<K>;
  readonly actions?: (context: ActionContext<T, K>) => A;
}): WorkspaceDefinition<Id, T, K, A> {
  if (typeof config !== "object" || config === null) {
    fail(
      "INVALID_ARGUMENT",
      `defineWorkspace takes { id, tables?, kv?, actions? }, got ${describe(config)}`,
    );
  }
  const { id, tables = {} as T, kv = {} as K, actions } = config;
  if (typeof id !== "string" || !WORKSPACE_ID_PATTERN.test(id)) {
    fail(
      "INVALID_ARGUMENT",
      `a workspace id is lowercase letters, digits and "-", 1 to 63 characters, starting with a letter or digit (${WORKSPACE_ID_PATTERN}), got ${describe(id)}`,
    );
  }
  assertNamed(tables, "tables", "table");
  for (const [name, table] of Object.entries(tables)) assertTable(name, table);
  assertNamed(kv, "kv", "KV key");
  for (const [name, column] of Object.entries(kv)) {
    assertColumn(column, `KV key ${JSON.stringify(name)}`);
    if ((column as { kind: string }).kind === "id") {
      fail(
        "INVALID_ARGUMENT",
        `KV key ${JSON.stringify(name)}: id() is for table rows; a KV key is identified by its name`,
      );
    }
  }
  if (actions !== undefined && typeof actions !== "function") {
    fail(
      "INVALID_ARGUMENT",
      `actions is a function ({ tables, kv }) => ({ … }), got ${describe(actions)}`,
    );
  }
  return Object.freeze({ id, tables, kv, actions });
}

/**
 * Throws `INVALID_ARGUMENT` unless `name` may name a table, field, KV key or action.
 *
 * @example
 * assertName("$all", "KV key"); // throws: names starting with "$" are reserved
 */
export function assertName(name: string, what: string): void {
  if (name.startsWith("$")) {
    fail(
      "INVALID_ARGUMENT",
      `${what} ${JSON.stringify(name)}: names starting with "$" are reserved`,
    );
  }
  if (!WORKSPACE_NAME_PATTERN.test(name)) {
    fail(
      "INVALID_ARGUMENT",
      `${what} ${JSON.stringify(name)}: a name is a letter, then letters, digits or "_" (${WORKSPACE_NAME_PATTERN}), like lastSyncAt or last_sync`,
    );
  }
  // A helpers object would hide toString, valueOf, hasOwnProperty… behind a typed member.
  if (name in Object.prototype) {
    fail(
      "INVALID_ARGUMENT",
      `${what} ${JSON.stringify(name)}: names of Object.prototype members are reserved`,
    );
  }
}

function assertNamed(value: unknown, what: string, each: string): asserts value is object {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail("INVALID_ARGUMENT", `${what} is an object of ${each}s, got ${describe(value)}`);
  }
  for (const name of Object.keys(value)) assertName(name, each);
}

function assertColumn(column: unknown, what: string): void {
  const candidate = column as { kind?: unknown; check?: unknown } | null;
  if (candidate?.kind === "id") return;
  if (typeof candidate?.kind !== "string" || typeof candidate.check !== "function") {
    fail(
      "INVALID_ARGUMENT",
      `${what} must be a column (text(), ytext(), integer()…), got ${describe(column)}`,
    );
  }
}

function assertTable(name: string, table: unknown): void {
  const what = `table ${JSON.stringify(name)}`;
  assertNamed(table, what, "field");
  let ids = 0;
  for (const [field, column] of Object.entries(table)) {
    assertColumn(column, `field ${JSON.stringify(field)} of ${what}`);
    if ((column as { kind: string }).kind === "id") ids++;
  }
  if (ids !== 1) {
    fail(
      "INVALID_ARGUMENT",
      `${what} needs exactly one id() field (rows are keyed by it), got ${ids}`,
    );
  }
}
