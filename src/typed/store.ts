/**
 * Typed stores: a named collection of entries validated by a Standard Schema. Entry `id` of
 * store `name` is key `[name, id]`, stored as an envelope `{ v, s, n }`: the validated value,
 * the hash of the schema that validated it and that schema's version. The envelope is part of
 * the value rather than of the entry's tags because it must travel with every write path
 * (`set`, atomic operations, transactions) and be seen by every read without asking for
 * metadata; tags are replaced by any write that passes its own.
 */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import type { KvKey } from "../codec/key.js";
import { AtomicOperation } from "../core/atomic.js";
import type { Kv } from "../core/kv.js";
import { coreOf } from "../core/surface.js";
import { KvTransaction } from "../core/transaction.js";
import type { KvEntryMaybe, KvSetOptions, KvWriteInfo } from "../core/types.js";
import type { KvWhere } from "../core/where/compile.js";
import { describe, fail, KvError } from "../errors.js";
import { assertSameTarget, type KeyRef } from "./compose.js";
import { NAME_PATTERN, NAME_RULE, validatedNow } from "./define-kv.js";
import {
  assertStandardSchema,
  type InvalidValueHandler,
  identify,
  type JsonSchema,
  jsonSchemaOf,
  type Migration,
  type MigrationSource,
  Migrations,
  registerSchema,
  type SchemaIdentity,
  ValidationError,
  type ValidationIssue,
  validateWith,
  warnInvalidValue,
} from "./schemas.js";

/** One entry of a store. */
export interface StoreEntry<T> {
  readonly id: string;
  readonly value: T;
  readonly versionstamp: string;
}

/** One page of `list`: `cursor` resumes after it, `null` on the last page. */
export interface StorePage<T> {
  readonly entries: StoreEntry<T>[];
  readonly cursor: string | null;
}

export interface StoreListOptions {
  /** Only ids starting with this string. */
  readonly prefix?: string;
  /** Entries per page (default 100, at most 1000). */
  readonly limit?: number;
  readonly cursor?: string;
  /**
   * Only entries whose value matches this where filter (see `kv.list`), on fields of the value as
   * stored: an entry written under an older schema version is matched in its stored shape.
   */
  readonly where?: KvWhere;
}

export interface StoreOptions {
  /** The schema's version (default 1). Bump it and `migrate(previous, fn)` when the shape changes. */
  readonly version?: number;
  /** The schema as JSON Schema, when its library cannot export one (or to replace the export). */
  readonly jsonSchema?: JsonSchema;
  /** Write entries upgraded by a read back to the database (default false: reads never write). */
  readonly writeBack?: boolean;
  /** Receives stored entries that no longer validate (default: a process warning per entry). */
  readonly onInvalid?: InvalidValueHandler;
}

/** A store's writes joined to an atomic operation: validated now, committed with it. */
export interface StoreWriter<In> {
  set(id: string, value: In, options?: KvSetOptions): this;
  delete(id: string, info?: KvWriteInfo): this;
  /** Adds a check that entry `id` is at `versionstamp` (`null`: absent). */
  check(id: string, versionstamp: string | null): this;
}

/** A store's reads and writes inside a transaction: reads are tracked, writes buffered. */
export interface StoreInTransaction<In, Out> extends StoreWriter<In> {
  get(id: string): Promise<Out | null>;
}

/** A store's name, schema and migrations, not yet bound to a `Kv` (the server binds it per request). */
export interface TypedStoreDefinition<In, Out = In> {
  readonly name: string;
  readonly schema: StandardSchemaV1<In, Out>;
  /** SHA-256 of the canonical JSON of `{ jsonSchema, version }`: recorded by every entry written. */
  readonly schemaHash: string;
  readonly version: number;
  /** The JSON Schema of stored values (what reads return). */
  readonly jsonSchema: JsonSchema;
  /** The JSON Schema of what writes accept. */
  readonly inputJsonSchema: JsonSchema;
  /**
   * Registers an upgrade: from a version `n`, `fn` returns the shape of version `n + 1` (steps
   * chain); from a schema hash, `fn` returns the current shape. Applies to every view of the store.
   */
  migrate<Old = unknown>(from: MigrationSource, fn: Migration<Old>): this;
  /** The store on a view (the root, or a namespace), sharing schema, migrations and options. */
  bind(kv: Kv): TypedStore<In, Out>;
}

/** A typed store bound to one `Kv` view. */
export interface TypedStore<In, Out = In> extends TypedStoreDefinition<In, Out> {
  readonly kv: Kv;
  /** The key of entry `id`. */
  key(id: string): KvKey;
  /** Validates and writes; resolves to the stored entry. Throws `ValidationError` (`INVALID_VALUE`). */
  set(id: string, value: In, options?: KvSetOptions): Promise<StoreEntry<Out>>;
  /** The entry's value in the current shape, or `null` when absent or no longer valid. */
  get(id: string): Promise<Out | null>;
  /** `get` with the entry's versionstamp, for checks. */
  getEntry(id: string): Promise<StoreEntry<Out> | null>;
  delete(id: string, info?: KvWriteInfo): Promise<void>;
  /** One page of entries in id order; entries that no longer validate are reported and left out. */
  list(options?: StoreListOptions): Promise<StorePage<Out>>;
  /** The entry's value now, then after every change; `null` when absent. */
  watch(id: string): ReadableStream<Out | null>;
  /** Entry `id` as a source for `compose`. */
  ref(id: string): KeyRef<Out | null>;
  in(target: AtomicOperation): StoreWriter<In>;
  in(target: KvTransaction): StoreInTransaction<In, Out>;
}

/** Any store or store definition, for collections of stores. */
// biome-ignore lint/suspicious/noExplicitAny: a collection holds stores of every value type
export type AnyStore = TypedStoreDefinition<any, any>;

interface Envelope {
  readonly v: unknown;
  readonly s: string;
  readonly n: number;
}

const HASH = /^[0-9a-f]{64}$/;
// The largest code point: `prefix + MAX_CHAR` bounds every id that starts with `prefix`.
const MAX_CHAR = "\u{10FFFF}";

/** Everything a store's views share. */
class StoreDefinition<In, Out> {
  readonly identity: SchemaIdentity;
  readonly inputJsonSchema: JsonSchema;
  readonly migrations: Migrations;
  readonly #registered = new WeakMap<object, Promise<void>>();

  constructor(
    readonly name: string,
    readonly schema: StandardSchemaV1<In, Out>,
    readonly options: StoreOptions,
  ) {
    const version = options.version ?? 1;
    if (!Number.isSafeInteger(version) || version < 1) {
      fail(
        "INVALID_ARGUMENT",
        `a store version is a positive integer, got ${describe(options.version)}`,
      );
    }
    this.identity = identify(schema, version, options.jsonSchema);
    this.inputJsonSchema = options.jsonSchema ?? jsonSchemaOf(schema, "input");
    this.migrations = new Migrations(() => version);
  }

  /** Records the schema in the `$schemas` registry, once per database; never fails a write. */
  register(kv: Kv): Promise<void> {
    const db = coreOf(kv).core;
    let pending = this.#registered.get(db);
    if (!pending) {
      pending = registerSchema(kv, this.name, this.identity).catch((error: unknown) => {
        this.#registered.delete(db);
        if (error instanceof KvError && error.code === "DATABASE_CLOSED") return;
        process.emitWarning(
          `store ${this.name}: its schema could not be registered: ${(error as Error).message}`,
          {
            code: "CELLAR_SCHEMA_REGISTRATION",
          },
        );
      });
      this.#registered.set(db, pending);
    }
    return pending;
  }

  envelope(value: Out): Envelope {
    return { v: value, s: this.identity.hash, n: this.identity.version };
  }
}

type In<S extends StandardSchemaV1> = StandardSchemaV1.InferInput<S>;
type Out<S extends StandardSchemaV1> = StandardSchemaV1.InferOutput<S>;

/**
 * A typed store named `name` in `kv`: entries `[name, id]` validated by `schema`, any Standard
 * Schema (zod 4, valibot 1, arktype 2…). Names match `/^[a-z][a-zA-Z0-9_]*$/`. The schema is
 * registered in the `$schemas` registry under its hash. Without `kv`, returns the definition
 * alone, to `bind(kv)` later or hand to the server.
 *
 * @example
 * const prefs = defineStore(kv, "user_prefs", z.object({ theme: z.enum(["light", "dark"]) }));
 * await prefs.set("ada", { theme: "dark" }, { expireIn: 86_400_000 });
 * const ada = await prefs.get("ada"); // { theme: "light" | "dark" } | null
 */
export function defineStore<S extends StandardSchemaV1>(
  kv: Kv,
  name: string,
  schema: S,
  options?: StoreOptions,
): TypedStore<In<S>, Out<S>>;
export function defineStore<S extends StandardSchemaV1>(
  name: string,
  schema: S,
  options?: StoreOptions,
): TypedStoreDefinition<In<S>, Out<S>>;
export function defineStore<S extends StandardSchemaV1>(
  ...args: [Kv, string, S, StoreOptions?] | [string, S, StoreOptions?]
): TypedStoreDefinition<In<S>, Out<S>> {
  const [kv, name, schema, options = {}] = typeof args[0] === "string" ? [null, ...args] : args;
  if (typeof name !== "string" || name.startsWith("$")) {
    fail("INVALID_ARGUMENT", `store ${describe(name)}: names starting with "$" are reserved`);
  }
  if (!NAME_PATTERN.test(name)) {
    fail("INVALID_ARGUMENT", `store ${JSON.stringify(name)}: ${NAME_RULE}`);
  }
  assertStandardSchema(schema, `store ${name}'s schema`);
  const definition = new StoreDefinition<In<S>, Out<S>>(
    name,
    schema as StandardSchemaV1<In<S>, Out<S>>,
    options as StoreOptions,
  );
  return kv ? new TypedStoreImpl(definition, kv as Kv) : new UnboundStore(definition);
}

/**
 * The value a store's entry holds, as its readers see it before decoding: the value inside the
 * envelope the store writes, or a value stored plainly (before the store wrapped its writes).
 *
 * @example
 * storedValue({ v: { theme: "dark" }, s: "<64 hex>", n: 1 }); // { theme: "dark" }
 */
export function storedValue(stored: unknown): unknown {
  const envelope = asEnvelope(stored);
  return envelope ? envelope.v : stored;
}

function asEnvelope(value: unknown): Envelope | null {
  if (typeof value !== "object" || value === null) return null;
  if (Object.getPrototypeOf(value) !== Object.prototype || Object.keys(value).length !== 3) {
    return null;
  }
  if (!("v" in value && "s" in value && "n" in value)) return null;
  const { s, n } = value as Envelope;
  return typeof s === "string" && HASH.test(s) && Number.isSafeInteger(n)
    ? (value as Envelope)
    : null;
}

function assertId(id: unknown): asserts id is string {
  if (typeof id !== "string" || id.length === 0 || id.includes(MAX_CHAR)) {
    fail("INVALID_KEY", `a store id is a non-empty string without U+10FFFF, got ${describe(id)}`);
  }
}

type Decoded<Out> = { readonly value: Out; readonly current: boolean } | null;

class UnboundStore<In, Out> implements TypedStoreDefinition<In, Out> {
  constructor(protected readonly definition: StoreDefinition<In, Out>) {}

  get name(): string {
    return this.definition.name;
  }

  get schema(): StandardSchemaV1<In, Out> {
    return this.definition.schema;
  }

  get schemaHash(): string {
    return this.definition.identity.hash;
  }

  get version(): number {
    return this.definition.identity.version;
  }

  get jsonSchema(): JsonSchema {
    return this.definition.identity.jsonSchema;
  }

  get inputJsonSchema(): JsonSchema {
    return this.definition.inputJsonSchema;
  }

  migrate<Old = unknown>(from: MigrationSource, fn: Migration<Old>): this {
    this.definition.migrations.add(from, fn as Migration);
    return this;
  }

  bind(kv: Kv): TypedStore<In, Out> {
    return new TypedStoreImpl(this.definition, kv);
  }
}

class TypedStoreImpl<In, Out> extends UnboundStore<In, Out> implements TypedStore<In, Out> {
  constructor(
    definition: StoreDefinition<In, Out>,
    readonly kv: Kv,
  ) {
    super(definition);
    void definition.register(kv);
  }

  key(id: string): KvKey {
    assertId(id);
    return [this.name, id];
  }

  async set(id: string, value: In, options: KvSetOptions = {}): Promise<StoreEntry<Out>> {
    const key = this.key(id);
    const result = await validateWith(this.schema, value);
    if (!result.ok) throw new ValidationError(this.#subject(id), result.issues);
    await this.definition.register(this.kv);
    const { versionstamp } = await this.kv.set(
      key,
      this.definition.envelope(result.value),
      options,
    );
    return { id, value: result.value, versionstamp };
  }

  async get(id: string): Promise<Out | null> {
    return (await this.getEntry(id))?.value ?? null;
  }

  async getEntry(id: string): Promise<StoreEntry<Out> | null> {
    const key = this.key(id);
    const writeBack = this.definition.options.writeBack === true;
    const entry = await this.kv.get(key, { metadata: writeBack });
    if (entry.versionstamp === null) return null;
    const decoded = await this.#decode(id, entry.value, entry.versionstamp);
    if (!decoded) return null;
    if (!decoded.current && writeBack) await this.#writeBack(entry, decoded.value);
    return { id, value: decoded.value, versionstamp: entry.versionstamp };
  }

  async delete(id: string, info?: KvWriteInfo): Promise<void> {
    await this.kv.delete(this.key(id), info);
  }

  async list(options: StoreListOptions = {}): Promise<StorePage<Out>> {
    const prefix = options.prefix ?? "";
    if (typeof prefix !== "string" || prefix.includes(MAX_CHAR)) {
      fail(
        "INVALID_ARGUMENT",
        `a list prefix is a string without U+10FFFF, got ${describe(prefix)}`,
      );
    }
    const selector =
      prefix === ""
        ? { prefix: [this.name] }
        : { start: [this.name, prefix], end: [this.name, prefix + MAX_CHAR] };
    const page = await this.kv.paginate(selector, {
      ...(options.where !== undefined && { where: withinEnvelope(options.where) }),
      ...(options.limit !== undefined && { limit: options.limit }),
      ...(options.cursor !== undefined && { cursor: options.cursor }),
    });
    const decoded = await Promise.all(
      page.entries.map(async (entry) => {
        const id = entry.key[1];
        if (entry.key.length !== 2 || typeof id !== "string") return null;
        const read = await this.#decode(id, entry.value, entry.versionstamp);
        return read && { id, value: read.value, versionstamp: entry.versionstamp };
      }),
    );
    return {
      entries: decoded.filter((e): e is StoreEntry<Out> => e !== null),
      cursor: page.cursor,
    };
  }

  watch(id: string): ReadableStream<Out | null> {
    const key = this.key(id);
    return this.kv.watch([key]).pipeThrough(
      new TransformStream<readonly [KvEntryMaybe<unknown>], Out | null>({
        transform: async ([entry], controller) => {
          controller.enqueue(
            entry.versionstamp === null
              ? null
              : ((await this.#decode(id, entry.value, entry.versionstamp))?.value ?? null),
          );
        },
      }),
    );
  }

  ref(id: string): KeyRef<Out | null> {
    const key = this.key(id);
    return {
      kv: this.kv,
      key,
      decode: async (entry) =>
        entry.versionstamp === null && entry.value === null
          ? null
          : ((await this.#decode(id, entry.value, entry.versionstamp))?.value ?? null),
    };
  }

  in(target: AtomicOperation): StoreWriter<In>;
  in(target: KvTransaction): StoreInTransaction<In, Out>;
  in(target: AtomicOperation | KvTransaction): StoreWriter<In> | StoreInTransaction<In, Out> {
    if (!(target instanceof AtomicOperation) && !(target instanceof KvTransaction)) {
      fail(
        "INVALID_ARGUMENT",
        `in() takes an atomic operation or a transaction, got ${describe(target)}`,
      );
    }
    assertSameTarget(this.kv, target, `store ${this.name}`);
    const writer = {
      set: (id: string, value: In, options: KvSetOptions = {}) => {
        const key = this.key(id);
        const validated = validatedNow(validateWith(this.schema, value), this.#subject(id));
        target.set(key, this.definition.envelope(validated), options);
        return writer;
      },
      delete: (id: string, info?: KvWriteInfo) => {
        target.delete(this.key(id), info);
        return writer;
      },
      check: (id: string, versionstamp: string | null) => {
        target.check({ key: this.key(id), versionstamp });
        return writer;
      },
      get: async (id: string) => {
        if (!(target instanceof KvTransaction)) {
          fail("INVALID_ARGUMENT", "get() inside in() needs a transaction");
        }
        const entry = await target.get(this.key(id));
        if (entry.value === null && entry.versionstamp === null) return null;
        return (await this.#decode(id, entry.value, entry.versionstamp))?.value ?? null;
      },
    };
    return writer;
  }

  #subject(id: string): string {
    return `store ${this.name} entry ${JSON.stringify(id)}`;
  }

  /**
   * The stored value in the current shape. An entry written under the current schema is
   * trusted as is; any other (an older schema, or a value written without the store) is
   * migrated as far as registered migrations go, then validated against the current schema.
   */
  async #decode(id: string, stored: unknown, versionstamp: string | null): Promise<Decoded<Out>> {
    const envelope = asEnvelope(stored);
    if (envelope?.s === this.schemaHash) return { value: envelope.v as Out, current: true };
    const report = (value: unknown, issues: readonly ValidationIssue[]) => {
      this.#onInvalid({
        key: [this.name, id],
        name: this.name,
        id,
        value,
        versionstamp,
        issues,
        ...(envelope && { schemaHash: envelope.s }),
      });
      return null;
    };
    let value = envelope ? envelope.v : stored;
    if (envelope) {
      try {
        value = await this.definition.migrations.run(envelope.v, envelope.s, envelope.n);
      } catch (error) {
        return report(envelope.v, [
          {
            path: [],
            message: `migration from version ${envelope.n} failed: ${(error as Error)?.message ?? describe(error)}`,
          },
        ]);
      }
    }
    const result = await validateWith(this.schema, value);
    return result.ok ? { value: result.value, current: false } : report(value, result.issues);
  }

  get #onInvalid(): InvalidValueHandler {
    return this.definition.options.onInvalid ?? warnInvalidValue;
  }

  /** Replaces an upgraded entry, unless it changed since it was read; keeps its expiry. */
  async #writeBack(entry: KvEntryMaybe<unknown>, value: Out): Promise<void> {
    if (entry.versionstamp === null) return;
    const expiresAt = entry.metadata?.expiresAt ?? null;
    const expireIn =
      expiresAt === null ? undefined : Math.ceil(expiresAt - coreOf(this.kv).core.now());
    if (expireIn !== undefined && expireIn <= 0) return;
    await this.definition.register(this.kv);
    await this.kv
      .atomic()
      .check({ key: entry.key, versionstamp: entry.versionstamp })
      .set(entry.key, this.definition.envelope(value), {
        ...(expireIn !== undefined && { expireIn }),
        modifiedBy: "cellar:migration",
        comment: `upgraded to schema ${this.schemaHash}`,
      })
      .commit();
  }
}

/** A filter on a store's values as a filter on their envelopes, whose field `v` holds them. */
function withinEnvelope(where: KvWhere): KvWhere {
  if (typeof where !== "object" || where === null || Array.isArray(where)) return where;
  const out: Record<string, unknown> = {};
  for (const [name, condition] of Object.entries(where)) {
    if (name === "$and" || name === "$or")
      out[name] = Array.isArray(condition)
        ? condition.map((f) => withinEnvelope(f as KvWhere))
        : condition;
    else if (name === "$not") out[name] = withinEnvelope(condition as KvWhere);
    else if (name.startsWith("$")) out[name] = condition;
    else out[`v.${name}`] = condition;
  }
  return out;
}
