/**
 * Column types: what one typed key may hold. Each constructor takes `nullable` and `default`
 * (a value, copied on every use, or a factory called on every use), and its result carries the
 * value type, whether `null` is allowed and whether a default exists, so `defineKv` can type
 * `get()` and `set()` exactly.
 */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { describe, fail } from "../errors.js";
import {
  assertStandardSchema,
  type JsonSchema,
  jsonSchemaOf,
  type Validated,
  type ValidationIssue,
  validateWith,
} from "./schemas.js";

/** The kinds of value a column holds. */
export type ValueKind =
  | "text"
  | "integer"
  | "real"
  | "boolean"
  | "date"
  | "select"
  | "tags"
  | "json";

/** An instant and the IANA time zone it was observed in. */
export interface DateWithTimeZone {
  readonly date: Date;
  readonly timeZone: string;
}

/**
 * A column: the type of one typed key. `Out` is what reads return, `In` what writes accept,
 * `Nullable` whether `null` is a value, `HasDefault` whether a read of an unset key has a value.
 */
export interface Column<
  Out = unknown,
  In = Out,
  Nullable extends boolean = boolean,
  HasDefault extends boolean = boolean,
> {
  readonly kind: ValueKind;
  readonly nullable: Nullable;
  readonly hasDefault: HasDefault;
  /** The allowed values of a `select` or `tags` column. */
  readonly options: readonly string[] | undefined;
  /** The JSON Schema of the column's JSON form, with `null` when nullable and a constant default. */
  readonly jsonSchema: JsonSchema;
  /** A fresh default on every call (a factory's result, or a copy of the value); `null` without one. */
  defaultValue(): Out | null;
  /** Validates a non-null value; synchronous unless a `json` column's schema is asynchronous. */
  check(value: unknown): Validated<Out> | Promise<Validated<Out>>;
  /** The value's JSON form (dates become `{ date: ISO string, timeZone }`). */
  toJSON(value: Out): unknown;
  /** The inverse of `toJSON`, before validation. */
  fromJSON(json: unknown): unknown;
  /** Carries the value types; never set at run time. */
  readonly "~types"?: { readonly output: Out; readonly input: In };
}

/** Any column, for constraints. */
// biome-ignore lint/suspicious/noExplicitAny: a constraint must accept every column's value types
export type AnyColumn = Column<any, any, boolean, boolean>;

/** `id()`: a row identifier, meaningful in tables only. `defineKv` refuses it. */
export interface IdColumn {
  readonly kind: "id";
}

/** Options every column takes. */
export interface ColumnOptions<T> {
  /** Allow `null` as a value (default false). */
  readonly nullable?: boolean;
  /** What reads return while the key is unset: a value (copied per read) or a factory. */
  readonly default?: T | (() => T);
}

type NoOptions = Record<never, never>;
// An options object typed loosely (`nullable?: boolean`) may allow null: count it as nullable.
type IsNullable<O> = "nullable" extends keyof O
  ? O extends { readonly nullable: false }
    ? false
    : true
  : false;
// Only a default that is surely present makes reads non-null.
type HasDefault<O> = O extends { readonly default: infer D }
  ? [D] extends [undefined]
    ? false
    : true
  : false;

interface Spec<T> {
  readonly kind: ValueKind;
  readonly jsonSchema: JsonSchema;
  readonly options?: readonly string[];
  check(value: unknown): Validated<T> | Promise<Validated<T>>;
  toJSON?(value: T): unknown;
  fromJSON?(json: unknown): unknown;
}

const ok = <T>(value: T): Validated<T> => ({ ok: true, value });
const refuse = (message: string, path: readonly (string | number)[] = []): Validated<never> => ({
  ok: false,
  issues: [{ path, message }],
});

// biome-ignore lint/suspicious/noExplicitAny: each constructor states its exact column type
type Untyped = Column<any, any, any, any>;

function makeColumn<T>(spec: Spec<T>, options: ColumnOptions<T> = {}): Untyped {
  if (typeof options !== "object" || options === null) {
    fail("INVALID_ARGUMENT", `column options must be an object, got ${describe(options)}`);
  }
  const nullable = options.nullable === true;
  const given = options.default;
  const toJSON = spec.toJSON ?? ((value: T) => value);
  let schema = spec.jsonSchema;
  if (given !== undefined && typeof given !== "function") {
    assertValidDefault(spec, given);
    schema = { ...schema, default: toJSON(given) };
  }
  return {
    kind: spec.kind,
    nullable,
    hasDefault: given !== undefined,
    options: spec.options,
    jsonSchema: nullable ? { anyOf: [schema, { type: "null" }] } : schema,
    defaultValue: () => {
      if (given === undefined) return null;
      return typeof given === "function" ? (given as () => T)() : structuredClone(given);
    },
    check: (value) => spec.check(value),
    toJSON,
    fromJSON: spec.fromJSON ?? ((json) => json),
  };
}

function assertValidDefault<T>(spec: Spec<T>, value: unknown): void {
  const result =
    value === null
      ? refuse("null is not a default: make the column nullable and leave the default out")
      : spec.check(value);
  if (result instanceof Promise || result.ok) return;
  fail(
    "INVALID_ARGUMENT",
    `the default of this ${spec.kind} column does not validate: ${result.issues.map((i) => i.message).join("; ")}`,
  );
}

/**
 * Validates a value for a column, `null` included.
 *
 * @example
 * validateColumn(text({ nullable: true }), null); // { ok: true, value: null }
 */
export function validateColumn<Out>(
  column: Column<Out>,
  value: unknown,
): Validated<Out | null> | Promise<Validated<Out | null>> {
  if (value === null || value === undefined) {
    return column.nullable ? ok(null) : refuse(`expected a value, got ${describe(value)}`);
  }
  return column.check(value);
}

/**
 * A string.
 *
 * @example
 * const theme = text({ default: "light" });
 */
export function text<O extends ColumnOptions<string> = NoOptions>(
  options?: O,
): Column<string, string, IsNullable<O>, HasDefault<O>> {
  return makeColumn<string>(
    {
      kind: "text",
      jsonSchema: { type: "string" },
      check: (value) =>
        typeof value === "string" ? ok(value) : refuse(`expected a string, got ${describe(value)}`),
    },
    options,
  );
}

/**
 * A safe integer (|n| ≤ 2^53 − 1).
 *
 * @example
 * const pageSize = integer({ default: 20 });
 */
export function integer<O extends ColumnOptions<number> = NoOptions>(
  options?: O,
): Column<number, number, IsNullable<O>, HasDefault<O>> {
  return makeColumn<number>(
    {
      kind: "integer",
      jsonSchema: { type: "integer" },
      check: (value) =>
        Number.isSafeInteger(value)
          ? ok(value as number)
          : refuse(`expected a safe integer, got ${describe(value)}`),
    },
    options,
  );
}

/**
 * A finite number.
 *
 * @example
 * const ratio = real({ default: 1.5 });
 */
export function real<O extends ColumnOptions<number> = NoOptions>(
  options?: O,
): Column<number, number, IsNullable<O>, HasDefault<O>> {
  return makeColumn<number>(
    {
      kind: "real",
      jsonSchema: { type: "number" },
      check: (value) =>
        typeof value === "number" && Number.isFinite(value)
          ? ok(value)
          : refuse(`expected a finite number, got ${describe(value)}`),
    },
    options,
  );
}

/**
 * `true` or `false`.
 *
 * @example
 * const beta = boolean({ default: false });
 */
export function boolean<O extends ColumnOptions<boolean> = NoOptions>(
  options?: O,
): Column<boolean, boolean, IsNullable<O>, HasDefault<O>> {
  return makeColumn<boolean>(
    {
      kind: "boolean",
      jsonSchema: { type: "boolean" },
      check: (value) =>
        typeof value === "boolean"
          ? ok(value)
          : refuse(`expected a boolean, got ${describe(value)}`),
    },
    options,
  );
}

const zones = new Map<string, boolean>();

function isTimeZone(name: string): boolean {
  let known = zones.get(name);
  if (known === undefined) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: name });
      known = true;
    } catch {
      known = false;
    }
    if (zones.size < 1000) zones.set(name, known);
  }
  return known;
}

/**
 * An instant with its time zone, for `date` columns. The zone defaults to this process's.
 *
 * @example
 * await settings.last_sync.set(dateWithTimeZone(new Date(), "Europe/Paris"));
 */
export function dateWithTimeZone(
  date: Date | string | number,
  timeZone?: string,
): DateWithTimeZone {
  const zone = timeZone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  const checked = checkDate({
    date: date instanceof Date ? new Date(date.getTime()) : new Date(date),
    timeZone: zone,
  });
  if (!checked.ok) fail("INVALID_ARGUMENT", checked.issues.map((i) => i.message).join("; "));
  return checked.value;
}

function checkDate(value: unknown): Validated<DateWithTimeZone> {
  if (typeof value !== "object" || value === null) {
    return refuse(`expected { date, timeZone }, got ${describe(value)}`);
  }
  const { date, timeZone } = value as Partial<DateWithTimeZone>;
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    return refuse(`expected a valid Date, got ${describe(date)}`, ["date"]);
  }
  if (typeof timeZone !== "string" || !isTimeZone(timeZone)) {
    return refuse(`expected an IANA time zone, got ${describe(timeZone)}`, ["timeZone"]);
  }
  return ok({ date: new Date(date.getTime()), timeZone });
}

/**
 * An instant with its time zone: `{ date: Date, timeZone: "Europe/Paris" }`. Its JSON form is
 * `{ "date": "2025-01-01T10:00:00.000Z", "timeZone": "Europe/Paris" }`.
 *
 * @example
 * const lastSync = date({ nullable: true });
 */
export function date<O extends ColumnOptions<DateWithTimeZone> = NoOptions>(
  options?: O,
): Column<DateWithTimeZone, DateWithTimeZone, IsNullable<O>, HasDefault<O>> {
  return makeColumn<DateWithTimeZone>(
    {
      kind: "date",
      jsonSchema: {
        type: "object",
        properties: { date: { type: "string", format: "date-time" }, timeZone: { type: "string" } },
        required: ["date", "timeZone"],
        additionalProperties: false,
      },
      check: checkDate,
      toJSON: (value) => ({ date: value.date.toISOString(), timeZone: value.timeZone }),
      fromJSON: (json) => {
        if (typeof json !== "object" || json === null) return json;
        const { date: when, timeZone } = json as { date?: unknown; timeZone?: unknown };
        return { date: typeof when === "string" ? new Date(when) : when, timeZone };
      },
    },
    options,
  );
}

function assertOptions(values: unknown, kind: string): readonly string[] {
  if (
    !Array.isArray(values) ||
    values.length === 0 ||
    !values.every((v) => typeof v === "string")
  ) {
    fail(
      "INVALID_ARGUMENT",
      `${kind}({ options }) takes a non-empty array of strings, got ${describe(values)}`,
    );
  }
  if (new Set(values).size !== values.length) {
    fail("INVALID_ARGUMENT", `${kind} options must be distinct`);
  }
  return Object.freeze([...values]);
}

/**
 * One of a fixed set of strings.
 *
 * @example
 * const theme = select({ options: ["light", "dark", "system"], default: "system" });
 */
export function select<const V extends string, O extends ColumnOptions<NoInfer<V>> = NoOptions>(
  options: { readonly options: readonly [V, ...V[]] } & O,
): Column<V, V, IsNullable<O>, HasDefault<O>> {
  const allowed = assertOptions(options?.options, "select");
  return makeColumn<V>(
    {
      kind: "select",
      options: allowed,
      jsonSchema: { type: "string", enum: [...allowed] },
      check: (value) =>
        typeof value === "string" && allowed.includes(value)
          ? ok(value as V)
          : refuse(
              `expected one of ${allowed.map((o) => JSON.stringify(o)).join(", ")}, got ${describe(value)}`,
            ),
    },
    options,
  );
}

/**
 * A list of distinct strings, from `options` when given.
 *
 * @example
 * const labels = tags({ options: ["work", "home"], default: [] });
 */
export function tags<
  const V extends string = string,
  O extends ColumnOptions<NoInfer<V>[]> = NoOptions,
>(
  options?: { readonly options?: readonly [V, ...V[]] } & O,
): Column<V[], V[], IsNullable<O>, HasDefault<O>> {
  const allowed =
    options?.options === undefined ? undefined : assertOptions(options.options, "tags");
  const items: JsonSchema = allowed ? { type: "string", enum: [...allowed] } : { type: "string" };
  return makeColumn<V[]>(
    {
      kind: "tags",
      ...(allowed && { options: allowed }),
      jsonSchema: { type: "array", items, uniqueItems: true },
      check: (value) => checkTags(value, allowed) as Validated<V[]>,
    },
    options ?? {},
  );
}

function checkTags(value: unknown, allowed: readonly string[] | undefined): Validated<string[]> {
  if (!Array.isArray(value)) return refuse(`expected an array of strings, got ${describe(value)}`);
  const issues: ValidationIssue[] = [];
  const seen = new Set<string>();
  value.forEach((tag, i) => {
    if (typeof tag !== "string") {
      issues.push({ path: [i], message: `expected a string, got ${describe(tag)}` });
    } else if (allowed && !allowed.includes(tag)) {
      issues.push({ path: [i], message: `${JSON.stringify(tag)} is not an option` });
    } else if (seen.has(tag)) {
      issues.push({ path: [i], message: `${JSON.stringify(tag)} is repeated` });
    } else seen.add(tag);
  });
  return issues.length > 0 ? { ok: false, issues } : ok([...(value as string[])]);
}

/**
 * Any value a Standard Schema (zod, valibot, arktype…) accepts; reads and writes are typed by
 * the schema. Stored values are validated again on every read, so the schema should accept its
 * own output.
 *
 * @example
 * const prefs = json({ schema: z.object({ fontSize: z.number() }), default: { fontSize: 14 } });
 */
export function json<
  S extends StandardSchemaV1,
  O extends ColumnOptions<StandardSchemaV1.InferOutput<NoInfer<S>>> = NoOptions,
>(
  options: { readonly schema: S } & O,
): Column<
  StandardSchemaV1.InferOutput<S>,
  StandardSchemaV1.InferInput<S>,
  IsNullable<O>,
  HasDefault<O>
> {
  const schema: unknown = options?.schema;
  assertStandardSchema(schema, "json({ schema })");
  return makeColumn<StandardSchemaV1.InferOutput<S>>(
    {
      kind: "json",
      jsonSchema: jsonSchemaOf(schema),
      check: (value) => validateWith(schema as S, value),
    },
    options,
  );
}

/**
 * A row identifier. Typed keys are identified by their names, so `defineKv` refuses it.
 *
 * @example
 * defineKv(kv, { id: id() }); // throws INVALID_ARGUMENT (and does not compile)
 */
export function id(): IdColumn {
  return { kind: "id" };
}
