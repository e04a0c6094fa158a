/**
 * Schemas as data: Standard Schema validation with issues normalised to `{ path, message }`,
 * JSON Schema export, content hashes over canonical JSON, the `$schemas` registry and the
 * migrations a store applies lazily when it reads an entry written under an older schema.
 */
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import type { StandardJSONSchemaV1, StandardSchemaV1 } from "@standard-schema/spec";
import { toJSONSchema } from "zod";
import type { KvKey } from "../codec/key.js";
import type { Kv } from "../core/kv.js";
import { reservedView } from "../core/surface.js";
import { describe, fail, KvError } from "../errors.js";

/** One reason a value was refused: where (object keys and array indexes) and why. */
export interface ValidationIssue {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** The outcome of validating a value: the validated (possibly normalised) value, or the issues. */
export type Validated<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly issues: readonly ValidationIssue[] };

/** A JSON Schema document, as a plain object. */
export type JsonSchema = Record<string, unknown>;

/**
 * A write refused because the value does not validate. Its `code` is `INVALID_VALUE`, like
 * every other refused value; `issues` says what is wrong.
 *
 * @example
 * try {
 *   await prefs.set("ada", { theme: 3 });
 * } catch (error) {
 *   if (error instanceof ValidationError) console.log(error.issues); // [{ path: ["theme"], message: … }]
 * }
 */
export class ValidationError extends KvError {
  readonly issues: readonly ValidationIssue[];

  constructor(subject: string, issues: readonly ValidationIssue[]) {
    super("INVALID_VALUE", `${subject} does not validate: ${summarize(issues)}`);
    this.issues = issues;
  }
}

function summarize(issues: readonly ValidationIssue[]): string {
  const shown = issues
    .slice(0, 3)
    .map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message));
  return shown.join("; ") + (issues.length > 3 ? ` (and ${issues.length - 3} more)` : "");
}

/** A stored value that no longer validates: what reads found, and why they ignored it. */
export interface InvalidValueReport {
  readonly key: KvKey;
  /** The typed key's name, or the store's name. */
  readonly name: string;
  /** The entry's id, for a store. */
  readonly id?: string;
  /** What is stored: for a store, the value inside its envelope. */
  readonly value: unknown;
  /** `null` for a value written earlier in the same transaction. */
  readonly versionstamp: string | null;
  readonly issues: readonly ValidationIssue[];
  /** For a store: the hash of the schema the entry was written under, when it records one. */
  readonly schemaHash?: string;
}

/** Receives reports of stored values that no longer validate. */
export type InvalidValueHandler = (report: InvalidValueReport) => void;

const warned = new Set<string>();

/**
 * The default {@link InvalidValueHandler}: one process warning (code
 * `CELLAR_INVALID_STORED_VALUE`) per key and versionstamp.
 *
 * @example
 * defineKv(kv, definition, { onInvalid: (report) => { metrics.count("invalid"); warnInvalidValue(report); } });
 */
export function warnInvalidValue(report: InvalidValueReport): void {
  const id = `${report.key.map(String).join("/")}@${report.versionstamp}`;
  if (warned.has(id)) return;
  if (warned.size >= 10_000) warned.clear();
  warned.add(id);
  process.emitWarning(
    `${report.key.map(String).join("/")} holds a value that does not validate (${summarize(report.issues)}); reads ignore it until it is rewritten`,
    { code: "CELLAR_INVALID_STORED_VALUE" },
  );
}

/**
 * Converts Standard Schema issues to `{ path, message }`.
 *
 * @example
 * normalizeIssues([{ message: "bad", path: [{ key: "a" }, 0] }]); // [{ path: ["a", 0], message: "bad" }]
 */
export function normalizeIssues(issues: readonly StandardSchemaV1.Issue[]): ValidationIssue[] {
  return issues.map((issue) => ({
    // Array.from: some libraries (arktype) return array subclasses whose map() keeps their class.
    path: Array.from(issue.path ?? [], (segment) => {
      const key = typeof segment === "object" && segment !== null ? segment.key : segment;
      return typeof key === "number" ? key : String(key);
    }),
    message: issue.message,
  }));
}

/**
 * Validates `value` against any Standard Schema (zod, valibot, arktype…). Stays synchronous
 * when the schema is, so typed writes can join an atomic operation without awaiting.
 *
 * @example
 * const result = validateWith(z.string(), 42); // { ok: false, issues: [{ path: [], message: "…" }] }
 */
export function validateWith<S extends StandardSchemaV1>(
  schema: S,
  value: unknown,
):
  | Validated<StandardSchemaV1.InferOutput<S>>
  | Promise<Validated<StandardSchemaV1.InferOutput<S>>> {
  const result = schema["~standard"].validate(value);
  return result instanceof Promise ? result.then(toValidated) : toValidated(result);
}

function toValidated<T>(result: StandardSchemaV1.Result<T>): Validated<T> {
  return result.issues
    ? { ok: false, issues: normalizeIssues(result.issues) }
    : { ok: true, value: result.value };
}

/**
 * Throws `INVALID_ARGUMENT` unless `schema` implements Standard Schema v1.
 *
 * @example
 * assertStandardSchema(z.string(), "schema"); // passes
 */
export function assertStandardSchema(
  schema: unknown,
  what: string,
): asserts schema is StandardSchemaV1 {
  const props = (schema as { "~standard"?: { version?: unknown; validate?: unknown } } | null)?.[
    "~standard"
  ];
  if (
    typeof props !== "object" ||
    props === null ||
    props.version !== 1 ||
    typeof props.validate !== "function"
  ) {
    fail(
      "INVALID_ARGUMENT",
      `${what} must be a Standard Schema (zod, valibot, arktype…), got ${describe(schema)}`,
    );
  }
}

type Converter = (schema: StandardSchemaV1, io: "input" | "output") => unknown;

const require = createRequire(import.meta.url);
let valibotConverter: ((schema: unknown) => unknown) | null | undefined;

/** `@valibot/to-json-schema` when the application installed it; valibot schemas carry no converter. */
function loadValibotConverter(): ((schema: unknown) => unknown) | null {
  if (valibotConverter === undefined) {
    try {
      valibotConverter = (
        require("@valibot/to-json-schema") as { toJsonSchema: (schema: unknown) => unknown }
      ).toJsonSchema;
    } catch {
      valibotConverter = null;
    }
  }
  return valibotConverter;
}

const CONVERTERS: readonly Converter[] = [
  (schema, io) =>
    (schema["~standard"] as Partial<StandardJSONSchemaV1.Props>).jsonSchema?.[io]({
      target: "draft-2020-12",
    }),
  (schema, io) =>
    schema["~standard"].vendor === "zod" ? toJSONSchema(schema as never, { io }) : undefined,
  (schema) => {
    const own = (schema as { toJsonSchema?: unknown }).toJsonSchema;
    return typeof own === "function" ? own.call(schema) : undefined;
  },
  (schema) =>
    schema["~standard"].vendor === "valibot" ? loadValibotConverter()?.(schema) : undefined,
];

/**
 * The JSON Schema of a Standard Schema: its Standard JSON Schema converter when it has one,
 * else zod's `toJSONSchema`, arktype's `.toJsonSchema()` or `@valibot/to-json-schema`; when none
 * applies (or the schema has parts JSON Schema cannot express), a description naming the vendor.
 *
 * @example
 * jsonSchemaOf(z.object({ theme: z.string() })); // { type: "object", properties: { theme: { type: "string" } }, … }
 */
export function jsonSchemaOf(
  schema: StandardSchemaV1,
  io: "input" | "output" = "output",
): JsonSchema {
  for (const convert of CONVERTERS) {
    try {
      const result = convert(schema, io);
      if (typeof result === "object" && result !== null) {
        return withoutDialect(result as JsonSchema);
      }
    } catch {
      // A converter that cannot express this schema: try the next one, then the fallback.
    }
  }
  return { description: `${schema["~standard"].vendor} schema (no JSON Schema export)` };
}

function withoutDialect(schema: JsonSchema): JsonSchema {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

/**
 * JSON with object keys sorted at every level, so equal documents have equal text.
 *
 * @example
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map((item) => canonicalJson(item ?? null)).join(",")}]`;
  }
  if (typeof value === "object" && value !== null) {
    const fields = Object.keys(value)
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .sort()
      .map(
        (key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`,
      );
    return `{${fields.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * Hex SHA-256 of a document's canonical JSON: its content address.
 *
 * @example
 * contentHash({ version: 1, jsonSchema: { type: "string" } }); // "3f1c…" (64 hex digits)
 */
export function contentHash(document: unknown): string {
  return createHash("sha256").update(canonicalJson(document)).digest("hex");
}

/** What the registry holds for one schema, under its hash. */
export interface SchemaRecord {
  readonly hash: string;
  readonly version: number;
  /** The schema library that defined it: `zod`, `valibot`, `arktype`… */
  readonly vendor: string;
  readonly jsonSchema: JsonSchema;
  /** Epoch ms of the first registration. */
  readonly registeredAt: number;
}

/** A store's schema as data: the hashed document and its hash. */
export interface SchemaIdentity {
  readonly hash: string;
  readonly version: number;
  readonly vendor: string;
  readonly jsonSchema: JsonSchema;
}

const SCHEMAS = "$schemas";
const HASH = /^[0-9a-f]{64}$/;

/**
 * The identity of a schema at a version: what `contentHash` covers is `{ jsonSchema, version }`,
 * so a new version is a new hash even when the JSON Schema cannot show the difference.
 *
 * @example
 * identify(z.string(), 2).hash === contentHash({ jsonSchema: { type: "string" }, version: 2 }); // true
 */
export function identify(
  schema: StandardSchemaV1,
  version: number,
  jsonSchema?: JsonSchema,
): SchemaIdentity {
  const exported = jsonSchema ?? jsonSchemaOf(schema);
  return {
    hash: contentHash({ jsonSchema: exported, version }),
    version,
    vendor: schema["~standard"].vendor,
    jsonSchema: exported,
  };
}

/** The reserved view that holds schemas; one per database, whatever namespace asks. */
function registryOf(kv: Kv): Kv {
  return reservedView(kv, SCHEMAS);
}

/**
 * Stores a schema under its hash (once: a hash names one document forever) and records that
 * store `storeName` has used it.
 *
 * @example
 * await registerSchema(kv, "user_prefs", identify(schema, 1));
 */
export async function registerSchema(
  kv: Kv,
  storeName: string,
  identity: SchemaIdentity,
): Promise<void> {
  const registry = registryOf(kv);
  const key = ["schema", identity.hash];
  const record: SchemaRecord = { ...identity, registeredAt: Date.now() };
  await registry.atomic().check({ key, versionstamp: null }).set(key, record).commit();
  const used = ["store", storeName, identity.hash];
  await registry
    .atomic()
    .check({ key: used, versionstamp: null })
    .set(used, { version: identity.version })
    .commit();
}

/**
 * The schema registered under `hash`, or `null`.
 *
 * @example
 * const record = await getSchema(kv, prefs.schemaHash); // { hash, version, vendor, jsonSchema, registeredAt }
 */
export async function getSchema(kv: Kv, hash: string): Promise<SchemaRecord | null> {
  if (typeof hash !== "string" || !HASH.test(hash)) {
    fail("INVALID_ARGUMENT", `a schema hash is 64 hex digits, got ${describe(hash)}`);
  }
  return (await registryOf(kv).get<SchemaRecord>(["schema", hash])).value;
}

/**
 * Every schema store `storeName` has written with, oldest version first.
 *
 * @example
 * const versions = await storeSchemas(kv, "user_prefs"); // [{ hash, version: 1, … }, { hash, version: 2, … }]
 */
export async function storeSchemas(kv: Kv, storeName: string): Promise<SchemaRecord[]> {
  const registry = registryOf(kv);
  const hashes: string[] = [];
  for await (const entry of registry.list({ prefix: ["store", storeName] }))
    hashes.push(entry.key[2] as string);
  const records = await Promise.all(hashes.map((hash) => getSchema(kv, hash)));
  return records
    .filter((r): r is SchemaRecord => r !== null)
    .sort((a, b) => a.version - b.version || a.registeredAt - b.registeredAt);
}

/** Turns a value written under an older schema into a newer shape. */
export type Migration<Old = unknown> = (value: Old) => unknown | Promise<unknown>;

/** Where a migration starts: an exact schema hash, or a version number. */
export type MigrationSource = string | number;

/**
 * The migrations of one store. `add(version, fn)` upgrades a value of version `n` to `n + 1`;
 * steps chain up to the current version. `add(hash, fn)` upgrades a value written under exactly
 * that schema straight to the current shape, and wins over version steps.
 *
 * @example
 * const migrations = new Migrations(() => 2);
 * migrations.add(1, (old: { name: string }) => ({ first: old.name }));
 * await migrations.run({ name: "Ada" }, hashOfVersion1, 1); // { first: "Ada" }
 */
export class Migrations {
  readonly #byHash = new Map<string, Migration>();
  readonly #byVersion = new Map<number, Migration>();

  constructor(private readonly current: () => number) {}

  add(from: MigrationSource, fn: Migration): void {
    if (typeof fn !== "function") {
      fail("INVALID_ARGUMENT", `a migration is a function, got ${describe(fn)}`);
    }
    if (typeof from === "string" && HASH.test(from)) {
      this.#byHash.set(from, fn);
    } else if (
      typeof from === "number" &&
      Number.isSafeInteger(from) &&
      from >= 1 &&
      from < this.current()
    ) {
      this.#byVersion.set(from, fn);
    } else {
      fail(
        "INVALID_ARGUMENT",
        `a migration starts from a schema hash (64 hex digits) or a version below the current ${this.current()}, got ${describe(from)}`,
      );
    }
  }

  /** Upgrades `value`, written under `hash` at `version`, as far as registered steps go. */
  async run(value: unknown, hash: string, version: number): Promise<unknown> {
    const direct = this.#byHash.get(hash);
    if (direct) return direct(value);
    let upgraded = value;
    for (let v = version; v < this.current(); v++) {
      const step = this.#byVersion.get(v);
      if (!step) break;
      upgraded = await step(upgraded);
    }
    return upgraded;
  }
}
