/**
 * Typed singleton values: `defineKv(kv, { theme: text({ default: "light" }) })` gives one typed
 * helper per name. Each value is one key of the given `Kv` (`[...prefix, name]`), so typed values
 * share versionstamps, watch, history, atomic operations and transactions with plain keys.
 * Reads are always from the database (there is no replica to go stale); a stored value that no
 * longer validates reads as the default and is reported, never thrown and never overwritten.
 */
import type { KvKey } from "../codec/key.js";
import { AtomicOperation } from "../core/atomic.js";
import type { Kv } from "../core/kv.js";
import { KvTransaction } from "../core/transaction.js";
import type { KvWriteInfo } from "../core/types.js";
import { describe, fail } from "../errors.js";
import type { AnyColumn, DateWithTimeZone } from "./columns.js";
import { validateColumn } from "./columns.js";
import { assertSameTarget, type KeyRef } from "./compose.js";
import {
  type InvalidValueHandler,
  type Validated,
  ValidationError,
  warnInvalidValue,
} from "./schemas.js";

/**
 * Names of typed keys and stores: a lowercase letter, then letters, digits and `_`, so both
 * camelCase and snake_case work. A leading `$` stays free for the helpers' own methods, and the
 * ASCII-only alphabet keeps names usable unescaped in URL paths and OpenAPI component names.
 *
 * @example
 * NAME_PATTERN.test("lastSyncAt"); // true
 */
export const NAME_PATTERN = /^[a-z][a-zA-Z0-9_]*$/;

/** The naming rule, as error messages state it. */
export const NAME_RULE = `a name starts with a lowercase letter and goes on with letters, digits or "_" (${NAME_PATTERN}), like lastSyncAt or last_sync`;

/** A KV definition: typed key names to columns. */
export type KvDefinition = { readonly [name: string]: AnyColumn };

type OutOf<C extends AnyColumn> = NonNullable<C["~types"]>["output"];
type InOf<C extends AnyColumn> = NonNullable<C["~types"]>["input"];
type WithNull<C extends AnyColumn, T> = C["hasDefault"] extends true
  ? C["nullable"] extends true
    ? T | null
    : T
  : T | null;

/** What `get()` returns: `T` with a default, `T | null` when nullable or without a default. */
export type KvValue<C extends AnyColumn> = WithNull<C, OutOf<C>>;
/** What `set()` accepts: `T`, or `T | null` when nullable. */
export type KvInput<C extends AnyColumn> = C["nullable"] extends true ? InOf<C> | null : InOf<C>;
/** What a write stores: `T`, or `T | null` when nullable. */
export type KvStored<C extends AnyColumn> = C["nullable"] extends true ? OutOf<C> | null : OutOf<C>;
/** The JSON form of a value: dates as `{ date: ISO string, timeZone }`. */
export type KvJson<C extends AnyColumn> = WithNull<
  C,
  OutOf<C> extends DateWithTimeZone ? { date: string; timeZone: string } : OutOf<C>
>;

/** Typed writes joined to an atomic operation: validated now, committed with the operation. */
export interface TypedValueWriter<C extends AnyColumn> {
  set(value: KvInput<C>, info?: KvWriteInfo): this;
  /** Deletes the key, so reads return the default again. */
  reset(info?: KvWriteInfo): this;
}

/** Typed reads and writes inside a transaction: reads are tracked, writes buffered. */
export interface TypedValueInTransaction<C extends AnyColumn> extends TypedValueWriter<C> {
  get(): Promise<KvValue<C>>;
}

/** One typed key of a `defineKv` definition. */
export interface TypedValue<C extends AnyColumn = AnyColumn> extends KeyRef<KvValue<C>> {
  readonly name: string;
  readonly column: C;
  /** The stored value, or the default (a fresh copy) when unset or no longer valid. */
  get(): Promise<KvValue<C>>;
  /** Validates and writes; resolves to the stored value. Throws `ValidationError` (`INVALID_VALUE`). */
  set(value: KvInput<C>, info?: KvWriteInfo): Promise<KvStored<C>>;
  /** Deletes the key; resolves to what reads now return (the default, or `null`). */
  reset(info?: KvWriteInfo): Promise<KvValue<C>>;
  /**
   * Calls `callback` with the current value, then after every change (including a reset or an
   * expiry), until the returned function is called or the database closes.
   */
  observe(callback: (value: KvValue<C>) => void): () => void;
  /** The value's JSON form, as `$toJSON()` and the HTTP API give it. */
  toJSON(value: KvValue<C>): KvJson<C>;
  /** This key's writes (and, in a transaction, reads) as part of `target`'s commit. */
  in(target: AtomicOperation): TypedValueWriter<C>;
  in(target: KvTransaction): TypedValueInTransaction<C>;
}

type Values<D extends KvDefinition> = { [K in keyof D & string]: TypedValue<D[K]> };

/** The helpers `defineKv` returns: one per name, plus `$`-prefixed ones for the whole definition. */
export type TypedKv<D extends KvDefinition> = Readonly<Values<D>> & {
  /** The view the values live in. */
  readonly $kv: Kv;
  readonly $definition: D;
  /** Every typed value, in definition order. */
  $all(): Values<D>[keyof D & string][];
  /** Every value, read in one snapshot. */
  $get(): Promise<{ [K in keyof D & string]: KvValue<D[K]> }>;
  /** Every value's JSON form, read in one snapshot. */
  $toJSON(): Promise<{ [K in keyof D & string]: KvJson<D[K]> }>;
};

export interface DefineKvOptions {
  /** Where the values live: name `theme` is key `[...prefix, "theme"]` (default `["$kv"]`). */
  readonly prefix?: KvKey;
  /** Receives stored values that no longer validate (default: a process warning per value). */
  readonly onInvalid?: InvalidValueHandler;
}

/** `$` names, and names of `Object.prototype` members, which a typed value would shadow. */
type Reserved = `$${string}` | keyof typeof Object.prototype;
type ReservedNames<D> = { readonly [K in keyof D as K extends Reserved ? K : never]: never };

/**
 * Types a set of singleton keys of `kv` (the root or a namespace). Names match
 * `/^[a-z][a-zA-Z0-9_]*$/` (camelCase or snake_case); `$`-prefixed names and those of
 * `Object.prototype` members are reserved, and `id()` is refused.
 *
 * @example
 * const settings = defineKv(kv, {
 *   theme: select({ options: ["light", "dark"], default: "light" }),
 *   last_sync: date({ nullable: true }),
 * });
 * await settings.theme.set("dark");
 * const theme = await settings.theme.get(); // "light" | "dark"
 */
export function defineKv<D extends KvDefinition>(
  kv: Kv,
  definition: D & ReservedNames<D>,
  options: DefineKvOptions = {},
): TypedKv<D> {
  assertDefinition(definition);
  const prefix = options.prefix ?? ["$kv"];
  if (!Array.isArray(prefix)) {
    fail("INVALID_ARGUMENT", `prefix must be a key (an array of parts), got ${describe(prefix)}`);
  }
  const onInvalid = options.onInvalid ?? warnInvalidValue;
  const values = Object.entries(definition).map(
    ([name, column]) => new TypedValueImpl(kv, name, column, [...prefix, name], onInvalid),
  );
  const typed: Record<string, unknown> = Object.fromEntries(
    values.map((value) => [value.name, value]),
  );
  const readAll = async () => {
    const entries = await kv.getMany(values.map((v) => v.key));
    return Promise.all(values.map((value, i) => value.decode(entries[i]!)));
  };
  Object.assign(typed, {
    $kv: kv,
    $definition: definition,
    $all: () => [...values],
    $get: async () => {
      const read = await readAll();
      return Object.fromEntries(values.map((value, i) => [value.name, read[i]]));
    },
    $toJSON: async () => {
      const read = await readAll();
      return Object.fromEntries(values.map((value, i) => [value.name, value.toJSON(read[i])]));
    },
  });
  return Object.freeze(typed) as TypedKv<D>;
}

/**
 * Throws `INVALID_ARGUMENT` unless `definition` is a valid KV definition: used by `defineKv`,
 * and by the server for its workspaces before any request.
 *
 * @example
 * assertDefinition({ Theme: text() }); // throws: a name starts with a lowercase letter…
 */
export function assertDefinition(definition: unknown): asserts definition is KvDefinition {
  if (typeof definition !== "object" || definition === null || Array.isArray(definition)) {
    fail(
      "INVALID_ARGUMENT",
      `a KV definition is an object of columns, got ${describe(definition)}`,
    );
  }
  for (const [name, column] of Object.entries(definition)) {
    if (name.startsWith("$"))
      fail(
        "INVALID_ARGUMENT",
        `typed key ${JSON.stringify(name)}: names starting with "$" are reserved`,
      );
    if (!NAME_PATTERN.test(name)) {
      fail("INVALID_ARGUMENT", `typed key ${JSON.stringify(name)}: ${NAME_RULE}`);
    }
    // The helpers object would hide toString, valueOf, hasOwnProperty… behind a typed value.
    if (name in Object.prototype) {
      fail(
        "INVALID_ARGUMENT",
        `typed key ${JSON.stringify(name)}: names of Object.prototype members are reserved`,
      );
    }
    const kind = (column as { kind?: unknown } | null)?.kind;
    if (kind === "id") {
      fail(
        "INVALID_ARGUMENT",
        `typed key ${JSON.stringify(name)}: id() is for table rows; a typed key is identified by its name`,
      );
    }
    if (typeof (column as { check?: unknown } | null)?.check !== "function") {
      fail(
        "INVALID_ARGUMENT",
        `typed key ${JSON.stringify(name)} must be a column (text(), integer()…), got ${describe(column)}`,
      );
    }
  }
}

/**
 * Returns a synchronous validation's value, or throws: `ValidationError` when it failed,
 * `INVALID_ARGUMENT` when the schema is asynchronous (a write joined to a commit cannot wait).
 *
 * @example
 * validatedNow(validateWith(z.number(), 1), "count"); // 1
 */
export function validatedNow<T>(result: Validated<T> | Promise<Validated<T>>, subject: string): T {
  if (result instanceof Promise) {
    result.catch(() => {});
    fail(
      "INVALID_ARGUMENT",
      `${subject} has an asynchronous schema: write it with set(), not as part of a commit`,
    );
  }
  if (!result.ok) throw new ValidationError(subject, result.issues);
  return result.value;
}

class TypedValueImpl<C extends AnyColumn> implements TypedValue<C> {
  readonly #subject: string;

  constructor(
    readonly kv: Kv,
    readonly name: string,
    readonly column: C,
    readonly key: KvKey,
    private readonly onInvalid: InvalidValueHandler,
  ) {
    this.#subject = `typed key ${JSON.stringify(name)}`;
  }

  async get(): Promise<KvValue<C>> {
    return this.decode(await this.kv.get(this.key));
  }

  async set(value: KvInput<C>, info: KvWriteInfo = {}): Promise<KvStored<C>> {
    const result = await validateColumn(this.column, value);
    if (!result.ok) throw new ValidationError(this.#subject, result.issues);
    await this.kv.set(this.key, result.value, info);
    return result.value as KvStored<C>;
  }

  async reset(info: KvWriteInfo = {}): Promise<KvValue<C>> {
    await this.kv.delete(this.key, info);
    return this.#fallback();
  }

  observe(callback: (value: KvValue<C>) => void): () => void {
    if (typeof callback !== "function") {
      fail("INVALID_ARGUMENT", `observe takes a function, got ${describe(callback)}`);
    }
    const reader = this.kv.watch([this.key]).getReader();
    let active = true;
    // A write that leaves the value as it was (a reset to the default it already had) is no change.
    let last: string | undefined;
    const pump = async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || !active) return;
        const decoded = await this.decode(value[0]);
        const seen = JSON.stringify(this.toJSON(decoded));
        if (active && seen !== last) {
          last = seen;
          notify(callback, decoded);
        }
      }
    };
    pump().catch(() => {
      active = false;
    });
    return () => {
      active = false;
      reader.cancel().catch(() => {});
    };
  }

  toJSON(value: KvValue<C>): KvJson<C> {
    return (value === null ? null : this.column.toJSON(value)) as KvJson<C>;
  }

  async decode(entry: {
    readonly value: unknown;
    readonly versionstamp: string | null;
  }): Promise<KvValue<C>> {
    if (entry.versionstamp === null && entry.value === null) return this.#fallback();
    const result = await validateColumn(this.column, entry.value);
    if (result.ok) return result.value as KvValue<C>;
    this.onInvalid({
      key: this.key,
      name: this.name,
      value: entry.value,
      versionstamp: entry.versionstamp,
      issues: result.issues,
    });
    return this.#fallback();
  }

  in(target: AtomicOperation): TypedValueWriter<C>;
  in(target: KvTransaction): TypedValueInTransaction<C>;
  in(target: AtomicOperation | KvTransaction): TypedValueWriter<C> | TypedValueInTransaction<C> {
    if (!(target instanceof AtomicOperation) && !(target instanceof KvTransaction)) {
      fail(
        "INVALID_ARGUMENT",
        `in() takes an atomic operation or a transaction, got ${describe(target)}`,
      );
    }
    assertSameTarget(this.kv, target, this.#subject);
    const writer = {
      set: (value: KvInput<C>, info: KvWriteInfo = {}) => {
        target.set(this.key, validatedNow(validateColumn(this.column, value), this.#subject), info);
        return writer;
      },
      reset: (info?: KvWriteInfo) => {
        target.delete(this.key, info);
        return writer;
      },
      get: async () => {
        if (!(target instanceof KvTransaction)) {
          fail("INVALID_ARGUMENT", "get() inside in() needs a transaction");
        }
        return this.decode(await target.get(this.key));
      },
    };
    return writer;
  }

  #fallback(): KvValue<C> {
    return this.column.defaultValue() as KvValue<C>;
  }
}

/** Runs an observer; an observer that throws is a bug of the caller, surfaced like an uncaught error. */
function notify<T>(callback: (value: T) => void, value: T): void {
  try {
    callback(value);
  } catch (error) {
    setImmediate(() => {
      throw error;
    });
  }
}
