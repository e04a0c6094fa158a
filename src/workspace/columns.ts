/**
 * The columns of a workspace: the typed columns of `cellar` (text, integer, real, boolean, date,
 * select, json, id) as they are, `tags()` typed as a live `Y.Array` of strings, and `ytext()`, a
 * collaborative `Y.Text`. The types here map each column to what a workspace reads (live Y types
 * for `ytext` and `tags`), what it writes, and its JSON form.
 */
import type * as Y from "yjs";
import { describe, fail } from "../errors.js";
import {
  type AnyColumn,
  type Column,
  type DateWithTimeZone,
  type IdColumn,
  tags as typedTags,
} from "../typed/columns.js";
import type { KvInput, KvJson, KvValue } from "../typed/define-kv.js";
import type { JsonSchema, Validated } from "../typed/schemas.js";

export {
  type AnyColumn,
  boolean,
  type Column,
  type ColumnOptions,
  type DateWithTimeZone,
  date,
  dateWithTimeZone,
  type IdColumn,
  id,
  integer,
  json,
  real,
  select,
  text,
} from "../typed/columns.js";

type NoOptions = Record<never, never>;

/** A `tags()` column: a list of distinct strings, kept in the document as a `Y.Array<string>`. */
export type TagsColumn<
  V extends string,
  Nullable extends boolean,
  HasDefault extends boolean,
> = Column<V[], V[], Nullable, HasDefault> & { readonly kind: "tags" };

/**
 * A list of distinct strings, from `options` when given. In a workspace it is a `Y.Array<string>`,
 * so concurrent additions and removals merge; reads of its JSON form drop repeated tags.
 *
 * @example
 * const labels = tags({ options: ["work", "home"], default: [] });
 */
export function tags<const O extends TagsOptions = NoOptions>(
  options?: O & TagsDefaultFrom<O>,
): TagsColumn<TagOf<O>, OptionsNullable<O>, OptionsDefault<O>> {
  return typedTags(options as never) as never;
}

/** Options of `tags()`: the allowed tags, `nullable`, and a default list (or a factory of one). */
export interface TagsOptions {
  readonly options?: readonly [string, ...string[]];
  readonly nullable?: boolean;
  readonly default?: readonly string[] | (() => readonly string[]);
}

type TagOf<O> = O extends { readonly options: readonly (infer V extends string)[] } ? V : string;
// A default's tags must be among the options.
type TagsDefaultFrom<O> = {
  readonly default?: readonly TagOf<O>[] | (() => readonly TagOf<O>[]);
};

// As the typed columns read their options: a loosely typed `nullable` counts as nullable, and
// only a default that is surely present makes reads non-null.
type OptionsNullable<O> = "nullable" extends keyof O
  ? O extends { readonly nullable: false }
    ? false
    : true
  : false;
type OptionsDefault<O> = O extends { readonly default: infer D }
  ? [D] extends [undefined]
    ? false
    : true
  : false;

/** A `ytext()` column: collaborative text, kept in the document as a `Y.Text`. */
export interface YTextColumn<
  Nullable extends boolean = boolean,
  HasDefault extends boolean = boolean,
> {
  readonly kind: "ytext";
  readonly nullable: Nullable;
  readonly hasDefault: HasDefault;
  readonly options: undefined;
  /** The JSON Schema of its JSON form, a string. */
  readonly jsonSchema: JsonSchema;
  /** The text a new `Y.Text` starts with; `null` without a default. */
  defaultValue(): string | null;
  /** Validates a non-null value written as a string. */
  check(value: unknown): Validated<string>;
  toJSON(value: string): string;
  fromJSON(json: unknown): unknown;
}

/** Options of `ytext()`: the default is the text a new `Y.Text` starts with. */
export interface YTextOptions {
  /** Allow `null`: `get()` returns `null` until a text is set, and after `set(null)`. */
  readonly nullable?: boolean;
  /** The text a new `Y.Text` starts with (a string: every client must create the same text). */
  readonly default?: string;
}

type IsNullable<O> = O extends { readonly nullable: true } ? true : false;
type HasDefault<O> = O extends { readonly default: string } ? true : false;

/**
 * Collaborative text: reads return the live `Y.Text` (created on first use), `set(string)` edits
 * it by the smallest character diff, and its JSON form is the string. Without `nullable` a read
 * never returns `null`.
 *
 * @example
 * const notes = ytext();
 * const draft = ytext({ nullable: true });
 */
export function ytext<O extends YTextOptions = NoOptions>(
  options?: O,
): YTextColumn<IsNullable<O>, HasDefault<O>> {
  const given: YTextOptions = options ?? {};
  if (typeof given !== "object" || given === null) {
    fail("INVALID_ARGUMENT", `ytext options must be an object, got ${describe(given)}`);
  }
  if (given.default !== undefined && typeof given.default !== "string") {
    fail(
      "INVALID_ARGUMENT",
      `the default of a ytext column is a string (every client must start from the same text), got ${describe(given.default)}`,
    );
  }
  const nullable = given.nullable === true;
  const initial = given.default;
  const schema: JsonSchema =
    initial === undefined ? { type: "string" } : { type: "string", default: initial };
  return {
    kind: "ytext",
    nullable: nullable as IsNullable<O>,
    hasDefault: (initial !== undefined) as HasDefault<O>,
    options: undefined,
    jsonSchema: nullable ? { anyOf: [schema, { type: "null" }] } : schema,
    defaultValue: () => initial ?? null,
    check: (value) =>
      typeof value === "string"
        ? { ok: true, value }
        : {
            ok: false,
            issues: [{ path: [], message: `expected a string, got ${describe(value)}` }],
          },
    toJSON: (value) => value,
    fromJSON: (json) => json,
  };
}

/** Any column of a workspace value or table field, `id()` aside. */
export type ValueColumn = AnyColumn | YTextColumn;
/** Any column of a table: a value column or the row's `id()`. */
export type FieldColumn = ValueColumn | IdColumn;

/**
 * Names of tables, fields, KV keys and actions: a letter, then letters, digits and `_`, so the
 * seed's camelCase (`lastSyncAt`) and snake_case both work and every name is safe in a URL path.
 * Names starting with `$` are reserved for the helpers' own members.
 *
 * @example
 * WORKSPACE_NAME_PATTERN.test("betaFeatures"); // true
 */
export const WORKSPACE_NAME_PATTERN = /^[a-zA-Z][a-zA-Z0-9_]*$/;

/** Workspace ids: lowercase letters, digits and `-`, up to 63 characters (a namespace and a URL segment). */
export const WORKSPACE_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** How a column lives in the document. */
export type Storage = "ytext" | "tags" | "value" | "id";

/** How `column` lives in the document: a `Y.Text`, a `Y.Array`, a plain value, or the row id. */
export function storageOf(column: FieldColumn): Storage {
  switch (column.kind) {
    case "ytext":
    case "tags":
    case "id":
      return column.kind;
    default:
      return "value";
  }
}

type Nullable<C, T> = C extends { readonly nullable: true } ? T | null : T;
type TagOfColumn<C> =
  C extends Column<infer V, unknown, boolean, boolean>
    ? V extends (infer T)[]
      ? T
      : never
    : never;

/** What a KV key's `get()` returns: the live `Y.Text` / `Y.Array`, else `T` with a default and `T | null` without. */
export type WorkspaceValue<C extends ValueColumn> = C extends YTextColumn
  ? Nullable<C, Y.Text>
  : C extends { readonly kind: "tags" }
    ? Nullable<C, Y.Array<TagOfColumn<C>>>
    : C extends AnyColumn
      ? KvValue<C>
      : never;

/** What a KV key's `set()` accepts: a string for `ytext`, an array for `tags`, `null` when nullable. */
export type WorkspaceInput<C extends ValueColumn> = C extends YTextColumn
  ? Nullable<C, string>
  : C extends AnyColumn
    ? KvInput<C>
    : never;

/** A KV key's JSON form: text as a string, tags as an array, dates as `{ date, timeZone }`. */
export type WorkspaceJson<C extends ValueColumn> = C extends YTextColumn
  ? Nullable<C, string>
  : C extends { readonly kind: "tags" }
    ? Nullable<C, TagOfColumn<C>[]>
    : C extends AnyColumn
      ? KvJson<C>
      : never;

type OutOf<C extends AnyColumn> = NonNullable<C["~types"]>["output"];
type JsonOut<T> = T extends DateWithTimeZone ? { date: string; timeZone: string } : T;

/** A field as a row read gives it: rows hold every field, so only nullable ones may be `null`. */
export type FieldValue<C extends FieldColumn> = C extends IdColumn
  ? string
  : C extends YTextColumn
    ? Nullable<C, Y.Text>
    : C extends { readonly kind: "tags" }
      ? Nullable<C, Y.Array<TagOfColumn<C>>>
      : C extends AnyColumn
        ? Nullable<C, OutOf<C>>
        : never;

/** A field as `upsert()` takes it. */
export type FieldInput<C extends FieldColumn> = C extends IdColumn
  ? string
  : C extends ValueColumn
    ? WorkspaceInput<C>
    : never;

/** A field's JSON form. */
export type FieldJson<C extends FieldColumn> = C extends IdColumn
  ? string
  : C extends YTextColumn
    ? Nullable<C, string>
    : C extends { readonly kind: "tags" }
      ? Nullable<C, TagOfColumn<C>[]>
      : C extends AnyColumn
        ? Nullable<C, JsonOut<OutOf<C>>>
        : never;

/** Whether `upsert()` of a new row must be given the field: the id, and plain fields that are neither nullable nor defaulted. */
export type IsRequired<C extends FieldColumn> = C extends IdColumn
  ? true
  : C extends YTextColumn | { readonly kind: "tags" }
    ? false
    : C extends { readonly nullable: false; readonly hasDefault: false }
      ? true
      : false;
