/**
 * Payload formation: one typed object assembled from several keys read in one snapshot.
 * Typed values and store entries are `KeyRef`s; plain keys are read as they are stored.
 */
import type { KvKey } from "../codec/key.js";
import type { Kv } from "../core/kv.js";
import { type KvCore, sameDatabase } from "../core/surface.js";
import { describe, fail } from "../errors.js";

/** A key whose entries decode to `T`: a typed value, or a store entry from `store.ref(id)`. */
export interface KeyRef<T> {
  /** The view the key belongs to. */
  readonly kv: Kv;
  readonly key: KvKey;
  /** Turns an entry of `key` into what a typed read returns (defaults, migrations, validation). */
  decode(entry: { readonly value: unknown; readonly versionstamp: string | null }): Promise<T>;
}

/** What `compose` can read into a field: a `KeyRef`, or a plain key (read as stored). */
export type ComposeSource = KeyRef<unknown> | KvKey;

/** The object `compose` returns for a mapping. */
export type Composed<M extends Readonly<Record<string, ComposeSource>>> = {
  -readonly [K in keyof M]: M[K] extends KeyRef<infer T> ? T : unknown;
};

/**
 * Reads every source of `mapping` with one `getMany` (one snapshot) and returns one object with
 * a field per source: typed values decode as `get()` would, store entries as `store.get(id)`,
 * plain keys give their stored value or `null`. Every source must belong to `kv`'s namespace.
 *
 * @example
 * const payload = await compose(kv, {
 *   theme: settings.theme,
 *   prefs: prefs.ref("ada"),
 *   visits: ["stats", "visits"],
 * }); // { theme: "dark", prefs: { … } | null, visits: unknown }
 */
export async function compose<const M extends Readonly<Record<string, ComposeSource>>>(
  kv: Kv,
  mapping: M,
): Promise<Composed<M>> {
  if (typeof mapping !== "object" || mapping === null) {
    fail("INVALID_ARGUMENT", `compose takes an object of keys, got ${describe(mapping)}`);
  }
  const fields = Object.entries(mapping);
  const refs = fields.map(([field, source]) => refOf(kv, field, source));
  const entries = await kv.getMany(refs.map((ref) => ref.key));
  const values = await Promise.all(refs.map((ref, i) => ref.decode(entries[i]!)));
  return Object.fromEntries(fields.map(([field], i) => [field, values[i]])) as Composed<M>;
}

function refOf(kv: Kv, field: string, source: ComposeSource): KeyRef<unknown> {
  if (Array.isArray(source)) {
    return {
      kv,
      key: source as KvKey,
      decode: async (entry) => (entry.versionstamp === null ? null : entry.value),
    };
  }
  if (
    typeof source !== "object" ||
    source === null ||
    typeof (source as KeyRef<unknown>).decode !== "function"
  ) {
    fail(
      "INVALID_ARGUMENT",
      `compose field ${JSON.stringify(field)} must be a key, a typed value or store.ref(id), got ${describe(source)}`,
    );
  }
  const ref = source as KeyRef<unknown>;
  if (!sameView(ref.kv, kv)) {
    fail(
      "INVALID_ARGUMENT",
      `compose reads one snapshot of one namespace: field ${JSON.stringify(field)} belongs to namespace ${JSON.stringify(ref.kv.namespaceName)}, not ${JSON.stringify(kv.namespaceName)}`,
    );
  }
  return ref;
}

/**
 * Whether two views read and write the same namespace of the same database.
 *
 * @example
 * sameView(kv.namespace("a"), kv.namespace("a")); // true
 */
export function sameView(a: Kv, b: Kv): boolean {
  return a === b || (a.namespaceName === b.namespaceName && sameDatabase(a, b));
}

/** The database and namespace an atomic operation or a transaction writes to. */
interface Target {
  readonly db: KvCore;
  readonly keyspace: { readonly namespace: string };
}

/**
 * Throws `INVALID_ARGUMENT` unless `target` (an atomic operation or a transaction) writes to
 * `kv`'s namespace: a typed write joined to another namespace's commit would land there.
 *
 * @example
 * assertSameTarget(kv, kv.namespace("other").atomic(), "store prefs"); // throws
 */
export function assertSameTarget(kv: Kv, target: object, what: string): void {
  const { db, keyspace } = target as Target;
  if (!sameDatabase(kv, db) || keyspace?.namespace !== kv.namespaceName) {
    fail(
      "INVALID_ARGUMENT",
      `${what} lives in namespace ${JSON.stringify(kv.namespaceName)}: join it to an atomic operation or transaction of that namespace`,
    );
  }
}
